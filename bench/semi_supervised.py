"""Learning from the unlabeled audio (issue 37): today's offline pseudo-labels against labels that sessions carry,
self-supervised pre-training (BYOL-A), consistency training (FixMatch, FreeMatch thresholds), test-time adaptation of
batch norm, and combinations, on many datasets in two structures.

The datasets are fixed here before any comparison: seeds 0..N-1 of `make_synthetic(preset='quick', n_clips=500,
duration=1.0, sr=16000, labeled_frac=0.3)` (as bench/small_data.py: about 128 labeled of 425 dev clips, 75 eval clips
scored against the hidden truth, a third of them in cities dev never heard), in two structures:

- (a) `sessions`: as generated, about 30 % of every session labeled: unlabeled clips share sessions with labeled ones,
  as in the real dev set (6,826 of its 6,960 unlabeled clips do);
- (b) `recordings`: the same audio and eval part, but whole recordings labeled or not (at least one recording per class,
  two where the class has them, then random recordings until as many clips are labeled as in (a)): no unlabeled clip
  shares a session or recording with a labeled one.

Per recipe (quick), dataset and structure, paired (every method's run on the same data, split and seed):
- `offline`: the pipeline before this change (stage 1, then the recipe's pseudo-label round with the model's labels alone, `carry_labels=off`);
- `carried`: the round with the labels sessions carry (`carry_labels=session`) in place of the model's where they exist;
- `carried only`: the round with those labels alone (`pseudo=carried`);
- `byol`: `--ssl-pretrain` (BYOL-A on every dev clip), then today's pipeline;
- `fixmatch`: `--ssl fixmatch` in place of the round;
- `byol + fixmatch`, `byol + carried`: combinations;
- test-time adaptation (`bn`, `bn-city`) of every run's final model, on the eval clips (no training);
- with `--cv 5` (li2025): `offline` and the combination chosen below.

Reported: test accuracy (seen / unseen cities), the accuracy of what the unlabeled clips were taught (accepted
pseudo-labels, carried labels, FixMatch targets that passed the mask in the last epoch), the kept stage, wall time;
mean and standard error over the datasets, differences paired per dataset.

Usage: OMP_NUM_THREADS=1 python bench/semi_supervised.py [--seeds 10] [--recipes li2025 baseline] [--methods ...] [--work DIR] [--out bench/semi_supervised.md]
"""
import os, sys
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, platform, shutil, time, tempfile
from pathlib import Path
import numpy as np, pandas as pd, torch
from asc_nbdev.core import CLASSES
from asc_nbdev.files import load_json, save_json
from asc_nbdev.pipeline.config import RunConfig
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.audio.cache import load_feature_cache
from asc_nbdev.models.files import load_asc_model
from asc_nbdev.predict.tta import tta_probs
from asc_nbdev.predict.core import aggregate_probs
from asc_nbdev.pipeline.run import run_pipeline
from asc_nbdev.pipeline.train import eval_figures

DATA = dict(preset='quick', n_clips=500, duration=1.0, sr=16000, labeled_frac=0.3)   # = bench/small_data.py's
METHODS = {'offline': dict(set=['carry_labels=off']), 'carried': dict(set=['carry_labels=session']), 'carried only': dict(set=['carry_labels=session', 'pseudo=carried']),
           'byol': dict(ssl_pretrain=True, set=['carry_labels=off']), 'fixmatch': dict(ssl='fixmatch'), 'byol + fixmatch': dict(ssl_pretrain=True, ssl='fixmatch'),
           'byol + carried': dict(ssl_pretrain=True, set=['carry_labels=session'])}

def load_avg(): return '/'.join(f'{v:.1f}' for v in os.getloadavg())

def by_recordings(src:Path, dst:Path, seed:int):
    "Structure (b): the same clips, whole recordings labeled or not, as many labeled clips as in `src`"
    if (dst/'truth.csv').exists(): return
    dst.mkdir(parents=True, exist_ok=True)
    for f in ('eval_metadata.csv', 'truth.csv'): shutil.copy(src/f, dst/f)
    if not (dst/'audio').exists(): os.symlink((src/'audio').resolve(), dst/'audio')
    raw = pd.read_csv(src/'dev_metadata.csv', dtype=str, keep_default_na=False)
    m = read_meta(src/'dev_metadata.csv'); truth = pd.read_csv(src/'truth.csv').set_index('filename').scene_label
    m['true'] = truth.loc[m.filename].to_numpy(); n_lab = int((m.label >= 0).sum())
    rng = np.random.default_rng(seed); recs = m.groupby('recording').agg(cls=('true', 'first'), n=('filename', 'size'))
    chosen = []
    for c, g in recs.groupby('cls'):
        ix = list(rng.permutation(g.index)); chosen += ix[:min(2, len(ix))] if len(ix) > 2 else ix[:1]
    rest = [r for r in rng.permutation(recs.index) if r not in chosen]
    while recs.n[chosen].sum() < n_lab and rest: chosen.append(rest.pop())
    lab = m.recording.isin(chosen).to_numpy()
    raw['scene_label'] = np.where(lab, m.true, '')
    raw.to_csv(dst/'dev_metadata.csv', index=False)

