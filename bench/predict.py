"""Long recordings: window-by-window prediction of an hour-long 44.1 kHz file, its peak memory and windows per second.

Writes a one-hour 44.1 kHz 16-bit mono WAV of noise (318 MB; what it holds does not matter for speed or memory), saves
an untrained model of each recipe named (`--recipes`, the full recipes' models by default: the architecture decides the
cost, not the weights) with 10 s clips, and runs `predict(model, file, window=10)` in a fresh process per measurement,
which reports its wall time, windows per second and peak resident memory (ru_maxrss). The same for `--device cuda`
where a GPU is lent (`--devices cpu cuda`). Output: bench/predict.md.

Usage: OMP_NUM_THREADS=2 python bench/predict.py [--minutes 60] [--recipes li2025 baseline] [--devices cpu] [--work DIR]
"""
import os
import argparse, json, platform, subprocess, sys, time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time
import torch
from asc_nbdev.predict.files import predict
model, wav, device, window = sys.argv[1:5]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.time(); w = predict(model, wav, window=float(window), device=device, batch_size=32)
dt = time.time() - t0
print(json.dumps(dict(windows=len(w), seconds=dt, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      before_mb=base / 1024, threads=torch.get_num_threads(), padded=int(w.padded.sum()), end=float(w.end.max()))))
'''

def make_long(path, minutes, sr=44100):
    import numpy as np, soundfile as sf
    if path.exists() and sf.info(path).duration >= minutes * 60 - 1: return
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, 'w', sr, 1, 'PCM_16') as f:
        for _ in range(int(minutes)):   # one minute at a time: this script keeps memory small too
            f.write((rng.standard_normal(sr * 60) * 0.1).astype('float32'))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--minutes', type=float, default=60); ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--devices', nargs='+', default=['cpu']); ap.add_argument('--work', default='/tmp/asc_bench_predict')
    ap.add_argument('--out', default=str(Path(__file__).with_name('predict.md')))
    a = ap.parse_args()
    import numpy as np, torch
    from asc_nbdev.train.recipes import get_recipe, make_model
    from asc_nbdev.models.files import save_asc_model
    from asc_nbdev.audio.logmel import LogMel
    from asc_nbdev.audio.cache import FEATURE_CACHE_VERSION
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    wav = work/'long.wav'; t0 = time.time(); make_long(wav, a.minutes); made = time.time() - t0
    rows = []
    for rec in a.recipes:
        r = get_recipe(rec).replace(clip_seconds=10.0)
        fp = dict(LogMel().params, version=FEATURE_CACHE_VERSION, clip_seconds=10.0, dtype='float16')
        save_asc_model(make_model(r), work/f'{rec}.pt', r, (np.zeros(64, np.float32), np.ones(64, np.float32)), fp)
        for dev in a.devices:
            la = '/'.join(f'{v:.1f}' for v in os.getloadavg())
            p = subprocess.run([sys.executable, '-c', CHILD, str(work/f'{rec}.pt'), str(wav), dev, '10'], capture_output=True, text=True)
            if p.returncode != 0: rows.append((rec, dev, None, p.stderr.strip().splitlines()[-1][:200], la)); continue
            rows.append((rec, dev, json.loads(p.stdout.strip().splitlines()[-1]), '', la))
            print(rec, dev, rows[-1][2], flush=True)
    L = [f"# Window-by-window prediction of a {a.minutes:g}-minute file", '',
         f"`OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python bench/predict.py --minutes {a.minutes:g}` on "
         f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
         f"The file: {a.minutes:g} min of 44.1 kHz 16-bit mono ({wav.stat().st_size / 2**20:.0f} MiB on disk, written in {made:.0f} s); 10 s windows, no overlap, "
         f"32 windows per batch, each measurement in a fresh process (peak = its maximum resident memory, including Python, PyTorch and the model). "
         f"The whole file as float32 would take {a.minutes * 60 * 44100 * 4 / 2**20:.0f} MiB: reading it block by block (one minute) keeps memory near a minute's worth.", '',
         '| model (recipe) | device | windows | seconds | windows per second | audio seconds per second | peak memory MiB | memory before predicting MiB | load avg at start |',
         '|---|---|---|---|---|---|---|---|---|']
    for rec, dev, m, err, la in rows:
        if m is None: L.append(f"| {rec} | {dev} | failed: {err} | | | | | | {la} |"); continue
        L.append(f"| {get_recipe(rec).model} ({rec}) | {dev} | {m['windows']} | {m['seconds']:.1f} | {m['windows'] / m['seconds']:.1f} | "
                 f"{m['end'] / m['seconds']:.0f} | {m['peak_mb']:.0f} | {m['before_mb']:.0f} | {la} |")
    if 'cuda' not in a.devices: L += ['', 'No GPU was lent to this measurement: the table is this CPU only (`--devices cpu cuda` where one is).']
    Path(a.out).write_text('\n'.join(L) + '\n'); print('\n'.join(L))

if __name__ == '__main__': main()
