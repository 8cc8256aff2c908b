"""Speed of the synthetic CAS-like data generator, on one core.

Prints the real-time factor (seconds of audio made per second of compute) of
1. rendering 10 s, 44.1 kHz clips of every class (audio only, in memory), and
2. `make_synthetic` end to end (plan, audio, 16-bit wav writing, CSVs) for the quick preset,
   for 100 clips of 10 s, and for the full `twin` preset (9,800 clips of 1 s at 16 kHz).
The requirement is at least 20x real time (a 10 s clip in under 0.5 s).

With --baselines it also measures `synth_baselines` (audio logistic regression, city and hour
lookups) on the quick preset for dataset seeds 0-4, on recording and on session splits, and the
margins of the checks in tests/test_synth.py::test_not_trivial_not_hopeless.

Usage: python bench/synth.py [--reps N] [--no-twin] [--baselines]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS'): os.environ[_v] = '1'
import argparse, platform, tempfile, time
from pathlib import Path
import numpy as np
try:
    import torch; torch.set_num_threads(1)
except ImportError: pass
from asc_nbdev.core import CLASSES
from asc_nbdev.data.synthetic import make_synthetic, synth_baselines
from asc_nbdev.data.synth_sound import session_params, render_clip, SessionSound

def per_class(reps=3, duration=10., sr=44100):
    "median seconds to render one clip of each class (a new session every repetition)"
    n, out = int(duration * sr), {}
    for i, c in enumerate(CLASSES):
        ts = []
        for r in range(reps + 1):   # the first one warms caches up and is not counted
            ss = SessionSound(session_params(r, i, c, 'Beijing', 8. + r), n, sr)
            t0 = time.perf_counter(); render_clip(ss, np.random.default_rng(r)); ts.append(time.perf_counter() - t0)
        out[c] = float(np.median(ts[1:]))
    return out

def end_to_end(**kw):
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter(); s = make_synthetic(d, progress=False, **kw); dt = time.perf_counter() - t0
        mb = sum(f.stat().st_size for f in (Path(d) / 'audio').glob('*.wav')) / 1e6
    return s['clips'], s['clips'] * s['duration'], dt, mb

def baselines(seeds=range(5)):
    "synth_baselines on the quick preset, dataset seeds `seeds`, recording and session splits; margins of the test's checks"
    rows, margins = [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as d:
            make_synthetic(d, preset='quick', seed=seed, progress=False)
            rec, ses = synth_baselines(d, split='recording'), synth_baselines(d, split='session')
        rows.append((seed, rec, ses)); ch = rec['chance']
        margins.append({'recording audio >= 2.5 x chance': rec['audio'] - 2.5 * ch, 'recording audio <= 0.9': 0.9 - rec['audio'],
                        'city in [2 x chance, 0.6]': min(rec['city'] - 2 * ch, 0.6 - rec['city']),
                        'pair error share > 0.15': rec['pair_error_share'] - 0.15,
                        'session audio >= recording audio + 0.1': ses['audio'] - rec['audio'] - 0.1})
    return rows, margins

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--no-twin', action='store_true', help='skip the full twin (about a minute, 314 MB in a temporary folder)')
    ap.add_argument('--baselines', action='store_true', help='also measure synth_baselines over 5 dataset seeds')
    args = ap.parse_args()
    print(f'machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; numpy {np.__version__}; threads limited to 1')
    pc = per_class(args.reps)
    print('\nrender one 10 s clip at 44.1 kHz (median of', args.reps, 'sessions)')
    for c, t in pc.items(): print(f'  {c:18s} {t * 1000:6.1f} ms  {10 / t:6.0f}x real time')
    mean = float(np.mean(list(pc.values()))); worst = max(pc.values())
    print(f'  {"mean":18s} {mean * 1000:6.1f} ms  {10 / mean:6.0f}x real time (slowest class {10 / worst:.0f}x)')
    print('\nmake_synthetic end to end (plan, audio, wav files, CSVs)')
    runs = [('quick preset (400 x 2 s)', dict(preset='quick')), ('100 clips x 10 s, 44.1 kHz', dict(preset='default', n_clips=100))]
    if not args.no_twin: runs.append(('twin preset (9800 x 1 s, 16 kHz)', dict(preset='twin')))
    for name, kw in runs:
        n, audio_s, dt, mb = end_to_end(**kw)
        print(f'  {name:34s} {dt:6.2f} s for {audio_s:6.0f} s of audio: {audio_s / dt:5.0f}x real time; {mb:.0f} MB of wav files')
    print(f'\nrequirement >= 20x real time: {"met" if 10 / worst >= 20 else "NOT met"}')
    if args.baselines:
        rows, margins = baselines()
        print('\nsynth_baselines, quick preset (5 splits of each kind per dataset seed)')
        print('  seed | recording split: audio  city  hour  pair share | session split: audio  city  hour')
        for seed, r, q in rows:
            print(f"  {seed:4d} | {r['audio']:22.3f} {r['city']:5.3f} {r['hour']:5.3f} {r['pair_error_share']:11.3f} |"
                  f" {q['audio']:20.3f} {q['city']:5.3f} {q['hour']:5.3f}")
        print('\nsmallest margin of each check in tests/test_synth.py::test_not_trivial_not_hopeless over the seeds')
        for k in margins[0]:
            m = [x[k] for x in margins]
            print(f'  {k:42s} {min(m):6.3f} (seed {int(np.argmin(m))})')
