"""Every recipe (quick variant) through the semi-supervised pipeline with several training seeds on the synthetic demo data:
validation and test accuracy, mean ± std per recipe and stage, the stage kept as final model, and the time each took.

Runs `run_repeats` (what `asc-train --seeds N` runs) per recipe on one synthetic `demo` dataset (800 clips of 2 s; training
seeds 1234, 1235, ...; the same recording-grouped validation split in every run), and writes `bench/recipes.md` (the
tables; `--json PATH` also keeps every run's report and the summaries). Times are wall-clock and CPU seconds of this
process, with the machine's load average next to them (the machine may be shared).

Interrupted? Run it again with the same --work: finished recipes keep their measurement (work/RECIPE/bench.json), and
a recipe cut short resumes from its finished stages (the pipeline reuses them). Its time is then read from the stages'
own records (`seconds` in each stage's done.json, measured when the stage ran): the table shows that sum beside the
wall-clock and CPU time of the call that finished the recipe.

Usage: OMP_NUM_THREADS=1 python bench/recipes.py [--seeds 3] [--recipes baseline yang2025 li2025 atmaja2025] [--work DIR] [--json PATH]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, json, platform, resource, shutil, sys, tempfile, time
from pathlib import Path
import pandas as pd, torch
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.train.recipes import get_recipe
from asc_nbdev.files import load_json
from asc_nbdev.pipeline.run import run_repeats
from asc_nbdev.pipeline.config import RunConfig
from asc_nbdev.pipeline.train import REFERENCE_STAGE

def load_avg(): return '/'.join(f'{v:.1f}' for v in os.getloadavg())
def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF); c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime

def pm(S, k, d=3):
    v = S.get(k)
    if v is None: return '–'
    return f"{v['mean']:.{d}f}" + ('' if v['std'] is None else f" ± {v['std']:.{d}f}")

def markdown(res, args, data_info) -> str:
    L = [f"# All recipes through the pipeline, {args.seeds} seeds each", '',
         f"`OMP_NUM_THREADS=1 python bench/recipes.py --seeds {args.seeds}` — every recipe's quick variant through `run_repeats` "
         f"(as `asc-train --seeds {args.seeds}`) on the synthetic `demo` data ({data_info}); training seeds "
         f"{', '.join(map(str, range(1234, 1234 + args.seeds)))}, the same recording-grouped validation split in every run; test = the "
         f"eval clips scored against the hidden truth, predictions averaged per session. Mean ± sample std over the seeds "
         f"(n = runs that have the stage). {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other "
         f"jobs, torch {torch.__version__} on {torch.get_num_threads()} thread(s).", '',
         '## Accuracy per recipe and stage', '',
         '| recipe | stage | n | validation accuracy | validation balanced accuracy | test accuracy | test balanced accuracy | stage seconds |',
         '|---|---|---|---|---|---|---|---|']
    for name, r in res['recipes'].items():
        S, rep = r['report']['summary'], r['report']
        stages = list(dict.fromkeys(s['name'] for x in rep['runs'].values() for s in x['stages']))
        for st in stages:
            label = st + (' (hard-sample reference, baseline SE-Trans)' if st == REFERENCE_STAGE else '')
            L.append(f"| {name} | {label} | {S.get(f'{st}.accuracy', {}).get('n', 0)} | {pm(S, f'{st}.accuracy')} | {pm(S, f'{st}.balanced_accuracy')} | "
                     f"{pm(S, f'{st}.test.accuracy')} | {pm(S, f'{st}.test.balanced_accuracy')} | {pm(S, f'{st}.seconds', 0)} |")
        L.append(f"| {name} | **final (kept)** | {S['accuracy']['n']} | **{pm(S, 'accuracy')}** | {pm(S, 'balanced_accuracy')} | "
                 f"**{pm(S, 'test.accuracy')}** | {pm(S, 'test.balanced_accuracy')} | – |")
    L += ['', '## Kept stage, pseudo-labels, hard samples and time', '',
          '| recipe | kept (runs) | pseudo-labels accepted | their accuracy | hard training clips (stage 1) | weight max | stage seconds, all seeds | wall s / CPU s of the call | load avg start → end | started |',
          '|---|---|---|---|---|---|---|---|---|---|']
    for name, r in res['recipes'].items():
        S, rep = r['report']['summary'], r['report']
        kept = ', '.join(f"{k} ({v})" for k, v in rep['kept'].items())
        L.append(f"| {name} | {kept} | {pm(S, 'pseudo_r1.accepted', 0)} | {pm(S, 'pseudo_r1.accuracy')} | "
                 f"{pm(S, 'stage1_train.hard_samples.hard', 0)} | {pm(S, 'stage1_train.hard_samples.weight_max', 2)} | "
                 f"{r['stage_s']:.0f} | {r['wall_s']:.0f} / {r['cpu_s']:.0f}" + (' (resumed)' if r['wall_s'] < 0.8 * r['stage_s'] else '') + f" | {r['load_start']} → {r['load_end']} | {r['started']} |")
    L += ['', f"Total {res['stage_s'] / 60:.1f} min of stage time ({res['wall_s'] / 60:.1f} min wall, {res['cpu_s'] / 60:.1f} min CPU in the calls that finished the recipes). Stage seconds: each stage's own measurement (its done.json), pseudo-labeling included, features not. Load averages are 1/5/15-minute figures of "
          "the whole machine: above the core count, other jobs shared the CPUs and the wall times are longer than on an idle machine.", '']
    return '\n'.join(L)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--recipes', nargs='+', default=['baseline', 'yang2025', 'li2025', 'atmaja2025'])
    ap.add_argument('--n-clips', type=int, default=None, help='demo data clips (default: the preset, 800)')
    ap.add_argument('--work', default=None, help='working folder (default: a temporary one, removed after)')
    ap.add_argument('--out', default=str(Path(__file__).with_suffix('.md')), help='the Markdown tables (default bench/recipes.md)')
    ap.add_argument('--json', default=None, help='also write every run\'s report and the summaries to this JSON file')
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix='asc-bench-recipes-'))
    work.mkdir(parents=True, exist_ok=True)
    logf = open(work/'log.txt', 'a')   # every stage's lines; stdout gets one line per recipe
    log = lambda *a: print(*a, file=logf, flush=True)
    D = work/'data'
    make_synthetic(D, preset='demo', progress=False, **({'n_clips': args.n_clips} if args.n_clips else {}))
    dev = pd.read_csv(D/'dev_metadata.csv', dtype=str, keep_default_na=False); ev = pd.read_csv(D/'eval_metadata.csv', dtype=str, keep_default_na=False)
    data_info = f"{len(dev) + len(ev)} clips of 2 s: {len(dev)} dev, {int((dev.scene_label != '').sum())} of them labeled, {len(ev)} eval"
    res = dict(recipes={})
    for name in args.recipes:
        done = work/name/'bench.json'   # a recipe finished by an earlier, interrupted call with this --work: its measurement is kept
        if done.exists() and json.loads(done.read_text())['seeds'] == args.seeds:
            res['recipes'][name] = json.loads(done.read_text()); print(f"{name}: measured before, at {res['recipes'][name]['started']}", flush=True)
            continue
        t0, c0, l0 = time.time(), cpu_s(), load_avg()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {args.seeds} seeds (load {l0})", flush=True)
        started = time.strftime('%Y-%m-%d %H:%M')
        rep = run_repeats(RunConfig(out=work/name, audio=D/'audio', meta=D/'dev_metadata.csv', recipe=get_recipe(name, quick=True), seeds=args.seeds, eval_meta=D/'eval_metadata.csv', truth=D/'truth.csv'), progress=False, log=log)
        stage_s = sum(st['seconds'] for r in rep['runs'].values() for st in r['stages']) + sum(
            load_json(work/name/n/f"stage2_pseudo_r{pr['round']}"/'done.json')['seconds'] for n, r in rep['runs'].items() for pr in r.get('pseudo_rounds', []))
        res['recipes'][name] = dict(report=rep, wall_s=time.time() - t0, cpu_s=cpu_s() - c0, load_start=l0, load_end=load_avg(),
                                    started=started, seeds=args.seeds, stage_s=stage_s)
        done.write_text(json.dumps(res['recipes'][name], default=str))
        S = rep['summary']
        print(f"  {name}: validation {pm(S, 'accuracy')}, test {pm(S, 'test.accuracy')}, kept {rep['kept']}, "
              f"{time.time() - t0:.0f} s wall, {cpu_s() - c0:.0f} s CPU (load {load_avg()})", flush=True)
    res.update(wall_s=sum(r['wall_s'] for r in res['recipes'].values()), cpu_s=sum(r['cpu_s'] for r in res['recipes'].values()),
               stage_s=sum(r['stage_s'] for r in res['recipes'].values()))
    md = markdown(res, args, data_info)
    Path(args.out).write_text(md)
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    print(md)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
