"""Feature extraction against the decoding floor: how fast can 10 s, 44.1 kHz WAVs be read and decoded at all, and how
close does `build_feature_cache` come to that?

1. The floor: N worker processes read and decode the clips (`load_audio`, as the cache does) and do nothing else, for
   N = 1 .. the machine's cores; with the files in the page cache (warm) and evicted from it first (cold:
   `posix_fadvise(DONTNEED)` on every file, so they come from the disk).
2. Extraction, the whole `build_feature_cache` (decoding, log-mel, float16, the cache files): decoding and computing in
   threads (`workers`, the default way), and decoding in worker processes (`decoders`) while this process computes
   (on the CPU in `workers` threads, on a GPU in one call per batch).
3. The ratio extraction / floor at the machine's core count (the target: within 2x), and the transform alone (LogMel
   on decoded clips, no reading) per clip, which says what limits the CPU.

Each figure is the best of `--repeats` runs, interleaved. Writes bench/decode_floor.md (--out) and prints it.

Usage: python bench/decode_floor.py [--clips 96] [--repeats 3] [--out bench/decode_floor.md]
"""
import os
if not __import__('torch').cuda.is_available():
    for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, multiprocessing as mp, platform, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
sys.path.insert(0, str(Path(__file__).parent))
from features import make_clips, SR, SECONDS   # bench/features.py: the same 10 s, 44.1 kHz, 16-bit clips

def load_avg(): return '/'.join(f'{v:.2f}' for v in os.getloadavg())

def evict(paths):
    "Drop the files from the page cache, so the next read comes from the disk (Linux)"
    os.sync()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally: os.close(fd)

def _decode_share(paths):
    "Read and decode `paths` into one reused buffer, as the cache's decoding does; nothing else"
    from asc_nbdev.audio.io import load_audio
    buf = np.empty(int(SR*SECONDS), np.float32)
    for p in paths: load_audio(p, duration=SECONDS, out=buf)
    return len(paths)

def floor_rate(paths, procs, cold, ctx):
    "Clips/s of reading + decoding alone in `procs` processes (started before the clock)"
    with ctx.Pool(procs) as pool:
        pool.map(_decode_share, [[] for _ in range(procs)])          # the processes are up, asc_nbdev imported
        if cold: evict(paths)
        t0 = time.perf_counter()
        n = sum(pool.map(_decode_share, [paths[i::procs] for i in range(procs)]))
        return n / (time.perf_counter() - t0)

_k = [0]
def extract_rate(folder, names, out, cold, **kw):
    "Clips/s of a fresh `build_feature_cache` (a new folder each run)"
    from asc_nbdev.audio.cache import build_feature_cache
    _k[0] += 1
    if cold: evict([folder/f'{n}.wav' for n in names])
    t0 = time.perf_counter()
    build_feature_cache(folder, names, Path(f'{out}{_k[0]}'), clip_seconds=SECONDS, progress=False, verbose=False, **kw)
    return len(names) / (time.perf_counter() - t0)

