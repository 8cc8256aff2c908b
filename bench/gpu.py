"""Everything the GPU issue measures, in one script that also runs (with its CPU columns) on a machine without one.

Prints, with the device's name:
1. feature extraction, clips/s on the same 10 s, 44.1 kHz clips: the official baseline's way (librosa, one file at a
   time), this library on the CPU, and on the GPU (target: GPU >= 100x the baseline's way);
2. training samples/s per model (the four architectures, full size, 500 frames, batch 64 on a GPU, 16 on the CPU) at
   fp32, bf16 and fp32 + `torch.compile`, with the fraction of step time spent waiting for data (a real
   `asc_dataloaders` loader over a feature cache) and the peak GPU memory (target: bf16 >= 1.5x fp32 on the ResNet and FCNN).
Writes the same text to --out (default bench/gpu.md).

Usage: python bench/gpu.py [--clips 64] [--steps 20] [--quick] [--out bench/gpu.md]
(`--quick`: a few clips and steps, quick models: a smoke test of the script itself on the CPU.)
"""
import os
if not __import__('torch').cuda.is_available():
    for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, contextlib, platform, sys, tempfile, time
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F
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
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); (d/'a').mkdir(); names = make_clips(d/'a', n)
        baseline(d/'a', names[:1]); ours(d/'a', names[:2], d/'w', device='cpu')   # warm-up: imports, numba compilation, FFT plans
        base = best_rate(lambda: baseline(d/'a', names[:max(4, n // 4)]), max(4, n // 4), 1)   # the slow way: a quarter of the clips
        cpu = best_rate(lambda: ours(d/'a', names, d/'c', device='cpu'), n)
        lines += ['## Feature extraction (10 s, 44.1 kHz clips)', '', '| way | clips/s | x baseline |', '|---|---|---|',
                  f'| official baseline (librosa, one file at a time) | {base:.1f} | 1.0 |', f'| this library, CPU | {cpu:.1f} | {cpu / base:.1f} |']
        if torch.cuda.is_available():
            gpu = best_rate(lambda: ours(d/'a', names, d/'g', device='cuda'), n)
            lines.append(f'| this library, GPU ({torch.cuda.get_device_name()}) | {gpu:.1f} | {gpu / base:.1f} (target >= 100) |')
        else: lines.append('| this library, GPU | no GPU on this machine | – |')
        lines += ['', f'load {load_avg()}', '']

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

def training_part(steps, quick, lines):
    device = default_device('auto'); gpu = device.type == 'cuda'
    bs = 64 if gpu else 16
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); make_synthetic(d/'data', preset='tiny', n_clips=max(160, 4 * bs), duration=10.0 if not quick else 2.0, sr=44100, progress=False)
        meta = read_meta(d/'data'/'dev_metadata.csv').assign(label=lambda m: np.arange(len(m)) % N_CLASSES)   # every clip a training target
        cache = build_feature_cache(d/'data'/'audio', meta.filename, d/'f', progress=False, verbose=False, device=str(device))
        dls = asc_dataloaders(meta, cache, 'random', bs=bs, device=None)
        lines += [f'## Training ({"GPU " + torch.cuda.get_device_name() if gpu else "CPU, 1 thread"}; batch {bs}, '
                  f'{cache.features.shape[1]} frames, {steps} timed steps)', '',
                  '| model | fp32 samples/s | bf16 samples/s | bf16 / fp32 | fp32 + compile samples/s | data wait (fp32) | peak GPU memory (fp32) |',
                  '|---|---|---|---|---|---|---|']
        for arch in ('se_trans', 'resnet_attention', 'mobileascnet', 'fcnn'):
            kw = QUICK_MODEL_KWARGS.get(arch, {}) if quick else {}
            res = {}
            for prec, comp in (('fp32', False), ('bf16', False), ('fp32', True)):
                if comp and not gpu and not quick: res[(prec, comp)] = (float('nan'), float('nan')); continue
                if gpu: torch.cuda.reset_peak_memory_stats()
                torch.manual_seed(0); m = create_model(arch, **kw)
                try: res[(prec, comp)] = train_rate(m, dls.train, steps, prec, comp, device)
                except Exception as e: print(f'{arch} {prec} compile={comp}: {type(e).__name__}: {e}'[:300]); res[(prec, comp)] = (float('nan'), float('nan'))
                if (prec, comp) == ('fp32', False): peak = torch.cuda.max_memory_allocated() / 2**30 if gpu else float('nan')
            f32, b16, cmp = res[('fp32', False)][0], res[('bf16', False)][0], res[('fp32', True)][0]
            lines.append(f'| {arch} | {f32:.1f} | {b16:.1f} | {b16 / f32:.2f} | {cmp:.1f} | {res[("fp32", False)][1]:.1%} | '
                         + (f'{peak:.2f} GiB |' if gpu else '– |'))
            print(lines[-1], flush=True)
        lines += ['', f'load {load_avg()}; targets: bf16 >= 1.5x fp32 on resnet_attention and fcnn (GPU).', '']

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clips', type=int, default=64); ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--out', default=str(Path(__file__).parent/'gpu.md'))
    a = ap.parse_args()
    if a.quick: a.clips, a.steps = min(a.clips, 8), min(a.steps, 3)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f'no GPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus'
    lines = ['# GPU measurements', '', f'`python bench/gpu.py{" --quick" if a.quick else ""} --clips {a.clips} --steps {a.steps}`; device: {dev}; '
             f'torch {torch.__version__}.', '']
    if not torch.cuda.is_available():
        lines += ['No GPU was lent to the session that ran this: only the CPU columns are measured; the GPU columns stay empty.', '']
    features_part(a.clips, lines); print('\n'.join(lines), flush=True)
    training_part(a.steps, a.quick, lines)
    text = '\n'.join(lines); print(text)
    Path(a.out).write_text(text + '\n')
