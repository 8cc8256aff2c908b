"""Pretrained teachers (issue 36): the recipe alone, the teacher's head alone and the student distilled from it, on many datasets.

No real pretrained checkpoint can be downloaded here, so the teacher is a stand-in (`bench/synthetic_teacher.py`): a
full-width MobileASCNet trained on other synthetic data (its own seed, 3,000 labeled clips, seven of the ten classes),
plugged in as a user's factory, `synthetic_teacher:make`. The datasets are those of `bench/small_data.py`, fixed before
any comparison: seeds 0..N-1 of `make_synthetic(preset='quick', n_clips=500, duration=1.0, sr=16000, labeled_frac=0.3)`
(about 128 labeled clips in 40 recordings, 297 unlabeled, 75 eval clips scored against the hidden truth, a third of them
in cities dev never heard). Per recipe (quick) and dataset, paired:

- `recipe`:  the recipe alone as `asc-train` runs it (stage 1 and its pseudo-label round);
- `teacher`: `--teacher synthetic_teacher:make` (one run: the teacher stage, stage 1, the student): the head alone
  (its validation and test figures), stage 1 (the same model as `recipe`'s stage 1), and the student;
- `teacher --cv 5` (li2025 only): the same with five folds: out-of-fold heads and fold students, the deployed student;
- the head's variants on the same embeddings and splits (logistic regression or MLP, with or without city and time).

Reported: test accuracy (seen / unseen cities), the accuracy of what the unlabeled clips were taught (pseudo-labels or
the teacher's labels, against the truth), the final stage kept, wall time; mean and standard error over the datasets,
differences paired per dataset.

Usage: OMP_NUM_THREADS=1 python bench/teacher.py [--seeds 10] [--recipes li2025 baseline] [--work DIR] [--out bench/teacher.md]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, platform, sys, time, tempfile
from pathlib import Path
import numpy as np, pandas as pd, torch
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from asc_nbdev.core import CLASSES
from asc_nbdev.files import load_json, save_json
from asc_nbdev.pipeline.config import RunConfig
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.pipeline.run import run_pipeline, open_run
from asc_nbdev.teachers.core import load_teacher
from asc_nbdev.teachers.embeddings import EmbeddingCache
from asc_nbdev.pipeline.teacher import teach, teacher_clips, embedding_dir
import synthetic_teacher

DATA = dict(preset='quick', n_clips=500, duration=1.0, sr=16000, labeled_frac=0.3)   # = bench/small_data.py's
SPEC = 'synthetic_teacher:make'

def load_avg(): return '/'.join(f'{v:.1f}' for v in os.getloadavg())

def cfg_of(work, recipe, seed, variant):
    data = work/f'data{seed}'
    return RunConfig(recipe=recipe, quick=True, audio=str(data/'audio'), meta=str(data/'dev_metadata.csv'), eval_meta=str(data/'eval_metadata.csv'),
                     truth=str(data/'truth.csv'), out=str(work/recipe/f'seed{seed}'/variant.replace(' ', '')),
                     teacher=None if variant == 'recipe' else SPEC, cv=5 if 'cv' in variant else None,
                     set=['carry_labels=off'])   # the model's pseudo-labels alone, as these runs were made (the default before issue 37)

def one_run(work, recipe, seed, variant, log):
    "Run (or read back) one variant on one dataset; returns its report with the wall time"
    cfg = cfg_of(work, recipe, seed, variant); done = Path(cfg.out)/'bench.json'
    if done.exists(): return load_json(done)
    t0, la = time.time(), load_avg()
    rep = run_pipeline(cfg, log=lambda *a: None, progress=False)
    rep = dict(rep, bench=dict(wall=round(time.time() - t0, 1), load_start=la, load_end=load_avg()))
    save_json(rep, done)
    log(f"{recipe} seed {seed} {variant}: test {rep['test']['accuracy']:.3f}, kept {rep['kept']}, {rep['bench']['wall']:.0f} s (load {la} -> {load_avg()})")
    return rep

def stage(rep, name): return next(s for s in rep['stages'] if s['name'] == name)

def test_of(rec):
    t = rec.get('test') or {}
    return dict(test=t.get('accuracy'), seen=t.get('seen_cities_accuracy'), unseen=t.get('unseen_cities_accuracy'))

def rows_of(recipe, seed, variant, rep):
    "One row per model of a run: its test figures, what it taught, time"
    out = []
    if variant == 'recipe':
        pr = (rep.get('pseudo_rounds') or [{}])[0]
        out.append(dict(model='recipe (final)', **test_of(rep), taught=pr.get('accuracy'), kept=rep['kept'], seconds=rep['bench']['wall']))
        out.append(dict(model='stage 1', **test_of(stage(rep, 'stage1_train')), seconds=stage(rep, 'stage1_train')['seconds']))
    else:
        t, st = stage(rep, 'teacher'), stage(rep, 'stage2_student')
        sfx = ' cv5' if 'cv' in variant else ''
        out.append(dict(model='teacher head' + sfx, **test_of(t), valid=t['accuracy'], taught=t.get('unlabeled', {}).get('accuracy'), seconds=t['seconds']))
        out.append(dict(model='student' + sfx, **test_of(st), valid=st['accuracy'], seconds=st['seconds']))
        out.append(dict(model='final' + sfx, **test_of(rep), kept=rep['kept'], seconds=rep['bench']['wall']))
    return [dict(r, recipe=recipe, seed=seed) for r in out]

def head_variants(work, recipe, seed):
    "The head's variants on the teacher run's embeddings and split (no student trained): validation and test figures"
    cfg = cfg_of(work, recipe, seed, 'teacher'); out = []
    ctx = open_run(cfg.replace(out=str(Path(cfg.out).parent/'heads')), log=lambda *a: None, progress=False, features_dir=Path(cfg.out)/'features')
    ec = EmbeddingCache(embedding_dir(ctx, ctx.teacher_model))   # the teacher run's (its features folder, so its embeddings)
    for kind in ('logreg', 'mlp'):
        for md in (False, True):
            with tempfile.TemporaryDirectory() as d:
                r = teach(ctx, Path(d), ec.get(teacher_clips(ctx).filename), kind, md)
            out.append(dict(recipe=recipe, seed=seed, model=f"head {kind}{' + city/time' if md else ''}", valid=r['accuracy'], **test_of(r),
                            taught=r.get('unlabeled', {}).get('accuracy')))
    return out

def mse(s): s = pd.Series(s).dropna(); return f"{s.mean():.3f} ± {s.std(ddof=1) / np.sqrt(len(s)):.3f}" if len(s) > 1 else '-'

def report(df, args, seconds):
    lines = ['# Pretrained teachers: the recipe alone, the teacher\'s head, the student', '',
             f"`OMP_NUM_THREADS=1 python bench/teacher.py --seeds {args.seeds} --recipes {' '.join(args.recipes)}` ({seconds / 60:.0f} min of runs in this call, finished runs read back; bench/teacher_log.txt has each run with its time and load). "
             f"{len(df.seed.unique())} synthetic datasets (seeds 0 to {args.seeds - 1}, `make_synthetic({', '.join(f'{k}={v!r}' for k, v in DATA.items())})`, "
             "as bench/small_data.py). Teacher: `bench/synthetic_teacher.py` (a full-width MobileASCNet trained on another synthetic dataset, "
             "seven of the ten classes; an optimistic stand-in for a pretrained model: its training data come from the same generator). "
             "Quick recipes as `asc-train` runs them, the round with the model's pseudo-labels alone (`carry_labels=off`, the default before issue 37); test = the eval clips against the hidden truth, predictions averaged per session. "
             f"Mean ± standard error over the datasets. {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} on 1 thread; "
             "the load beside each run is in the log.", '']
    for recipe, g in df.groupby('recipe', sort=False):
        lines += [f'## {recipe} (quick)', '', '| model | test accuracy | seen cities | unseen cities | validation (out of fold: cv5) | taught labels accuracy | seconds |',
                  '|---|---|---|---|---|---|---|']
        for m, gm in g.groupby('model', sort=False):
            lines.append(f"| {m} | {mse(gm.test)} | {mse(gm.seen)} | {mse(gm.unseen)} | {mse(gm.get('valid', pd.Series(dtype=float)))} | "
                         f"{mse(gm.get('taught', pd.Series(dtype=float)))} | {mse(gm.seconds) if 'seconds' in gm and gm.seconds.notna().any() else '-'} |")
        piv = {k: g.pivot_table(index='seed', columns='model', values=k) for k in ('test', 'seen', 'unseen')}
        pairs = [('teacher head', 'recipe (final)'), ('student', 'recipe (final)'), ('final', 'recipe (final)'), ('student', 'teacher head'),
                 ('student cv5', 'student'), ('final cv5', 'recipe (final)'), ('head mlp', 'head logreg'), ('head logreg + city/time', 'head logreg')]
        lines += ['', '| paired difference | test accuracy | seen cities | unseen cities | datasets better / worse |', '|---|---|---|---|---|']
        for a, b in pairs:
            if a not in piv['test'] or b not in piv['test']: continue
            d = (piv['test'][a] - piv['test'][b]).dropna()
            lines.append(f"| {a} − {b} | {mse(d)} | {mse(piv['seen'][a] - piv['seen'][b])} | {mse(piv['unseen'][a] - piv['unseen'][b])} | "
                         f"{int((d > 1e-9).sum())} / {int((d < -1e-9).sum())} |")
        kept = g[g.model.isin(['final', 'final cv5'])].groupby('model').kept.value_counts().unstack(fill_value=0)
        lines += ['', 'Final stage kept (datasets): ' + '; '.join(f"{m}: " + ', '.join(f"{k} {v}" for k, v in r.items() if v) for m, r in kept.iterrows()), '']
    return '\n'.join(lines)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=10)
    ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--cv-recipes', nargs='*', default=['li2025'])
    ap.add_argument('--work', type=Path, default=Path(tempfile.gettempdir())/'asc-bench-teacher')
    ap.add_argument('--out', default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.work; work.mkdir(parents=True, exist_ok=True)
    logf = open(work/'log.txt', 'a')
    def log(m): print(m, flush=True); logf.write(m + '\n'); logf.flush()
    if not synthetic_teacher.DEFAULT.exists():
        log('training the stand-in teacher (bench/synthetic_teacher.py) ...'); synthetic_teacher.pretrain(synthetic_teacher.DEFAULT)
    t0 = time.time(); rows = []
    for seed in range(args.seeds):
        if not (work/f'data{seed}'/'truth.csv').exists(): make_synthetic(work/f'data{seed}', seed=seed, progress=False, **DATA)
        for recipe in args.recipes:
            for variant in ['recipe', 'teacher'] + (['teacher cv5'] if recipe in args.cv_recipes else []):
                rows += rows_of(recipe, seed, variant, one_run(work, recipe, seed, variant, log))
            rows += head_variants(work, recipe, seed)
        pd.DataFrame(rows).to_csv(work/'rows.csv', index=False)
    df = pd.DataFrame(rows)
    text = report(df, args, time.time() - t0); print(text)
    if args.out:
        Path(args.out).write_text(text + '\n'); df.to_csv(Path(args.out).with_suffix('.csv'), index=False)