def transform_ms(device, n=16):
    "ms per clip of LogMel alone on decoded clips (batch of `n`; CPU: one thread, a clip at a time, as the cache computes)"
    from asc_nbdev.audio.logmel import LogMel
    from asc_nbdev.processes import torch_threads
    m = LogMel().to(device); x = torch.randn(n, int(SR*SECONDS), device=device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    run = (lambda: m(x)) if device == 'cuda' else (lambda: [m(c) for c in x])
    with torch.inference_mode(), torch_threads(1 if device == 'cpu' else None):   # as the cache: one thread on the CPU
        run(); sync(); best = float('inf')
        for _ in range(3):
            t0 = time.perf_counter(); run(); sync(); best = min(best, time.perf_counter() - t0)
    return 1000 * best / n

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--clips', type=int, default=512 if torch.cuda.is_available() else 96,
                    help='clips (default 96, on a GPU 512: enough batches of 32 for every decoding process)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', default=str(Path(__file__).with_suffix('.md')))
    a = ap.parse_args()
    cores, gpu = os.cpu_count() or 1, torch.cuda.is_available()
    ctx = mp.get_context('fork')
    tmp = Path(tempfile.mkdtemp(prefix='bench_floor_'))
    t_start, load0 = time.time(), load_avg()
    try:
        names = make_clips(tmp, a.clips); paths = [tmp/f'{n}.wav' for n in names]
        mb = sum(p.stat().st_size for p in paths) / 2**20
        extract_rate(tmp, names[:4], tmp/'warm', False)        # warm-up: imports, FFT plans
        procs = sorted({1, 2, cores} if cores <= 4 else {1, 2, 4, cores})
        floors = {(n, c): 0. for n in procs for c in (False, True)}
        configs = {'threads, workers 0': dict(workers=0), 'threads, workers 1': dict(workers=1), f'threads, workers {cores}': dict(workers=cores),
                   'decoders 1, workers 1': dict(decoders=1, workers=1), f'decoders 1, workers {cores}': dict(decoders=1, workers=cores),
                   f'decoders {cores}, workers {cores}': dict(decoders=cores, workers=cores)}
        if gpu: configs = {'GPU, threads, workers 4': dict(workers=4, device='cuda', batch_size=32),
                           **{f'GPU, decoders {d}': dict(decoders=d, workers=0, device='cuda', batch_size=32) for d in sorted({2, 4, min(8, cores), cores})}}
        ext = {(k, c): 0. for k in configs for c in (False, True)}
        for _ in range(a.repeats):
            for cold in (False, True):
                for n in procs: floors[(n, cold)] = max(floors[(n, cold)], floor_rate(paths, n, cold, ctx))
                for k, kw in configs.items(): ext[(k, cold)] = max(ext[(k, cold)], extract_rate(tmp, names, tmp/'out', cold, **kw))
            print('.', end='', flush=True)
        print()
        dec_ms = 1000 / floors[(1, False)]
        tr = {'cpu': transform_ms('cpu')}
        if gpu: tr['cuda'] = transform_ms('cuda', 64)
        fl = {c: floors[(cores, c)] for c in (False, True)}
        best = {c: max((v, k) for (k, cc), v in ext.items() if cc == c) for c in (False, True)}
        dev = f'GPU {torch.cuda.get_device_name()}, ' if gpu else 'no GPU, '
        L = ['# Feature extraction against the decoding floor', '',
             f'`python bench/decode_floor.py --clips {a.clips} --repeats {a.repeats}`: {a.clips} clips of {SECONDS:g} s at {SR} Hz, mono 16-bit WAV '
             f'({mb:.0f} MB); {dev}{cores} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}; best of {a.repeats} '
             f'interleaved runs; load average {load0} at the start, {load_avg()} at the end; {(time.time() - t_start) / 60:.1f} min.', '',
             '## 1. The floor: reading + decoding alone, in N processes', '',
             '| processes | warm (page cache) clips/s | cold (from the disk) clips/s |', '|---|---|---|']
        L += [f'| {n} | {floors[(n, False)]:.0f} | {floors[(n, True)]:.0f} |' for n in procs]
        L += ['', f'One process decodes a clip in {dec_ms:.2f} ms (warm).', '',
              '## 2. Extraction (`build_feature_cache`, the whole cache)', '',
              '| way | warm clips/s | cold clips/s | warm / floor | cold / floor |', '|---|---|---|---|---|']
        L += [f'| {k} | {ext[(k, False)]:.0f} | {ext[(k, True)]:.0f} | {fl[False] / ext[(k, False)]:.1f}x slower | '
              f'{fl[True] / ext[(k, True)]:.1f}x slower |' for k in configs]
        L += ['', f'Floor at {cores} processes: {fl[False]:.0f} clips/s warm, {fl[True]:.0f} cold. Best extraction: {best[False][0]:.0f} clips/s warm '
              f'({best[False][1]}), {best[True][0]:.0f} cold ({best[True][1]}): '
              f'**{fl[False] / best[False][0]:.1f}x** and **{fl[True] / best[True][0]:.1f}x** the floor (target: within 2x).', '',
              '## 3. What limits it: the transform alone', '',
              f'LogMel on decoded clips, no reading: {tr["cpu"]:.2f} ms per clip on one CPU thread (a clip at a time, as the cache computes on the CPU)'
              + (f'; {tr["cuda"]:.3f} ms per clip on the GPU (batch 64)' if gpu else '') + f'. Decoding: {dec_ms:.2f} ms per clip in one process.', '']
        cpu_bound = tr['cpu'] > 2 * dec_ms
        if not gpu:
            L += [('On this CPU the transform costs ' + f'{tr["cpu"] / dec_ms:.1f}x' + ' the decoding, so extraction is bound by the transform, not by '
                   'decoding: with every core computing, it can reach at most about ' + f'{cores * 1000 / (tr["cpu"] + dec_ms):.0f}'
                   ' clips/s (cores / (transform + decode)), whatever overlaps what. The 2x target of the decoding floor is a target for a GPU, where '
                   'the transform is cheap; decoding in worker processes (`decoders`) is the shape for it, and `bench/gpu.py` measures it there.')
                  if cpu_bound else 'The transform is cheaper than twice the decoding here: overlapping the two is what keeps extraction near the floor.', '']
        Path(a.out).write_text('\n'.join(L) + '\n'); print('\n'.join(L))
    finally: shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
