"""Speed of the synthetic CAS-like data generator, on one core.

Prints the real-time factor (seconds of audio made per second of compute) of
1. rendering 10 s, 44.1 kHz clips of every class (audio only, in memory), and
2. `make_synthetic` end to end (plan, audio, 16-bit wav writing, CSVs) for the quick preset and
   for 100 clips of 10 s.
The requirement is at least 20x real time (a 10 s clip in under 0.5 s).

Usage: python bench/synth.py [--reps N]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ[_v] = '1'
import argparse, platform, tempfile, time
import numpy as np
try:
    import torch; torch.set_num_threads(1)
except ImportError: pass
from asc_nbdev.core import CLASSES
from asc_nbdev.data.synthetic import make_synthetic, session_params, render_clip, _SessionSound

def per_class(reps=3, duration=10., sr=44100):
    "median seconds to render one clip of each class (a new session every repetition)"
    n, out = int(duration * sr), {}
    for i, c in enumerate(CLASSES):
        ts = []
        for r in range(reps + 1):   # the first one warms caches up and is not counted
            ss = _SessionSound(session_params(r, i, c, 'Beijing', 8. + r), n, sr)
            t0 = time.perf_counter(); render_clip(ss, np.random.default_rng(r)); ts.append(time.perf_counter() - t0)
        out[c] = float(np.median(ts[1:]))
    return out

def end_to_end(**kw):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter(); s = make_synthetic(d, progress=False, **kw); dt = time.perf_counter() - t0
    return s['clips'], s['clips'] * s['duration'], dt

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--reps', type=int, default=3)
    args = ap.parse_args()
    print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy {np.__version__}; threads limited to 1')
    pc = per_class(args.reps)
    print('\nrender one 10 s clip at 44.1 kHz (median of', args.reps, 'sessions)')
    for c, t in pc.items(): print(f'  {c:18s} {t * 1000:6.1f} ms  {10 / t:6.0f}x real time')
    mean = float(np.mean(list(pc.values()))); worst = max(pc.values())
    print(f'  {"mean":18s} {mean * 1000:6.1f} ms  {10 / mean:6.0f}x real time (slowest class {10 / worst:.0f}x)')
    print('\nmake_synthetic end to end (plan, audio, wav files, CSVs)')
    for name, kw in [('quick preset (400 x 2 s)', dict(preset='quick')),
                     ('100 clips x 10 s, 44.1 kHz', dict(preset='default', n_clips=100))]:
        n, audio_s, dt = end_to_end(**kw)
        print(f'  {name:28s} {dt:6.2f} s for {audio_s:6.0f} s of audio: {audio_s / dt:5.0f}x real time')
    print(f'\nrequirement >= 20x real time: {"met" if 10 / worst >= 20 else "NOT met"}')
