"""Everything the GPU issue measures, in one script that also runs (with its CPU columns) on a machine without one.

Prints, with the device's name:
1. feature extraction, clips/s on the same 10 s, 44.1 kHz clips: the official baseline's way (librosa, one file at a
   time), this library on the CPU, and on the GPU with threads and with decoding processes (`decoders`), against the
   decoding floor (reading + decoding alone, bench/decode_floor.py; target: within 2x of it);
2. training samples/s per model (the four architectures, full size, 500 frames, batch 64 on a GPU, 16 on the CPU) at
   fp32, bf16 and fp32 + `torch.compile`, with the fraction of step time spent waiting for data (a real
   `asc_dataloaders` loader over a feature cache) and the peak GPU memory (target: bf16 >= 1.5x fp32 on the ResNet and FCNN).
3. bf16 against fp32 accuracy: li2025 (quick) trained on the demo data per seed at both precisions, validation
   (recording split) and test accuracy (the issue: bf16 within noise of fp32);
4. the whole pipeline on this device: a tiny `asc-train --demo`, device and precision auto (every stage runs there);
5. the full-size rehearsal (bench/rehearsal.py): the four full recipes on 2,000 rows of the twin at 10 s, 44.1 kHz with an
   epoch cap of 3 (the prefetching loader on the GPU), then li2025 with --compile: minutes, memory, samples/s per stage.
Writes the same text to --out (default bench/gpu.md), after every part, so a run cut short still leaves its tables.

Usage: python bench/gpu.py [--clips 64] [--steps 20] [--seeds 8] [--parts features,train,accuracy,pipeline,compile,rehearsal] [--quick] [--out bench/gpu.md]
(`--quick`: a few clips and steps, quick models: a smoke test of the script itself on the CPU.)
"""
import os
if not __import__('torch').cuda.is_available():
    for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, contextlib, platform, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).parent))
from features import make_clips, baseline, ours   # bench/features.py: the same clips and the baseline's extraction
from asc_nbdev.all import *

def load_avg(): return '/'.join(f'{v:.2f}' for v in os.getloadavg())

def best_rate(fn, n, repeats=2):
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    return n / best

