"""City and time on vs off, seen and unseen cities apart, for every way of aggregating predictions.

On the synthetic data with the real data's structure (recordings of consecutive sessions, classes
confounded with cities, unseen eval cities), with the leak-free recording split, for several seeds
(each seed makes its own dataset and trains with that seed), the quick recipes are trained through
`run_pipeline` (stage 1 only unless --rounds) with metadata fusion on and off, and optionally with other
city/time dropout rates. Every run scores the held-out eval clips against the hidden truth, for each
aggregation mode (none, session, recording), seen and unseen cities apart.

Prints mean +- std over seeds, then the checks of issue 13: unseen-city test accuracy with metadata on
>= off - 0.01, and seen-city accuracy on >= off, for each recipe and aggregation mode.

Usage: python bench/metadata.py [--seeds 0 1 2] [--recipes li2025 baseline] [--preset demo] [--rounds 0]
                                [--dropouts 0:0 0.2:0.1] [--out bench/metadata.md]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, io, contextlib, time, platform, shutil
from pathlib import Path
import numpy as np, pandas as pd, torch
from asc_nbdev.all import *

def load_avg(): return '/'.join(f'{v:.2f}' for v in os.getloadavg())

UNSEEN_WEIGHT = None   # --unseen-weight

def run(D, root, recipe, seed, metadata, rounds, city_dropout=None, time_dropout=None, fallback=True):
    r = get_recipe(recipe, quick=True, seed=seed)
    # 'isolated': the audio fallback with the body trained by the audio-only loss alone (FusionHead's isolate_audio)
    # 'first': the audio-only model trained first, then the fusion on its frozen body (a recipe's audio_first)
    r = (r.replace(audio_fallback='audio', isolate_audio=True, audio_first=False) if fallback == 'isolated' else
         r.replace(audio_fallback='audio', isolate_audio=False, audio_first=True) if fallback == 'first' else
         r.replace(audio_fallback=fallback, isolate_audio=False, audio_first=False))
    if city_dropout is not None: r = r.replace(city_dropout=city_dropout, time_dropout=time_dropout)
    if UNSEEN_WEIGHT is not None: r = r.replace(unseen_weight=UNSEEN_WEIGHT)   # 0: keep the epoch by the fused figure alone (the runs before AudioMixAccuracy)
    out = root/f'{recipe}-{seed}-{metadata}-{r.city_dropout}-{r.time_dropout}-{fallback}'
    label = {True: 'on', 'audio': 'on', False: 'off', 'off': 'off'}.get(fallback, fallback)   # 'on' = the audio fallback (the name of the first files)
    with contextlib.redirect_stdout(io.StringIO()):
        rep = run_pipeline(RunConfig(out=out, audio=D/'audio', meta=D/'dev_metadata.csv', recipe=r, eval_meta=D/'eval_metadata.csv', truth=D/'truth.csv', split='recording', rounds=rounds, no_metadata=not (metadata)), progress=False, log=lambda *a: None)
    shutil.rmtree(out, ignore_errors=True)
    s = rep['stages'][-1]
    mon = s.get('monitor', '')   # the kept epoch scored both roles (AudioMixAccuracy): not the first files' runs
    if mon.startswith(('mixed_', 'audio_')): label += '+' + mon.split('_')[0]
    if mon.endswith('loss'): label += '+loss'   # audio first, its fusion step kept by validation loss (fusion_monitor, the default)   # '+mixed', or '+audio' for unseen_weight 1
    rows = []
    for how, m in s['test']['aggregates'].items():
        rows.append(dict(recipe=recipe, seed=seed, metadata='on' if metadata else 'off',
                         dropout=f'{r.city_dropout:g}/{r.time_dropout:g}' if metadata else '-', fallback=label if metadata else '-',
                         aggregate=how,
                         valid=s['accuracy'], test=m['accuracy'], seen=m.get('seen_cities_accuracy'), unseen=m.get('unseen_cities_accuracy'),
                         seconds=rep['stages'][-1]['seconds'], best_epoch=s['best_epoch'], unseen_weight=s.get('unseen_weight', 0.)))
    return rows

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--recipes', nargs='+', default=['li2025', 'baseline'])
    ap.add_argument('--preset', default='demo')
    ap.add_argument('--rounds', type=int, default=0)
    ap.add_argument('--n-clips', type=int, default=None, help="clips per dataset, dev + eval (default: the preset's)")
    ap.add_argument('--eval-frac', type=float, default=None, help="fraction of the clips in the eval part (default: the preset's, 0.15); "
                    "more eval clips make the unseen-city figures less noisy (e.g. --n-clips 1360 --eval-frac 0.5 keeps the demo's 680 dev clips)")
    ap.add_argument('--dropouts', nargs='*', default=[], help='extra metadata-on runs, CITY:TIME dropout rates, e.g. 0:0 0.4:0.2')
    ap.add_argument('--dropouts-only', action='store_true', help='run only the --dropouts variants (a sweep; no checks)')
    ap.add_argument('--compare-fallback', action='store_true', help='also run metadata on without the audio fallback (audio_fallback=False)')
    ap.add_argument('--fallbacks', nargs='*', default=[], help="extra metadata-on runs with these audio_fallback modes, e.g. mix; "
                    "'isolated' is the audio fallback with the body trained by the audio-only loss alone (isolate_audio), "
                    "'first' the audio-only model trained first and the fusion on its frozen body (audio_first)")
    ap.add_argument('--fallbacks-only', action='store_true', help='run only the --fallbacks variants (their metadata-off pairs come from other files via --from-csv)')
    ap.add_argument('--unseen-weight', type=float, default=None, help="the recipes' unseen_weight (default: theirs, i.e. the eval's share of "
                    "clips in cities not trained on); 0 keeps the epoch by the fused validation figure alone, as before AudioMixAccuracy")
    ap.add_argument('--with-off', action='store_true', help='with --fallbacks-only or --dropouts-only: also the metadata-off runs')
    ap.add_argument('--from-csv', nargs='+', default=None, help='write the report from earlier runs\' OUT.csv files (merged), without training')
    ap.add_argument('--note', default='', help='a paragraph added at the end of the report')
    ap.add_argument('--out', default=None, help="also write the report (markdown) here, and every run's figures to OUT.csv")
    args = ap.parse_args()
    UNSEEN_WEIGHT = args.unseen_weight
    torch.set_num_threads(1)
    root = scratch_dir('asc-bench-metadata-')   # removed when the script ends
    rows, t0 = [], time.time()
    if args.from_csv:
        df0 = pd.concat([pd.read_csv(f, dtype={'dropout': str, 'fallback': str}, keep_default_na=False) for f in args.from_csv])
        if 'fallback' not in df0: df0['fallback'] = ''
        df0.loc[df0.fallback == '', 'fallback'] = np.where(df0.metadata == 'on', 'off', '-')[(df0.fallback == '').to_numpy()]   # files from before the fallback existed
        rows = df0.to_dict('records')
    for seed in ([] if args.from_csv else args.seeds):
        D = root/f'data{seed}'
        make_synthetic(D, preset=args.preset, seed=seed, n_clips=args.n_clips, eval_frac=args.eval_frac, progress=False)
        dv, ev = pd.read_csv(D/'dev_metadata.csv'), pd.read_csv(D/'eval_metadata.csv')
        n_unseen = int((~ev.location.isin(set(dv.location))).sum())   # eval clips in cities dev never heard
        first = len(rows)
        for recipe in args.recipes:
            for metadata in (((False,) if args.with_off else ()) if args.dropouts_only or args.fallbacks_only else (True, False)):
                rows += run(D, root, recipe, seed, metadata, args.rounds)
            if args.compare_fallback and not args.dropouts_only: rows += run(D, root, recipe, seed, True, args.rounds, fallback=False)
            for fb in args.fallbacks: rows += run(D, root, recipe, seed, True, args.rounds, fallback=fb)
            for d in args.dropouts:
                c, t = (float(v) for v in d.split(':'))
                rows += run(D, root, recipe, seed, True, args.rounds, c, t)
            for r_ in rows[first:]: r_.update(eval_clips=len(ev), unseen_clips=n_unseen)
            if args.out: pd.DataFrame(rows).to_csv(Path(args.out).with_suffix('.csv'), index=False)   # every run's figures, as they come
            print(f'seed {seed} {recipe} done, {time.time() - t0:.0f} s, load {load_avg()}', flush=True)
        shutil.rmtree(D, ignore_errors=True)
    df = pd.DataFrame(rows)
    fmt = lambda s: f'{s.mean():.3f} ± {s.std(ddof=0):.3f}'
    tab = (df.groupby(['recipe', 'metadata', 'dropout', 'fallback', 'aggregate'], sort=False)
             .agg(valid=('valid', fmt), test=('test', fmt), seen=('seen', fmt), unseen=('unseen', fmt), n=('seed', 'size')))
    checks = []
    groups = [] if args.dropouts_only else df[df.dropout.isin(['-', f'{CITY_DROPOUT:g}/{TIME_DROPOUT:g}'])].groupby(['recipe', 'aggregate'], sort=False)
    for (recipe, how), g in groups:
      off = g[g.metadata == 'off'].set_index('seed')
      for fb in [f for f in ('on', 'time', 'mix', 'isolated', 'on+mixed', 'isolated+mixed', 'isolated+audio', 'first', 'first+loss', 'off') if f in set(g.fallback)]:   # metadata on: audio fallback, audio+time, mixed, isolated body, none
        on = g[(g.metadata == 'on') & (g.fallback == fb)].set_index('seed')
        seeds = on.index.intersection(off.index)   # per-seed pairs: same data, same split
        if not len(seeds): continue
        on, off_ = on.loc[seeds], off.loc[seeds]
        du, ds = (on.unseen - off_.unseen).mean(), (on.seen - off_.seen).mean()
        se = lambda d: float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float('nan')   # standard error of the mean paired difference
        checks.append(dict(recipe=recipe, fallback=fb, aggregate=how, n=len(seeds), unseen_on=on.unseen.mean(), unseen_off=off_.unseen.mean(),
                           unseen_diff=du, unseen_se=se(on.unseen - off_.unseen), unseen_ok=du >= -0.01, seen_on=on.seen.mean(), seen_off=off_.seen.mean(),
                           seen_diff=ds, seen_se=se(on.seen - off_.seen), seen_ok=ds >= 0))
    ck = pd.DataFrame(checks)
    pairs = []   # the ways of treating an unknown city against each other (metadata on, default dropout), paired per seed
    for (recipe, how), g in ([] if args.dropouts_only else df[(df.metadata == 'on') & (df.dropout == f'{CITY_DROPOUT:g}/{TIME_DROPOUT:g}')].groupby(['recipe', 'aggregate'], sort=False)):
        x = g.pivot_table(index='seed', columns='fallback', values='unseen')
        for a, b in (('on', 'off'), ('time', 'off'), ('mix', 'off'), ('isolated', 'off'), ('on+mixed', 'off'), ('isolated+mixed', 'off'), ('time', 'on'), ('mix', 'on'), ('isolated', 'on'), ('isolated+mixed', 'on+mixed'), ('isolated+audio', 'isolated+mixed'), ('first', 'isolated+mixed'), ('first+loss', 'isolated+mixed'), ('first+loss', 'first')):
            if a in x and b in x:
                d = (x[a] - x[b]).dropna()
                if len(d) > 1: pairs.append(dict(recipe=recipe, aggregate=how, variant=a, against=b, n=len(d), unseen_diff=d.mean(), se=d.std(ddof=1) / np.sqrt(len(d))))
    pr = pd.DataFrame(pairs)
    lines = ['# City and time: on vs off, seen and unseen cities', '',
             (f'`python bench/metadata.py --from-csv {" ".join(args.from_csv)}`: the runs below come from those files, each written by '
              '`python bench/metadata.py --out ...` (the commands are listed under the tables)' if args.from_csv else
              f'`python bench/metadata.py --seeds {" ".join(map(str, args.seeds))} --recipes {" ".join(args.recipes)} --preset {args.preset} '
              f'--rounds {args.rounds}' + (f' --n-clips {args.n_clips}' if args.n_clips else '') + (f' --eval-frac {args.eval_frac:g}' if args.eval_frac else '')
              + (' --compare-fallback' if args.compare_fallback else '') + (f' --fallbacks {" ".join(args.fallbacks)}' if args.fallbacks else '') + (' --fallbacks-only' if args.fallbacks_only else '') + (' --with-off' if args.with_off else '') + (f' --unseen-weight {args.unseen_weight:g}' if args.unseen_weight is not None else '') + (' --dropouts-only' if args.dropouts_only else '')
              + (f' --dropouts {" ".join(args.dropouts)}' if args.dropouts else '') + (f' --out {args.out}' if args.out else '') + '`'), '',
             f'{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, 1 thread' +
             ('' if args.from_csv else f'; {time.time() - t0:.0f} s in all; load at the end {load_avg()}') + f'. Synthetic `{args.preset}` data, one dataset per seed (data seed = training seed); '
             f'recording split; quick recipes; the last stage\'s model scored on the eval clips against the hidden truth. '
             f'Default dropout (city/time) {CITY_DROPOUT:g}/{TIME_DROPOUT:g}; default aggregate `{DEFAULT_AGGREGATE}`.', '',
             (f'Eval clips per dataset: {df.eval_clips.mean():.0f} on average, of them in cities dev never heard (unseen): '
              f'{df.unseen_clips.mean():.0f} on average ({df.unseen_clips.min()} to {df.unseen_clips.max()}).' if 'unseen_clips' in df and df.unseen_clips.notna().any() else ''), '',
             'Mean ± std over seeds:', '', tab.to_markdown(), '',
             'Checks (means over seeds of the per-seed differences, default dropout; *_se: standard error of that mean): unseen on >= off - 0.01, seen on >= off', '',
             ck.to_markdown(index=False, floatfmt='.3f') if len(ck) else '(no metadata-off runs: no checks)'] + \
            (['', 'Unseen-city accuracy of the fallback variants against each other (metadata on; fallback on = audio, off = the unknown-city row, isolated = audio with the body trained by the audio loss alone; +mixed: the kept epoch chosen by AudioMixAccuracy, +audio: by the audio classifier alone), paired per seed:', '', pr.to_markdown(index=False, floatfmt='.3f')] if len(pr) else []) + (['', args.note] if args.note else [])
    text = '\n'.join(lines); print(text)
    if args.out:
        Path(args.out).write_text(text + '\n')
        if not args.from_csv: df.to_csv(Path(args.out).with_suffix('.csv'), index=False)