def cfg_of(work, recipe, seed, structure, method, cv=None):
    data = work/f'data{seed}-{structure}'
    kw = dict(METHODS[method]); st = kw.pop('set', [])
    return RunConfig(recipe=recipe, quick=True, audio=str(data/'audio'), meta=str(data/'dev_metadata.csv'), eval_meta=str(data/'eval_metadata.csv'),
                     truth=str(data/'truth.csv'), out=str(work/recipe/f'{structure}-{seed}'/(method.replace(' ', '') + (f'-cv{cv}' if cv else ''))),
                     cv=cv, set=st or None, **kw)

def tta_figures(cfg, rep):
    "The final model's test figures with batch norm adapted to the eval clips, all together and per city"
    cache = load_feature_cache(Path(cfg.out)/'features'); m, info = load_asc_model(Path(cfg.out)/'model.pt')
    ev = read_meta(cfg.eval_meta); ev = ev[ev.filename.isin(set(cache.index.index))].reset_index(drop=True)
    tr = pd.read_csv(cfg.truth).set_index('filename').scene_label
    test = ev.assign(label=[CLASSES.index(tr[n]) for n in ev.filename])
    seen = read_meta(cfg.meta).location.unique()
    out = {}
    for how in ('bn', 'bn-city'):
        p = tta_probs(m, cache, ev, info, how, log=lambda *a: None)
        f = eval_figures(p, test, seen, rep['aggregate'])
        out[how] = dict(test=f['accuracy'], seen=f.get('seen_cities_accuracy'), unseen=f.get('unseen_cities_accuracy'))
    return out

def taught(rep, out):
    "The accuracy of what the unlabeled clips were taught by the run's last semi-supervised stage"
    if (pr := rep.get('pseudo_rounds')): return pr[-1].get('accuracy')
    fm = sorted(Path(out).glob('stage2_fixmatch/**/fixmatch.csv'))
    if fm: return float(np.nanmean([pd.read_csv(f).accuracy.iloc[-1] for f in fm]))
    return None

def one_run(work, recipe, seed, structure, method, cv, log):
    cfg = cfg_of(work, recipe, seed, structure, method, cv); done = Path(cfg.out)/'bench.json'
    if done.exists(): return load_json(done)
    t0, la = time.time(), load_avg()
    rep = run_pipeline(cfg, log=lambda *a: None, progress=False)
    wall = round(time.time() - t0, 1)
    t = rep['test']
    row = dict(recipe=recipe, seed=seed, structure=structure, method=method + (f' cv{cv}' if cv else ''), test=t['accuracy'],
               seen=t.get('seen_cities_accuracy'), unseen=t.get('unseen_cities_accuracy'), kept=rep['kept'], estimate=rep['estimate']['accuracy'],
               taught=taught(rep, cfg.out), seconds=wall, load=f'{la} -> {load_avg()}')
    if not cv:
        for how, f in tta_figures(cfg, rep).items(): row.update({f'{k}_{how}': v for k, v in f.items()})
    save_json(row, done)
    log(f"{recipe} {structure} seed {seed} {row['method']}: test {row['test']:.3f} (unseen {row['unseen']}), taught {row['taught']}, "
        f"kept {row['kept']}, {wall:.0f} s (load {row['load']})")
    return row

def mse(s): s = pd.Series(s, dtype=float).dropna(); return f"{s.mean():.3f} ± {s.std(ddof=1) / np.sqrt(len(s)):.3f}" if len(s) > 1 else '-'