def features_part(n, lines):
    "Extraction against the official way and against the decoding floor (bench/decode_floor.py: reading + decoding alone)"
    import multiprocessing as mp
    from decode_floor import floor_rate, extract_rate, transform_ms
    cores = os.cpu_count() or 1
    if torch.cuda.is_available(): n = max(n, 512)   # enough batches of 32 for every decoding process, and clips for each floor process
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); (d/'a').mkdir(); names = make_clips(d/'a', n); paths = [d/'a'/f'{x}.wav' for x in names]
        baseline(d/'a', names[:1]); ours(d/'a', names[:2], d/'w', device='cpu')   # warm-up: imports, numba compilation, FFT plans
        base = best_rate(lambda: baseline(d/'a', names[:max(4, n // 4)]), max(4, n // 4), 1)   # the slow way: a quarter of the clips
        floor = {c: max(floor_rate(paths, cores, c, mp.get_context('fork')) for _ in range(2)) for c in (False, True)}
        ways = {'this library, CPU (threads, workers 2)': dict(device='cpu', workers=2)}
        if torch.cuda.is_available():
            ours(d/'a', names[:2], d/'wg', device='cuda')
            ways.update({'this library, GPU (threads, workers 4)': dict(device='cuda', workers=4, batch_size=32),
                         **{f'this library, GPU (decoders {k})': dict(device='cuda', decoders=k, workers=0, batch_size=32)
                            for k in sorted({4, min(8, cores), cores})}})
        rate = {w: {c: max(extract_rate(d/'a', names, d/'o', c, **kw) for _ in range(2)) for c in (False, True)} for w, kw in ways.items()}
        lines += ['## Feature extraction (10 s, 44.1 kHz clips)', '',
                  f'The target: within 2x of the decoding floor (reading + decoding alone in {cores} processes, `bench/decode_floor.py`): '
                  f'{floor[False]:.0f} clips/s with the files in the page cache, {floor[True]:.0f} read from the disk.', '',
                  '| way | clips/s (warm) | clips/s (cold) | x official way | floor / this (warm) | floor / this (cold) |', '|---|---|---|---|---|---|',
                  f'| official baseline (librosa, one file at a time) | {base:.1f} | – | 1.0 | {floor[False] / base:.1f} | – |']
        for w, r in rate.items():
            lines.append(f'| {w} | {r[False]:.1f} | {r[True]:.1f} | {r[False] / base:.1f} | {floor[False] / r[False]:.1f} | {floor[True] / r[True]:.1f} |')
        if not torch.cuda.is_available(): lines.append('| this library, GPU | no GPU on this machine | – | – | – | – |')
        lines += ['', f'LogMel alone: {transform_ms("cpu"):.2f} ms per clip on one CPU thread'
                  + (f', {transform_ms("cuda", 64):.3f} ms on the GPU (batch 64)' if torch.cuda.is_available() else '') + f'. load {load_avg()}', '']

def train_rate(model, dl, steps, precision, compile_, device):
    "samples/s of forward + backward + Adam over `steps` batches of `dl`, and the share of time waiting for data"
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    fwd = torch.compile(model) if compile_ else model
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == 'bf16' else contextlib.nullcontext
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    it, wait, n, t_all = iter(dl), 0., 0, 0.
    for i in range(steps + 3):   # 3 warm-up steps (compilation, cuDNN autotuning) not counted
        t0 = time.perf_counter()
        try: b = next(it)
        except StopIteration: it = iter(dl); b = next(it)
        x, c, t, y = (v.to(device, non_blocking=True) for v in b[:4])
        sync(); t1 = time.perf_counter()
        with ctx(): loss = F.cross_entropy(fwd(x, c, t).float(), y)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); sync(); t2 = time.perf_counter()
        if i >= 3: wait += t1 - t0; t_all += t2 - t0; n += len(x)
    return n / t_all, wait / t_all

RES, PEAK, SECTIONS = {}, {}, {}   # training figures (model, precision, compiled) -> (samples/s, wait); the report's parts

def training_part(steps, quick, out, compile_only=False):
    "Training samples/s per model: fp32 and bf16 first, then (compile_only=True, run last: the slow part) fp32 + torch.compile"
    device = pick_device('auto'); gpu = device.type == 'cuda'
    bs = 64 if gpu else 16
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); make_synthetic(d/'data', preset='tiny', n_clips=max(160, 4 * bs), duration=10.0 if not quick else 2.0, sr=44100, progress=False)
        meta = read_meta(d/'data'/'dev_metadata.csv').assign(label=lambda m: np.arange(len(m)) % N_CLASSES)   # every clip a training target
        cache = build_feature_cache(d/'data'/'audio', meta.filename, d/'f', progress=False, verbose=False, device=str(device))
        dls = asc_dataloaders(meta, cache, 'random', bs=bs, device=device)   # the library's loader: pinned batches on a GPU
        archs = ('se_trans', 'resnet_attention', 'mobileascnet', 'fcnn')
        configs = [('fp32', True)] if compile_only else [('fp32', False), ('bf16', False), ('fp32-sync', False)]
        for prec, comp in configs:
            # 'fp32-sync': the loader without its background thread (prefetch=0), for the data-wait comparison
            dl = dls.train.new(prefetch=0) if prec == 'fp32-sync' else dls.train
            for arch in archs:
                kw = QUICK_MODEL_KWARGS.get(arch, {}) if quick else {}
                if gpu: torch.cuda.reset_peak_memory_stats()
                torch.manual_seed(0); m = create_model(arch, **kw)
                try: RES[(arch, prec, comp)] = train_rate(m, dl, steps, prec.replace('-sync', ''), comp, device)
                except Exception as e: print(f'{arch} {prec} compile={comp}: {type(e).__name__}: {e}'[:300], flush=True)
                if (prec, comp) == ('fp32', False): PEAK[arch] = torch.cuda.max_memory_allocated() / 2**30 if gpu else float('nan')
                print(arch, prec, 'compiled' if comp else 'eager', RES.get((arch, prec, comp)), flush=True)
        sec = [f'## Training ({"GPU " + torch.cuda.get_device_name() if gpu else "CPU, 1 thread"}; batch {bs}, '
               f'{cache.features.shape[1]} frames, {steps} timed steps after 3 warm-up steps)', '',
               f'| model | fp32 samples/s | bf16 samples/s | bf16 / fp32 | fp32 + compile samples/s | compile / eager | data wait (fp32) | data wait (bf16) | '
               f'fp32 samples/s, loader without prefetch | data wait (fp32, without prefetch) | peak GPU memory (fp32) |',
               '|---|---|---|---|---|---|---|---|---|---|---|']
        for arch in archs:
            g = lambda *k: RES.get((arch,) + k, (float('nan'), float('nan')))
            f32, b16, cmp = g('fp32', False)[0], g('bf16', False)[0], g('fp32', True)[0]
            sec.append(f'| {arch} | {f32:.1f} | {b16:.1f} | {b16 / f32:.2f} | {cmp:.1f} | {cmp / f32:.2f} | {g("fp32", False)[1]:.1%} | {g("bf16", False)[1]:.1%} | '
                       f'{g("fp32-sync", False)[0]:.1f} | {g("fp32-sync", False)[1]:.1%} | '
                       + (f'{PEAK.get(arch, float("nan")):.2f} GiB |' if gpu else '– |'))
        sec += ['', f'The loader makes batches ahead in a background thread (prefetch {dls.train.prefetch} here) and copies them without blocking; '
                f'the "without prefetch" columns are the same loader with prefetch=0.',
                '', f'load {load_avg()}; targets: bf16 >= 1.5x fp32 on resnet_attention and fcnn (GPU).'
                + ('' if compile_only else ' The compile column is measured last; "nan" there: not (yet) measured.'), '']
        SECTIONS['train'] = sec; write(out)

def accuracy_part(seeds, quick, out):
    "Does bf16 train as well as fp32? li2025 (quick), demo data, recording split: validation and test accuracy per seed"
    device = pick_device('auto'); gpu = device.type == 'cuda'
    precs = ('fp32', 'bf16')
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); make_synthetic(d/'data', preset='demo', **(dict(n_clips=200) if quick else {}), progress=False)
        dev, ev = read_meta(d/'data'/'dev_metadata.csv'), read_meta(d/'data'/'eval_metadata.csv')
        truth = pd.read_csv(d/'data'/'truth.csv')
        ev = ev.drop(columns=['scene_label', 'label'], errors='ignore').merge(truth[['filename', 'scene_label']], on='filename'); ev['label'] = [class_index(c) for c in ev.scene_label]
        cache = build_feature_cache(d/'data'/'audio', list(dev.filename) + list(ev.filename), d/'f', progress=False, verbose=False, device=str(device))
        rows = []
        for seed in seeds:
            for prec in precs:
                r = get_recipe('li2025', quick=True).replace(seed=seed)
                if quick: r = r.replace(epochs=2)
                dls = asc_dataloaders(dev, cache, 'recording', bs=r.bs, seed=seed, device=device, city_dropout=r.city_dropout, time_dropout=r.time_dropout)
                learn, s = fit_recipe(r, dls, path=d/'m', progress=False, precision=prec)
                p, _ = learn.get_preds(dl=dls.test_dl(ev, with_labels=True))
                rows.append(dict(seed=seed, precision=prec, valid=s['accuracy'], test=float((p.argmax(1).numpy() == ev.label.to_numpy()).mean()),
                                 epochs=s['epochs_run'], seconds=s['seconds']))
                print(rows[-1], flush=True)
        df = pd.DataFrame(rows)
        summ = df.groupby('precision')[['valid', 'test', 'seconds']].agg(['mean', 'std']).reindex(list(precs))
        lines = SECTIONS['accuracy'] = []
        lines += [f'## bf16 vs fp32 accuracy (li2025 quick, demo data, recording split, seeds {list(seeds)}, '
                  f'{"GPU " + torch.cuda.get_device_name() if gpu else "CPU"})', '', df.round(3).to_markdown(index=False), '',
                  '| precision | valid mean ± std | test mean ± std | seconds per fit |', '|---|---|---|---|']
        for p in precs:
            v = summ.loc[p]
            lines.append(f"| {p} | {v[('valid', 'mean')]:.3f} ± {v[('valid', 'std')]:.3f} | {v[('test', 'mean')]:.3f} ± {v[('test', 'std')]:.3f} | {v[('seconds', 'mean')]:.1f} |")
        dt = df.pivot(index='seed', columns='precision', values='test'); diff = (dt['bf16'] - dt['fp32'])
        lines += ['', f'test accuracy bf16 - fp32 per seed: {", ".join(f"{x:+.3f}" for x in diff)}; mean {diff.mean():+.3f}, '
                  f'std of fp32 over seeds {dt["fp32"].std():.3f}', '']
        write(out)

def pipeline_part(quick, out):
    "The whole pipeline on the device: asc-train --demo (tiny), device and precision auto, every stage"
    import subprocess
    with tempfile.TemporaryDirectory() as d:
        (Path(d)/'train.py').write_text('from asc_nbdev.cli import asc_train\nasc_train()\n')   # run as __main__, like the console script
        cmd = [sys.executable, str(Path(d)/'train.py'), '--demo', '--out', str(Path(d)/'run'), '--n-clips', '200',
               '--epochs', '2', '--rounds', '1']
        t0 = time.time(); p = subprocess.run(cmd, capture_output=True, text=True); dt = time.time() - t0
        tail = (p.stdout + p.stderr).strip().splitlines()[-12:]
        SECTIONS['pipeline'] = lines = []
        lines += ['## The whole pipeline here (`asc-train --demo --n-clips 200 --epochs 2 --rounds 1`, device and precision auto)', '',
                  f'exit status {p.returncode}, {dt:.0f} s; last lines:', '', '```', *tail, '```', '']
        write(out)

def rehearsal_part(quick, out, clips=2000, epochs=3, timeout=360):
    """bench/rehearsal.py on this device: the four full recipes through the pipeline on `clips` rows of the twin at the real clip
    format with an epoch cap (the prefetching loader on a GPU), then li2025 again with --compile; writes bench/rehearsal_gpu.md"""
    import subprocess
    here = Path(__file__).parent
    runs = [('eager', ['--clips', str(clips), '--max-epochs', str(epochs)]),
            ('compiled (li2025)', ['--clips', str(clips), '--max-epochs', str(epochs), '--recipes', 'li2025', '--compile', '--suffix', '-compiled'])]
    SECTIONS['rehearsal'] = lines = ['## The full recipes at the real clip format (bench/rehearsal.py)', '']
    for name, args in runs:
        if quick: args = ['--quick'] + args[2:]
        md = Path(tempfile.gettempdir())/f'rehearsal_{name.split()[0]}.md'
        md.unlink(missing_ok=True)                       # a run that fails shows its own output, not an older file
        cmd = [sys.executable, str(here/'rehearsal.py'), *args, '--work', str(Path(tempfile.gettempdir())/'asc_rehearsal_gpu'),   # one data set
               '--out', str(md)]
        t0 = time.time()
        try: p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            p = subprocess.CompletedProcess(cmd, f'timeout ({timeout} s)', (e.stdout or b'').decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or ''), '')
        dt = time.time() - t0
        lines += [f'### {name}: `{" ".join(cmd[1:])}` (exit {p.returncode}, {dt / 60:.1f} min)', '']
        lines += md.read_text().split('\n')[2:] if md.exists() else ['```', *(p.stdout + p.stderr).strip().splitlines()[-15:], '```']
        lines.append('')
        write(out)
        if not quick and md.exists(): shutil.copy(md, here/f'rehearsal_gpu{"" if name == "eager" else "_compiled"}.md')

