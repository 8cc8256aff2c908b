"""Little labeled data: one validation split against `--cv 5` fold ensembles and `--cv 5 --distill`, on many datasets.

Each dataset seed makes a synthetic CAS-like set with the real structure and scarce labels (500 clips of 1 s at 16 kHz:
about 425 dev clips of which about 128 are labeled, in about 40 recordings, 4 per class, as CAS 2023 dev has 2 to 12;
the rest unlabeled; about 75 eval clips scored against the hidden truth, a third of them in cities dev never heard).
The dataset seeds are fixed here, before any comparison (0 .. N-1). Per recipe (quick variants) and dataset:

- `single`:  today's pipeline, one recording-grouped validation split (`asc-train`);
- `cv5`:     `--cv 5`: five fold models in every training stage, out-of-fold figures, the ensemble as teacher and final model;
- `distill`: `--cv 5 --distill`: the same run (its stages are reused), then one student on the ensemble's soft targets.

Reported, paired per dataset (mean and standard error of the per-dataset differences):
- final test accuracy (and on seen / unseen cities);
- how often the kept stage is the one with the better test accuracy (ties count as right);
- |estimate - test|: the figure the user is shown (validation accuracy of the kept stage; out of fold for --cv) against the truth;
- wall time and the number of models trained;
- pseudo-label rules on the same teachers' probabilities (argmax, threshold 0.9, top share 0.5, top 0.5 balanced):
  clips accepted and their accuracy.

Interrupted? Run it again with the same --work: finished runs are read back (their report.json), stages resume.

Usage: OMP_NUM_THREADS=1 python bench/small_data.py [--seeds 10] [--recipes li2025 baseline] [--epochs 10] [--work DIR] [--out bench/small_data.md]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, json, platform, shutil, sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from asc_nbdev.core import CLASSES
from asc_nbdev.files import load_json, save_json
from asc_nbdev.pipeline.config import RunConfig
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.pipeline.run import run_pipeline
from asc_nbdev.pipeline.pseudo import pseudo_label, pseudo_report

DATA = dict(preset='quick', n_clips=500, duration=1.0, sr=16000, labeled_frac=0.3)
RULES = {'argmax': dict(mode='argmax'), 'threshold 0.9': dict(mode='threshold', threshold=0.9),
         'top 0.5': dict(mode='top', share=0.5), 'top 0.5 balanced': dict(mode='top', share=0.5, balance=True)}

def load_avg(): return '/'.join(f'{v:.1f}' for v in os.getloadavg())

def one_run(work, recipe, seed, variant, epochs, log):
    "Run (or read back) one variant on one dataset; returns its report"
    data = work/f'data{seed}'
    out = work/recipe/f'seed{seed}'/('single' if variant == 'single' else 'cv5')
    done = out/f'report_{variant}.json'
    if done.exists(): return load_json(done)
    cfg = RunConfig(recipe=recipe, quick=True, audio=str(data/'audio'), meta=str(data/'dev_metadata.csv'), eval_meta=str(data/'eval_metadata.csv'),
                    truth=str(data/'truth.csv'), out=str(out), epochs=epochs,
                    cv=None if variant == 'single' else 5, distill=variant == 'distill')
    t0 = time.time(); la = load_avg()
    rep = run_pipeline(cfg, log=lambda *a: None, progress=False)
    rep = dict(rep, bench=dict(wall=round(time.time() - t0, 1), load_start=la, load_end=load_avg()))
    save_json(rep, done)
    log(f"{recipe} seed {seed} {variant}: test {rep.get('test', {}).get('accuracy', float('nan')):.3f}, estimate {rep['estimate']['accuracy']:.3f}, "
        f"kept {rep['kept']}, {rep['bench']['wall']:.0f} s (load {la} -> {load_avg()})")
    return rep

def figures(rep, variant):
    "The per-run figures of the tables"
    trained = [s for s in rep['stages'] if s.get('role') not in ('reference', 'student') and s['name'] != 'stage0_pretrain']
    t = rep.get('test') or {}
    kept = next(s for s in trained if s['name'] == rep['kept'])
    best_test = max(s['test']['accuracy'] for s in trained)
    stage_s = sum(s.get('seconds', 0) for s in rep['stages'])
    n_models = sum(s.get('models', 1) for s in rep['stages'] if 'accuracy' in s and s.get('role') != 'student') + (1 if variant == 'distill' else 0)
    return dict(test=t.get('accuracy'), test_seen=t.get('seen_cities_accuracy'), test_unseen=t.get('unseen_cities_accuracy'),
                test_bal=t.get('balanced_accuracy'), estimate=rep['estimate']['accuracy'], gap=abs(rep['estimate']['accuracy'] - t.get('accuracy', np.nan)),
                kept_right=float(kept['test']['accuracy'] >= best_test), n_stages=len(trained), kept=rep['kept'],
                stage_seconds=stage_s, models=n_models, wall=rep['bench']['wall'])

def rules_on(run_dir, truth):
    "Each pseudo-label rule on the saved teacher probabilities of round 1: accepted clips and their accuracy"
    f = Path(run_dir)/'stage2_pseudo_r1'/'teacher_probs.csv'
    if not f.exists(): return {}
    tp = pd.read_csv(f, dtype={'filename': str}); meta = tp[['filename']]
    out = {}
    for name, kw in RULES.items():
        r = pseudo_report(pseudo_label(tp[list(CLASSES)].to_numpy(), meta, **kw), truth)
        out[name] = dict(accepted=r['accepted'], total=r['total'], accuracy=r['accuracy'],
                         classes=sum(v > 0 for v in r['per_class'].values()), min_class=min(v for v in r['per_class'].values()))
    return out

def mse(v):
    v = np.asarray([x for x in v if x is not None and x == x], float)
    if len(v) == 0: return '–'
    return f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}" if len(v) > 1 else f"{v.mean():.3f}"

def markdown(F, R, args, info, started, seconds) -> str:
    V = ('single', 'cv5', 'distill')
    L = ["# Little labeled data: one validation split, `--cv 5` fold ensembles, `--cv 5 --distill`", '',
         f"`OMP_NUM_THREADS=1 python bench/small_data.py --seeds {args.seeds} --epochs {args.epochs}` (started {started}; the runs took {seconds / 60:.0f} min in all). "
         f"{args.seeds} synthetic datasets, seeds 0 to {args.seeds - 1} fixed before any run (`make_synthetic({', '.join(f'{k}={v!r}' for k, v in DATA.items())})`: "
         f"{info}). Quick recipes with the epoch limit at {args.epochs} (early stopping as the recipe says), one pseudo-label round as the recipes do, "
         f"metadata on; `single` = today's one recording-grouped validation split (valid_pct 0.2), `cv5` = `--cv 5`, `distill` = `--cv 5 --distill` "
         f"(the cv5 run's stages reused, then the student: the recipe's own model). Test = the eval clips against the hidden truth, "
         f"predictions averaged per session. Mean ± standard error over the datasets; differences are paired per dataset. "
         f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on {torch.get_num_threads()} thread; "
         f"load average beside each run in the log (`--work`/log.txt).", '']
    for rec in args.recipes:
        f = F[rec]; seeds = sorted(f['single'])
        L += [f"## {rec} (quick)", '', '| | single split | --cv 5 (ensemble) | --cv 5 --distill |', '|---|---|---|---|']
        rows = [('final test accuracy', 'test'), ('  seen cities', 'test_seen'), ('  unseen cities', 'test_unseen'), ('test balanced accuracy', 'test_bal'),
                ('estimate shown (kept stage; out of fold for --cv)', 'estimate'), ('abs(estimate - test)', 'gap'),
                ('kept stage has the better test accuracy (share of datasets)', 'kept_right'), ('models trained', 'models'), ('wall seconds', 'wall')]
        for label, k in rows:
            L.append(f"| {label} | " + ' | '.join(mse([f[v][s][k] for s in seeds if s in f[v]]) for v in V) + ' |')
        L += ['', '| paired difference (same datasets) | test accuracy | unseen cities | abs(estimate - test) | datasets better / worse |', '|---|---|---|---|---|']
        for a, b in (('cv5', 'single'), ('distill', 'single'), ('distill', 'cv5')):
            ss = [s for s in seeds if s in f[a] and s in f[b]]
            d = [f[a][s]['test'] - f[b][s]['test'] for s in ss]
            du = [(f[a][s]['test_unseen'] or np.nan) - (f[b][s]['test_unseen'] or np.nan) for s in ss]
            dg = [f[a][s]['gap'] - f[b][s]['gap'] for s in ss]
            L.append(f"| {a} − {b} | {mse(d)} | {mse(du)} | {mse(dg)} | {sum(x > 0 for x in d)} / {sum(x < 0 for x in d)} |")
        L += ['', 'Kept stage per dataset (single / cv5): ' + ', '.join(f"{s}: {f['single'][s]['kept'].split('_')[0]}/{f['cv5'][s]['kept'].split('_')[0]}" for s in seeds if s in f['cv5']), '']
        L += ['Pseudo-label rules on the same round-1 teacher probabilities (clips accepted of the unlabeled ones, their accuracy against the truth, '
              'classes with at least one accepted clip, fewest clips of a class); teacher = the single-split stage-1 model or the cv5 ensemble:', '',
              '| rule | teacher | accepted | accuracy of the accepted | classes | fewest per class |', '|---|---|---|---|---|---|']
        for rule in RULES:
            for v in ('single', 'cv5'):
                rr = [R[rec][v][s][rule] for s in seeds if rule in R[rec][v].get(s, {})]
                if not rr: continue
                L.append(f"| {rule} | {v} | {mse([r['accepted'] for r in rr])} of {mse([r['total'] for r in rr])} | {mse([r['accuracy'] for r in rr])} | "
                         f"{mse([r['classes'] for r in rr])} | {mse([r['min_class'] for r in rr])} |")
        L.append('')
    return '\n'.join(L)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', type=int, default=10); ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--epochs', type=int, default=10); ap.add_argument('--work', default='/tmp/asc_small_data')
    ap.add_argument('--out', default=str(Path(__file__).with_name('small_data.md')))
    args = ap.parse_args()
    work = Path(args.work); work.mkdir(parents=True, exist_ok=True)
    logf = open(work/'log.txt', 'a')
    def log(s): print(s, flush=True); logf.write(s + '\n'); logf.flush()
    started, t0 = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), time.time()
    first = (work/'log.txt').read_text().split('\n', 1)[0] if (work/'log.txt').exists() else ''
    if first.startswith('=== '): started = first[4:].split(': ', 1)[0]   # a rerun that reads finished runs back: the first start
    info = []
    for s in range(args.seeds):
        make_synthetic(work/f'data{s}', seed=s, progress=False, **DATA)
        m = read_meta(work/f'data{s}'/'dev_metadata.csv'); l = m[m.label >= 0]
        info.append((len(m), len(l), l.recording.nunique(), len(read_meta(work/f'data{s}'/'eval_metadata.csv'))))
    a = np.array(info)
    info_s = (f"dev clips {a[:, 0].min()}-{a[:, 0].max()}, labeled {a[:, 1].min()}-{a[:, 1].max()} in {a[:, 2].min()}-{a[:, 2].max()} recordings, "
              f"eval {a[:, 3].min()}-{a[:, 3].max()} clips")
    log(f"=== {started}: {info_s}")
    F = {r: {v: {} for v in ('single', 'cv5', 'distill')} for r in args.recipes}
    R = {r: {v: {} for v in ('single', 'cv5')} for r in args.recipes}
    for s in range(args.seeds):   # dataset by dataset, so that an interrupted run still has paired results
        truth = pd.read_csv(work/f'data{s}'/'truth.csv', dtype=str)
        for rec in args.recipes:
            for v in ('single', 'cv5', 'distill'):
                F[rec][v][s] = figures(one_run(work, rec, s, v, args.epochs, log), v)
            F[rec]['distill'][s]['wall'] += F[rec]['cv5'][s]['wall']   # the distill run reuses the cv5 run's stages: its cost is both
            for v in ('single', 'cv5'): R[rec][v][s] = rules_on(work/rec/f'seed{s}'/v, truth)
        spent = sum(F[r][v][s]['wall'] for r in args.recipes for v in ('single', 'distill') for s in F[r][v])   # distill's wall holds cv5's
        Path(args.out).write_text(markdown(F, R, args, info_s, started, spent))
        save_json(dict(figures=F, rules=R), work/'small_data.json')
    log(f"wrote {args.out}")

if __name__ == '__main__': main()
