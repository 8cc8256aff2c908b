"""Where does bf16 lose accuracy? Training and prediction in bf16 against fp32 on this CPU (torch.autocast('cpu', bfloat16)).

bench/gpu.md found bf16 mixed precision 0.061 less accurate than fp32 on an H100 (3 seeds) with no cause found. This
script looks for it without a GPU: CPU autocast in bf16 (this CPU has avx512_bf16) runs the same kernels' reduced-precision
arithmetic (matrix products, convolutions, the GRU in bf16; softmax, normalisation and losses kept in fp32 by autocast's
rules), so much of the numeric effect shows here. On a synthetic `demo` dataset (fixed seed), per recipe (quick) and
training seed:

1. stage 1 trained in fp32 and in bf16 (the same batches, seeds and epochs): validation and test accuracy, paired;
2. each fp32-trained model predicting in bf16: how many predictions flip and the accuracy change (prediction alone);
3. per module of that model (body blocks, GRU/attention, the fusion's context encoder and gate, the classifiers), the
   relative error of its output in bf16 against fp32 (forward hooks on the same input): where the precision goes.

Output: bench/bf16.md. Usage: OMP_NUM_THREADS=1 python bench/bf16.py [--seeds 3] [--recipes li2025 baseline] [--epochs 12]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, platform, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.callback.core import Callback
from asc_nbdev.core import CLASSES, class_index
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.audio.cache import build_feature_cache
from asc_nbdev.data.loaders import asc_dataloaders
from asc_nbdev.train.recipes import get_recipe
from asc_nbdev.train.fit import fit_recipe
from asc_nbdev.train.learner import predict_probs

class CPUAutocast(Callback):
    "Forward pass and loss under torch.autocast('cpu', bfloat16), as fastai's MixedPrecision does on CUDA"
    order = 10
    def before_batch(self): self.ac = torch.autocast('cpu', dtype=torch.bfloat16); self.ac.__enter__()
    def after_loss(self): self.ac.__exit__(None, None, None)
    def after_cancel_batch(self):
        try: self.ac.__exit__(None, None, None)
        except Exception: pass

def probs(model, dl, bf16=False):
    if not bf16: return predict_probs(model, dl, device='cpu')
    with torch.autocast('cpu', dtype=torch.bfloat16): return predict_probs(model, dl, device='cpu')

def module_errors(model, dl):
    "Relative error ||bf16 - fp32|| / ||fp32|| of every named module's output on one batch"
    mods = {n: m for n, m in model.named_modules() if n and n.count('.') <= 2}
    outs = {}
    def hook(name):
        def f(m, i, o):
            o = o[0] if isinstance(o, tuple) else o
            if torch.is_tensor(o) and o.is_floating_point(): outs.setdefault(name, []).append(o.detach().float().clone())
        return f
    hs = [m.register_forward_hook(hook(n)) for n, m in mods.items()]
    b = next(iter(dl)); model.eval()
    try:
        with torch.inference_mode():
            model(*[t for t in b[:3]])
            with torch.autocast('cpu', dtype=torch.bfloat16): model(*[t for t in b[:3]])
    finally:
        for h in hs: h.remove()
    return {n: float((v[1] - v[0]).norm() / (v[0].norm() + 1e-12)) for n, v in outs.items() if len(v) == 2}

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--epochs', type=int, default=12); ap.add_argument('--work', default='/tmp/asc_bench_bf16')
    ap.add_argument('--out', default=str(Path(__file__).with_name('bf16.md')))
    a = ap.parse_args(); t_start = time.time()
    work = Path(a.work); make_synthetic(work/'data', preset='demo', seed=0, progress=False)
    dev = read_meta(work/'data'/'dev_metadata.csv'); ev = read_meta(work/'data'/'eval_metadata.csv')
    truth = pd.read_csv(work/'data'/'truth.csv'); ev = ev.merge(truth, on='filename', suffixes=('_m', ''))
    ev['label'] = [class_index(c) for c in ev.scene_label]
    cache = build_feature_cache(work/'data'/'audio', list(dev.filename) + list(ev.filename), work/'features', progress=False)
    rows, errs = [], {}
    for rec in a.recipes:
        for s in range(a.seeds):
            r = get_recipe(rec, quick=True).replace(seed=1234 + s, epochs=a.epochs)
            res = {}
            for prec in ('fp32', 'bf16'):
                dls = asc_dataloaders(dev, cache, bs=r.bs, seed=r.seed, city_dropout=r.city_dropout, time_dropout=r.time_dropout)
                t0 = time.time()
                learn, summ = fit_recipe(r, dls, path=work/f'{rec}-{s}-{prec}', progress=False, cbs=[CPUAutocast()] if prec == 'bf16' else [])
                m = learn.model.float().eval()
                pv, pt = probs(m, dls.valid), probs(m, dls.test_dl(ev))
                res[prec] = dict(model=m, dls=dls, pv=pv, pt=pt)
                rows.append(dict(recipe=rec, seed=r.seed, train=prec, predict='fp32', epochs=summ['epochs_run'], best=summ['best_epoch'],
                                 valid=float((pv.argmax(1) == dls.valid_meta.label.to_numpy()).mean()),
                                 test=float((pt.argmax(1) == ev.label.to_numpy()).mean()), seconds=round(time.time() - t0, 1)))
                print(rows[-1], flush=True)
            m, dls = res['fp32']['model'], res['fp32']['dls']   # the fp32 model predicting in bf16
            pv, pt = probs(m, dls.valid, True), probs(m, dls.test_dl(ev), True)
            rows.append(dict(recipe=rec, seed=r.seed, train='fp32', predict='bf16', valid=float((pv.argmax(1) == dls.valid_meta.label.to_numpy()).mean()),
                             test=float((pt.argmax(1) == ev.label.to_numpy()).mean()),
                             flips=float((pt.argmax(1) != res['fp32']['pt'].argmax(1)).mean()),
                             max_prob_diff=float(np.abs(pt - res['fp32']['pt']).max())))
            for n, e in module_errors(m, dls.test_dl(ev)).items(): errs.setdefault((rec, n), []).append(e)
    df = pd.DataFrame(rows)
    L = [f"# bf16 against fp32 on this CPU (torch.autocast('cpu', bfloat16))", '',
         f"`OMP_NUM_THREADS=1 python bench/bf16.py --seeds {a.seeds} --epochs {a.epochs}`: synthetic `demo` data (seed 0: "
         f"{int((dev.label >= 0).sum())} labeled dev clips, {len(ev)} eval clips with truth), stage 1 of each recipe's quick variant "
         f"(epoch limit {a.epochs}, early stopping as the recipe says), training seeds {', '.join(str(1234 + s) for s in range(a.seeds))}; validation = the "
         f"default recording split. {platform.processor() or platform.machine()} with avx512_bf16, torch {torch.__version__}, "
         f"{torch.get_num_threads()} thread; {(time.time() - t_start) / 60:.0f} min in all, load average {'/'.join(f'{v:.1f}' for v in os.getloadavg())} at the end.", '',
         '## 1. Trained in bf16 vs fp32 (both predicting in fp32)', '',
         '| recipe | seed | fp32 valid | bf16 valid | fp32 test | bf16 test | test bf16 − fp32 | epochs fp32 / bf16 | seconds fp32 / bf16 |', '|---|---|---|---|---|---|---|---|---|']
    tr = df[df.predict == 'fp32']
    for (rec, seed), g in tr.groupby(['recipe', 'seed'], sort=False):
        f, b = g[g.train == 'fp32'].iloc[0], g[g.train == 'bf16'].iloc[0]
        L.append(f"| {rec} | {seed} | {f.valid:.3f} | {b.valid:.3f} | {f.test:.3f} | {b.test:.3f} | {b.test - f.test:+.3f} | "
                 f"{int(f.epochs)} / {int(b.epochs)} | {f.seconds:.0f} / {b.seconds:.0f} |")
    for rec in a.recipes:
        g = tr[tr.recipe == rec]
        d = g[g.train == 'bf16'].test.to_numpy() - g[g.train == 'fp32'].test.to_numpy()
        dv = g[g.train == 'bf16'].valid.to_numpy() - g[g.train == 'fp32'].valid.to_numpy()
        se = lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float('nan')
        L.append(f"| **{rec}: mean difference** | | | | | | **{d.mean():+.3f} ± {se(d):.3f}** (valid {dv.mean():+.3f} ± {se(dv):.3f}) | | |")
    L += ['', '## 2. The fp32 models predicting in bf16', '', '| recipe | seed | test fp32 | test bf16 | predictions that flip | largest probability change |', '|---|---|---|---|---|---|']
    for _, x in df[df.predict == 'bf16'].iterrows():
        f = tr[(tr.recipe == x.recipe) & (tr.seed == x.seed) & (tr.train == 'fp32')].iloc[0]
        L.append(f"| {x.recipe} | {x.seed} | {f.test:.3f} | {x.test:.3f} | {x.flips:.3f} | {x.max_prob_diff:.4f} |")
    L += ['', '## 3. Relative error of each module\'s output in bf16 (fp32 models, one test batch; mean over seeds)', '',
          'Relative error = ||out_bf16 − out_fp32|| / ||out_fp32||; bf16 keeps 8 bits of mantissa (about 0.4% per rounding), so a '
          'module far above that amplifies rounding. The ten largest per recipe:', '']
    for rec in a.recipes:
        e = sorted(((n, np.mean(v)) for (r, n), v in errs.items() if r == rec), key=lambda t: -t[1])
        L += [f'**{rec}**', '', '| module | relative error |', '|---|---|'] + [f"| `{n}` | {v:.4f} |" for n, v in e[:10]] + ['']
    Path(a.out).write_text('\n'.join(L) + '\n'); print('\n'.join(L))

if __name__ == '__main__': main()