def write(out):
    text = '\n'.join(sum((SECTIONS[k] for k in ('head', 'features', 'train', 'accuracy', 'pipeline', 'rehearsal') if k in SECTIONS), []))
    Path(out).write_text(text + '\n'); return text

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clips', type=int, default=64); ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--seeds', type=int, default=8)
    ap.add_argument('--parts', default='features,train,accuracy,pipeline,compile,rehearsal', help='comma-separated: features,train,accuracy,pipeline,compile,rehearsal'); ap.add_argument('--out', default=str(Path(__file__).parent/'gpu.md'))
    a = ap.parse_args()
    if a.quick: a.clips, a.steps = min(a.clips, 8), min(a.steps, 3)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f'no GPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus'
    lines = ['# GPU measurements', '', f'`python bench/gpu.py{" --quick" if a.quick else ""} --clips {a.clips} --steps {a.steps}`; device: {dev}; '
             f'torch {torch.__version__}.', '']
    if not torch.cuda.is_available():
        lines += ['No GPU was lent to the session that ran this: only the CPU columns are measured; the GPU columns stay empty.', '']
    SECTIONS['head'] = lines
    parts = a.parts.split(',')
    if 'features' in parts: SECTIONS['features'] = f = []; features_part(a.clips, f); print('\n'.join(write(a.out).splitlines()[-12:]), flush=True)
    if 'train' in parts: training_part(a.steps, a.quick, a.out)
    if 'accuracy' in parts: accuracy_part(range(a.seeds), a.quick, a.out)
    if 'pipeline' in parts: pipeline_part(a.quick, a.out)
    if 'compile' in parts and (torch.cuda.is_available() or a.quick): training_part(a.steps, a.quick, a.out, compile_only=True)
    if 'rehearsal' in parts: rehearsal_part(a.quick, a.out)
    print(write(a.out))
