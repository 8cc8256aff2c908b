"""Where does bf16 lose accuracy? Each part of the model kept in fp32 in turn, and early stopping separated from arithmetic.

bench/gpu.md found training li2025 in bf16 mixed precision 0.061 less accurate than fp32 on an H100 (3 seeds; two bf16
runs stopped at 16 epochs against 20); bench/bf16.py measured CPU autocast bf16 on 3 seeds at -0.028 ± 0.022 (li2025) and
-0.008 ± 0.019 (baseline), within noise, with the GRU's output the furthest from fp32. This script asks which part costs
what (issue 29, item 3), on this CPU with torch.autocast('cpu', bfloat16) (bench/bf16.py's `CPUAutocast`), with more seeds.

Data as bench/bf16.py: synthetic `demo` data (seed 0), its feature cache, eval clips scored against truth. The log-mel
features come from that fp32 cache and the per-band normalisation runs in the loader, both outside autocast: on this
path they are never in reduced precision. Per recipe (li2025, baseline; quick variants) and training seed
1234 .. 1234+N-1, stage 1 (`fit_recipe`, both steps of `audio_first`) is trained with the same data, seed and batches as

    fp32         fp32 throughout
    bf16         bf16 wherever autocast allows (matrix products, convolutions, the GRU; autocast keeps losses, softmax, norms in fp32)
    temporal32   bf16, but the temporal module in fp32 (li2025: the GRU `body.gru`; baseline: the Transformer `body.encoder`)
    head32       bf16, but the whole head in fp32 (`head`: city/time context, fusion and its gate, both classifiers)
    bn32         bf16, but every BatchNorm layer in fp32
    input32      bf16, but the body's first block in fp32 (`body.blocks.0`: li2025's stem conv + BN; baseline's input BN + first SE conv block)
    fp32-last    fp32, a fixed number of epochs with the last epoch kept (`keep='last'`: no early stopping, no best-epoch choice)
    bf16-last    bf16, likewise

A part is kept in fp32 by a forward pre-hook that enters torch.autocast('cpu', enabled=False) and casts the module's floating
inputs to float32, and a forward hook (always called) that leaves it again; the state dict and the model's code are
untouched. Before training, a check asserts that under autocast each such module's output is float32 and equal to its
plain fp32 forward on the same inputs. Each model then predicts in fp32; reported per variant: validation and test
accuracy per seed, epochs run and kept (audio step and fusion step), the paired difference to fp32 (mean ± standard
error over seeds, seeds better / worse), the paired difference to bf16 (what keeping that part in fp32 recovers), and
the share of test clips on which the model predicts the same class as the fp32 model. The two `-last` variants are
compared with each other: if bf16 costs accuracy under early stopping but not with the epoch fixed, the cost lies in
which epoch is kept, not in the arithmetic. One-thread CPU training repeats exactly (the same predictions in a second
process), so every difference between variants comes from the variant, not from run-to-run noise.

Progress is saved after each fit to WORK/bf16_parts.json; a rerun with the same --work resumes. Output: bench/bf16_parts.md.
Usage: OMP_NUM_THREADS=1 python bench/bf16_parts.py [--seeds 8] [--recipes li2025 baseline] [--epochs 12]
       [--variants fp32 bf16 ...] [--work /tmp/asc_bench_bf16_parts] [--out bench/bf16_parts.md] [--quick]
--quick: 2 seeds, 2 epochs (a smoke test; give --out somewhere else so bench/bf16_parts.md is kept).
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, copy, json, platform, shlex, sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch, torch.nn as nn
from fastai.callback.core import Callback
from asc_nbdev.core import class_index
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.audio.cache import build_feature_cache
from asc_nbdev.data.loaders import asc_dataloaders
from asc_nbdev.train.recipes import get_recipe, make_model
from asc_nbdev.train.fit import fit_recipe
from asc_nbdev.train.learner import predict_probs
sys.path.insert(0, str(Path(__file__).parent))
from bf16 import CPUAutocast   # bench/bf16.py: forward and loss under torch.autocast('cpu', bfloat16)

# variant: (precision, part kept in fp32 or None, fit_recipe's keep)
VARIANTS = {'fp32': ('fp32', None, 'best'), 'bf16': ('bf16', None, 'best'),
            'temporal32': ('bf16', 'temporal', 'best'), 'head32': ('bf16', 'head', 'best'),
            'bn32': ('bf16', 'bn', 'best'), 'input32': ('bf16', 'input', 'best'),
            'fp32-last': ('fp32', None, 'last'), 'bf16-last': ('bf16', None, 'last')}
REFERENCE = {'bf16-last': 'fp32-last'}   # a variant's paired fp32 run (default 'fp32')
TEMPORAL = ('body.gru', 'body.encoder')   # li2025 (MobileASCNet) and baseline (SE-Trans) temporal modules


_FP32 = []   # the autocast-off contexts of the fp32 modules now running (nested modules: last in, first out)

def _to_fp32(t): return t.float() if torch.is_tensor(t) and t.is_floating_point() else t

def _enter_fp32(module, args, kwargs):
    "Forward pre-hook: autocast off, floating inputs as float32"
    ctx = torch.autocast('cpu', enabled=False); ctx.__enter__(); _FP32.append(ctx)
    return tuple(_to_fp32(a) for a in args), {k: _to_fp32(v) for k, v in kwargs.items()}

def _exit_fp32(module, args, output): _FP32.pop().__exit__(None, None, None)

def fp32_modules(model, part):
    "The modules of `model` that variant `part` keeps in fp32 (the audio-only model of `audio_first`'s first step too)"
    named = dict(model.named_modules())
    if part == 'temporal': mods = [named[n] for n in TEMPORAL if n in named]
    elif part == 'head': mods = [model.head]
    elif part == 'bn': mods = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    elif part == 'input': mods = [model.body.blocks[0]]
    else: raise ValueError(f'unknown part {part!r}')
    if not mods: raise ValueError(f'{type(model).__name__} has no {part} module')
    return mods

def keep_fp32(model, part):
    "Run `part` of `model` in fp32 even under autocast; returns the hook handles (`.remove()` undoes it)"
    hs = []
    for m in fp32_modules(model, part):
        hs += [m.register_forward_pre_hook(_enter_fp32, with_kwargs=True), m.register_forward_hook(_exit_fp32, always_call=True)]
    return hs

class FP32Part(Callback):
    "Keep one part of the model in fp32 while training (hooks put on at each fit, taken off after it)"
    def __init__(self, part): self.part, self.hs = part, []
    def before_fit(self): self.hs = keep_fp32(self.learn.model, self.part)
    def after_fit(self):
        for h in self.hs: h.remove()
        self.hs = []

def check_fp32(model, batch, part):
    """Assert that under bf16 autocast each module of `part` outputs float32, equal to its plain fp32 forward on the same
    inputs; returns the number of such modules and, without the hooks, their largest relative error in bf16 (the check's teeth)"""
    model = copy.deepcopy(model).eval()   # no dropout; batch norm on batch statistics as in training (a new model's running ones are 0 and 1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm): m.train()
    mods, err = fp32_modules(model, part), 0.
    clone = lambda t: t.clone() if torch.is_tensor(t) else t   # copies: later in-place ops (ReLU, residual adds) change them
    for hooked in (True, False):
        seen = []
        rec = lambda m, a, o: seen.append((m, [clone(x) for x in a], clone(o[0] if isinstance(o, tuple) else o)))
        hs = (keep_fp32(model, part) if hooked else []) + [m.register_forward_hook(rec) for m in mods]
        with torch.no_grad():
            with torch.autocast('cpu', dtype=torch.bfloat16): model(*batch[:3])
            for h in hs: h.remove()
            assert len(seen) >= len(mods), f'{part}: {len(seen)} of {len(mods)} modules ran'
            for m, a, o in seen:
                r = m(*[_to_fp32(x) for x in a]); r = r[0] if isinstance(r, tuple) else r
                if hooked:
                    assert o.dtype == torch.float32, f'{part}: {type(m).__name__} gives {o.dtype} under autocast'
                    assert torch.allclose(o, r, rtol=1e-5, atol=1e-6), f'{part}: {type(m).__name__} differs from its fp32 forward'
                else: err = max(err, float((o.float() - r).norm() / (r.norm() + 1e-12)))
    return len(mods), err

def accuracy(p, y): return float((p.argmax(1) == y).mean())

def fit_variant(rec, seed, variant, epochs, dev, ev, cache, work):
    "Train one recipe / seed / variant; its accuracies, epochs and test predictions"
    prec, part, keep = VARIANTS[variant]
    r = get_recipe(rec, quick=True).replace(seed=seed, epochs=epochs)
    dls = asc_dataloaders(dev, cache, bs=r.bs, seed=r.seed, city_dropout=r.city_dropout, time_dropout=r.time_dropout)
    cbs = ([CPUAutocast()] if prec == 'bf16' else []) + ([FP32Part(part)] if part else [])
    t0 = time.time()
    learn, s = fit_recipe(r, dls, path=work/f'{rec}-{seed}-{variant}', progress=False, cbs=cbs, keep=keep)
    m = learn.model.float().eval()
    pv, pt = predict_probs(m, dls.valid, device='cpu'), predict_probs(m, dls.test_dl(ev), device='cpu')
    return dict(recipe=rec, seed=seed, variant=variant, epochs_limit=epochs,
                valid=accuracy(pv, dls.valid_meta.label.to_numpy()), test=accuracy(pt, ev.label.to_numpy()),
                audio_run=s.get('audio_epochs_run'), audio_best=s.get('audio_best_epoch'), run=s['epochs_run'], best=s['best_epoch'],
                seconds=round(time.time() - t0, 1), pred=pt.argmax(1).tolist())

def machine_line():
    cpu, flags = platform.processor() or platform.machine(), ''
    try:
        info = Path('/proc/cpuinfo').read_text()
        cpu = next(l.split(':', 1)[1].strip() for l in info.splitlines() if l.startswith('model name'))
        flags = ', '.join(f for f in ('avx512_bf16', 'amx_bf16') if f' {f}' in info)
    except (OSError, StopIteration): pass
    return f"{cpu} ({os.cpu_count()} CPUs{'; ' + flags if flags else ''}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"

def se(v): return v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float('nan')

def paired(df, rec, a, b, col='test'):
    "Per-seed differences a − b of `col` over the seeds both have"
    x = df[(df.recipe == rec) & (df.variant == a)].set_index('seed')[col]
    y = df[(df.recipe == rec) & (df.variant == b)].set_index('seed')[col]
    seeds = x.index.intersection(y.index)
    return (x[seeds] - y[seeds]).to_numpy()

def agreement(df, rec, seed, a, b):
    "Share of test clips on which variants a and b of one recipe and seed predict the same class"
    g = df[(df.recipe == rec) & (df.seed == seed)].set_index('variant')
    if a not in g.index or b not in g.index: return float('nan')
    return float(np.mean(np.array(g.loc[a, 'pred']) == np.array(g.loc[b, 'pred'])))

def fmt_diff(d): return f"{d.mean():+.3f} ± {se(d):.3f}" if len(d) else '–'

def counts(d): return f"{(d > 0).sum()} / {(d < 0).sum()} / {(d == 0).sum()}" if len(d) else '–'

def report(df, a, cmd, minutes, load0, dev, ev):
    fit_min = df.seconds.sum() / 60
    L = ["# Where bf16 loses accuracy: parts kept in fp32, early stopping against a fixed epoch (CPU autocast bf16)", '',
         f"`{cmd}`", '',
         f"Synthetic `demo` data (seed 0: {int((dev.label >= 0).sum())} labeled dev clips, {len(ev)} eval clips with truth); stage 1 of "
         f"each recipe's quick variant (both steps of `audio_first`: the audio model, then the fusion on its frozen body), epoch "
         f"limit {a.epochs}, training seeds {', '.join(str(s) for s in a.seed_list)}; validation = the default recording split; every "
         f"model predicts in fp32. Variants: bench/bf16_parts.py's docstring. {machine_line()}; load average "
         f"{load0} at the start, {'/'.join(f'{v:.1f}' for v in os.getloadavg())} at the end; {minutes:.0f} min this run, "
         f"{fit_min:.0f} min of fits in all (resumed ones included).", '']
    for rec in a.recipes:
        g = df[df.recipe == rec]
        if g.empty: continue
        L += [f'## {rec}', '', 'Paired over seeds: mean ± standard error; seeds better / worse / equal. Agreement: share of test clips '
              'predicted as the reference model does (mean over seeds). Epochs: mean run, and the kept epoch (1-based), audio step · fusion step.', '',
              '| variant | valid | test | test − reference | better / worse / equal | valid − reference | test − bf16 | agreement | epochs audio run (kept) · fusion run (kept) |',
              '|---|---|---|---|---|---|---|---|---|']
        for v in [v for v in VARIANTS if v in set(g.variant)]:
            x, ref = g[g.variant == v], REFERENCE.get(v, 'fp32')
            d, dv = paired(df, rec, v, ref), paired(df, rec, v, ref, 'valid')
            db = paired(df, rec, v, 'bf16') if VARIANTS[v][0] == 'bf16' and v != 'bf16' and VARIANTS[v][2] == 'best' else np.array([])
            ag = [agreement(df, rec, s, v, ref) for s in x.seed] if v != ref else []
            ag = [t for t in ag if t == t]
            ep = (f"{x.audio_run.mean():.1f} ({x.audio_best.mean() + 1:.1f}) · {x.run.mean():.1f} ({x.best.mean() + 1:.1f})")
            L.append(f"| {v}{'' if v == 'fp32' else f' (vs {ref})'} | {x.valid.mean():.3f} | {x.test.mean():.3f} | "
                     f"{fmt_diff(d) if v != ref else ''} | {counts(d) if v != ref else ''} | {fmt_diff(dv) if v != ref else ''} | "
                     f"{fmt_diff(db) if len(db) else ''} | {f'{np.mean(ag):.3f}' if ag else ''} | {ep} |")
        L.append('')
    L += ['## Early stopping or arithmetic?', '',
          'bf16 − fp32 in test accuracy with the recipe\'s early stopping and best-epoch choice, against a fixed number of epochs with the '
          'last kept; seeds whose kept epochs (audio · fusion) differ between fp32 and bf16.', '',
          '| recipe | bf16 − fp32 (early stopping) | kept epochs differ | bf16-last − fp32-last (fixed epochs) | agreement fp32 / bf16 (early stopping) | agreement (fixed epochs) |',
          '|---|---|---|---|---|---|']
    for rec in a.recipes:
        g = df[df.recipe == rec]
        if g.empty: continue
        b, f = g[g.variant == 'bf16'].set_index('seed'), g[g.variant == 'fp32'].set_index('seed')
        seeds = b.index.intersection(f.index)
        differ = sum((b.loc[s, 'audio_best'], b.loc[s, 'best']) != (f.loc[s, 'audio_best'], f.loc[s, 'best']) for s in seeds)
        a1 = [agreement(df, rec, s, 'bf16', 'fp32') for s in seeds]
        a2 = [agreement(df, rec, s, 'bf16-last', 'fp32-last') for s in sorted(set(g.seed))]
        a2 = [t for t in a2 if t == t]
        L.append(f"| {rec} | {fmt_diff(paired(df, rec, 'bf16', 'fp32'))} | {differ} of {len(seeds)} | "
                 f"{fmt_diff(paired(df, rec, 'bf16-last', 'fp32-last'))} | {f'{np.mean(a1):.3f}' if a1 else '–'} | {f'{np.mean(a2):.3f}' if a2 else '–'} |")
    L += ['', '## Per seed', '', '| recipe | seed | variant | valid | test | test − reference | agreement with reference | audio run / kept | fusion run / kept | seconds |',
          '|---|---|---|---|---|---|---|---|---|---|']
    for _, x in df.iterrows():
        ref = REFERENCE.get(x.variant, 'fp32')
        r = df[(df.recipe == x.recipe) & (df.seed == x.seed) & (df.variant == ref)]
        d = f"{x.test - r.test.iloc[0]:+.3f}" if len(r) and x.variant != ref else ''
        ag = agreement(df, x.recipe, x.seed, x.variant, ref) if x.variant != ref else float('nan')
        L.append(f"| {x.recipe} | {x.seed} | {x.variant} | {x.valid:.3f} | {x.test:.3f} | {d} | {'' if ag != ag else f'{ag:.3f}'} | "
                 f"{x.audio_run} / {x.audio_best + 1} | {x.run} / {x.best + 1} | {x.seconds:.0f} |")
    return '\n'.join(L) + '\n'

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, default=8, help='training seeds 1234 .. 1234+N-1')
    ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--epochs', type=int, default=12, help='epoch limit (early stopping as the recipe says; the -last variants run all)')
    ap.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument('--work', default='/tmp/asc_bench_bf16_parts', help='data, features, checkpoints and bf16_parts.json (resumed)')
    ap.add_argument('--out', default=str(Path(__file__).with_name('bf16_parts.md')))
    ap.add_argument('--quick', action='store_true', help='smoke test: 2 seeds, 2 epochs')
    a = ap.parse_args(); t_start, load0 = time.time(), '/'.join(f'{v:.1f}' for v in os.getloadavg())
    if a.quick: a.seeds, a.epochs = 2, 2
    a.seed_list = [1234 + s for s in range(a.seeds)]
    variants = [v for v in VARIANTS if v in a.variants]
    for v in variants:   # each variant is compared with its reference: train that too
        if REFERENCE.get(v, 'fp32') not in variants: variants.append(REFERENCE.get(v, 'fp32'))
    variants = [v for v in VARIANTS if v in variants]
    work = Path(a.work); make_synthetic(work/'data', preset='demo', seed=0, progress=False)
    dev = read_meta(work/'data'/'dev_metadata.csv'); ev = read_meta(work/'data'/'eval_metadata.csv')
    truth = pd.read_csv(work/'data'/'truth.csv'); ev = ev.merge(truth, on='filename', suffixes=('_m', ''))
    ev['label'] = [class_index(c) for c in ev.scene_label]
    cache = build_feature_cache(work/'data'/'audio', list(dev.filename) + list(ev.filename), work/'features', progress=False)
    for rec in a.recipes:   # the fp32 parts are really fp32 under autocast
        r = get_recipe(rec, quick=True); dls = asc_dataloaders(dev, cache, bs=r.bs, seed=r.seed)
        m = make_model(r, metadata=True); m.set_known_cities(np.unique(dls.train.items.city))
        b = next(iter(dls.test_dl(ev)))
        for p in sorted({VARIANTS[v][1] for v in variants} - {None}):
            n, e = check_fp32(m, b, p)
            print(f"{rec}: {p} ({n} module(s)) is fp32 under autocast; without the hooks its bf16 relative error is up to {e:.4f}", flush=True)
    state = work/'bf16_parts.json'
    done = json.loads(state.read_text()) if state.exists() else {}
    for rec in a.recipes:
        for seed in a.seed_list:
            for v in variants:
                key = f'{rec}|{seed}|{v}|{a.epochs}'
                if key in done: continue
                row = done[key] = fit_variant(rec, seed, v, a.epochs, dev, ev, cache, work)
                print({k: x for k, x in row.items() if k != 'pred'}, flush=True)
                tmp = state.with_suffix('.tmp'); tmp.write_text(json.dumps(done)); tmp.replace(state)
    df = pd.DataFrame([done[f'{rec}|{s}|{v}|{a.epochs}'] for rec in a.recipes for s in a.seed_list for v in variants])
    cmd = 'OMP_NUM_THREADS=1 python bench/bf16_parts.py' + (' ' + shlex.join(sys.argv[1:]) if sys.argv[1:] else '')
    text = report(df, a, cmd, (time.time() - t_start) / 60, load0, dev, ev)
    Path(a.out).write_text(text); print(text)

if __name__ == '__main__': main()