def report(df, args, seconds):
    lines = ['# Learning from the unlabeled audio: carried labels, BYOL-A, FixMatch, test-time adaptation', '',
             (f"`OMP_NUM_THREADS=1 python bench/semi_supervised.py --report-only --recipes {' '.join(args.recipes)}`: every finished run under the work "
              f"folder ({df.seconds.sum() / 3600:.1f} h of runs), made by `--seeds N --recipes R [--structures S]` calls (the log has each run). "
              if args.report_only else
              f"`OMP_NUM_THREADS=1 python bench/semi_supervised.py --seeds {args.seeds} --recipes {' '.join(args.recipes)}` ({seconds / 60:.0f} min of runs in this call; "
             "finished runs are read back). ") +
             f"{df.seed.nunique()} synthetic datasets (seeds 0 to {df.seed.max()}, `make_synthetic({', '.join(f'{k}={v!r}' for k, v in DATA.items())})`) in two "
             "structures: `sessions` (about 30 % of every session labeled, as generated) and `recordings` (the same clips, whole recordings "
             "labeled or not). Quick recipes as `asc-train` runs them; test = the eval clips against the hidden truth, predictions averaged per "
             f"session. Mean ± standard error over the datasets. {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on 1 thread; "
             "the load beside each run is in the log.", '']
    for (recipe, structure), g in df.groupby(['recipe', 'structure'], sort=False):
        lines += [f'## {recipe} (quick), structure `{structure}`: {g.seed.nunique()} datasets (seeds {", ".join(map(str, sorted(g.seed.unique())))})', '',
                  '| method | test accuracy | seen cities | unseen cities | + tta bn: test | unseen | + tta bn-city: test | unseen | taught labels accuracy | shown estimate | seconds |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for m, gm in g.groupby('method', sort=False):
            col = lambda k: mse(gm[k]) if k in gm else '-'
            lines.append(f"| {m} | {col('test')} | {col('seen')} | {col('unseen')} | {col('test_bn')} | {col('unseen_bn')} | {col('test_bn-city')} | "
                         f"{col('unseen_bn-city')} | {col('taught')} | {col('estimate')} | {col('seconds')} |")
        lines += ['', '| paired difference against `offline` | test accuracy | seen cities | unseen cities | datasets better / worse |', '|---|---|---|---|---|']
        piv = {k: g.pivot_table(index='seed', columns='method', values=k) for k in ('test', 'seen', 'unseen')}
        base = {'offline': 'offline', 'offline cv5': 'offline cv5'}
        for m in piv['test'].columns:
            b = 'offline cv5' if m.endswith('cv5') else 'offline'
            if m == b or b not in piv['test']: continue
            d = (piv['test'][m] - piv['test'][b]).dropna()
            lines.append(f"| {m} − {b} | {mse(d)} | {mse(piv['seen'][m] - piv['seen'][b])} | {mse(piv['unseen'][m] - piv['unseen'][b])} | "
                         f"{int((d > 1e-9).sum())} / {int((d < -1e-9).sum())} |")
        if 'test_bn' in g:
            lines += ['', '| test-time adaptation, paired with the same run without it | test accuracy | unseen cities |', '|---|---|---|']
            for how in ('bn', 'bn-city'):
                lines.append(f"| {how} (every method's final model) | {mse(g[f'test_{how}'] - g['test'])} | {mse(g[f'unseen_{how}'] - g['unseen'])} |")
            big = max(read_meta(args.work/f'data{s}-{structure}'/'eval_metadata.csv').location.value_counts().max() for s in g.seed.unique())
            if big < 16: lines += ['', f"bn-city adapts a city on its own only from 16 eval clips (`tta_probs(min_clips=16)`); the largest eval city "
                                       f"of these datasets has {big}, so bn-city is bn here: it is measured on none of them."]
        kept = g.groupby('method', sort=False).kept.agg(lambda s: ', '.join(f'{k} {v}' for k, v in s.value_counts().items()))
        lines += ['', 'Kept stage (datasets): ' + '; '.join(f'{m}: {k}' for m, k in kept.items()), '']
    return '\n'.join(lines)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=10)
    ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--structures', nargs='+', default=['sessions', 'recordings'])
    ap.add_argument('--methods', nargs='+', default=list(METHODS))
    ap.add_argument('--cv-methods', nargs='*', default=[], help='methods also run with --cv 5 (li2025 only)')
    ap.add_argument('--work', type=Path, default=Path(tempfile.gettempdir())/'asc-bench-ssl')
    ap.add_argument('--out', default=None)
    ap.add_argument('--report-only', action='store_true', help='train nothing: report every finished run under --work (datasets may differ per recipe and structure)')
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.work; work.mkdir(parents=True, exist_ok=True)
    logf = open(work/'log.txt', 'a')
    def log(m): print(m, flush=True); logf.write(m + '\n'); logf.flush()
    t0, rows = time.time(), []
    if args.report_only:
        rows = [load_json(f) for f in sorted(work.glob('*/*/*/bench.json'))]
        rows = [r for r in rows if r['recipe'] in args.recipes and r['structure'] in args.structures]
    for seed in ([] if args.report_only else range(args.seeds)):
        a = work/f'data{seed}-sessions'
        if not (a/'truth.csv').exists(): make_synthetic(a, seed=seed, progress=False, **DATA)
        by_recordings(a, work/f'data{seed}-recordings', seed)
        for recipe in args.recipes:
            for structure in args.structures:
                for method in args.methods: rows.append(one_run(work, recipe, seed, structure, method, None, log))
                if recipe == 'li2025':
                    for method in args.cv_methods: rows.append(one_run(work, recipe, seed, structure, method, 5, log))
        pd.DataFrame(rows).to_csv(work/'rows.csv', index=False)
    df = pd.DataFrame(rows)
    text = report(df, args, time.time() - t0); print(text)
    if args.out:
        Path(args.out).write_text(text + '\n'); df.to_csv(Path(args.out).with_suffix('.csv'), index=False)
