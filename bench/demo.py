"""The README's demo figures: `asc-train --demo` run for several seeds, summarised as mean ± std.

Runs `asc-train --demo --recipe RECIPE --seed S --out DIR` (the seed sets the training and the synthetic
data) in a fresh process per seed, reads each run's report.json, and writes `bench/demo.json` (every run's
figures and the summary) and `bench/demo.md` (the table the README shows, read by nbs/index.ipynb).

Usage: python bench/demo.py [--recipe li2025] [--seeds 0 1 2] [--out bench/demo]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, json, platform, resource, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

def load_avg(): return '/'.join(f'{v:.2f}' for v in os.getloadavg())

def summarize(runs):
    "figure -> {mean, std, n} over runs: the library's `summarize_runs` (sample std), as asc-train --seeds reports it"
    from asc_nbdev.report.summaries import summarize_runs
    return summarize_runs(runs)

def markdown(d) -> str:
    s = d['summary']; f = lambda k: f"{s[k]['mean']:.3f} ± {s[k]['std'] or 0:.3f}" if k in s else '–'
    rows = ['| stage | validation accuracy | validation balanced accuracy | test accuracy | test, unseen cities |', '|---|---|---|---|---|']
    for st in d['stages']:
        rows.append(f"| {st} | {f(f'{st}.accuracy')} | {f(f'{st}.balanced_accuracy')} | {f(f'{st}.test.accuracy')} | {f(f'{st}.test.unseen_cities_accuracy')} |")
    kept = ', '.join(f"{k} {v}x" for k, v in d['kept'].items())
    return '\n'.join([f"`{d['command']}` ({d['recipe']} quick recipe, synthetic `demo` data; validation on the "
                      f"{d['split']} split, predictions averaged per {d['aggregate']}), mean ± std over seeds {d['seeds']}; "
                      f"{d['machine']}, {d['seconds_mean']:.0f} s per run on average (load {d['load']}), "
                      f"peak memory {d['peak_mb']:.0f} MB:", '', *rows, '',
                      f"Pseudo-label accuracy against the hidden truth {f('pseudo_r1.accuracy')} (chance 0.1). "
                      f"Final model (kept by validation): {kept}. Final test accuracy {f('test.accuracy')}, "
                      f"on cities never seen in training {f('test.unseen_cities_accuracy')} (std: sample standard deviation)."])

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--recipe', default='li2025'); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--out', default=str(Path(__file__).parent/'demo'), help='writes OUT.json and OUT.md')
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix='asc-bench-demo-')); runs, secs = [], []
    for s in args.seeds:
        t0 = time.time()
        r = subprocess.run(['asc-train', '--demo', '--recipe', args.recipe, '--seed', str(s), '--out', str(root/f'seed{s}')],
                           capture_output=True, text=True)
        if r.returncode: sys.exit(f'asc-train failed for seed {s}:\n{r.stderr[-3000:]}')
        secs.append(time.time() - t0)
        runs.append(json.loads((root/f'seed{s}'/'report.json').read_text()))
        print(f'seed {s}: {secs[-1]:.0f} s, load {load_avg()}', flush=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    kept = {}
    for r in runs: kept[r['kept']] = kept.get(r['kept'], 0) + 1
    d = dict(command=f"asc-train --demo --recipe {args.recipe} --seed S", script=f"python bench/demo.py --recipe {args.recipe} --seeds {' '.join(map(str, args.seeds))}",
             recipe=args.recipe, seeds=args.seeds, split=runs[0]['split'], aggregate=runs[0].get('aggregate', 'none'),
             stages=[s['name'] for s in runs[0]['stages']], kept=kept, seconds_mean=float(np.mean(secs)), peak_mb=peak, load=load_avg(),
             machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, 1 thread",
             summary=summarize(runs), runs=[{**{k: r[k] for k in ('pseudo_labels', 'test', 'kept') if k in r},
                   'stages': [{k: v for k, v in st.items() if k != 'fingerprint'} for st in r['stages']]} for r in runs])
    Path(args.out + '.json').write_text(json.dumps(d, indent=1))
    Path(args.out + '.md').write_text(markdown(d) + '\n')
    print(markdown(d))
    shutil.rmtree(root, ignore_errors=True)
