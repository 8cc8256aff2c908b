"""A full-size rehearsal: what the real recipes cost at the real data's size, and that nothing breaks there.

The `twin` synthetic dataset (every row of the real CAS 2023 metadata: 8,700 dev clips of which 1,740 labeled, 1,100
eval clips) at the real clip format (10 s, 44.1 kHz), and the four full recipes (not quick) through the whole
pipeline (`run_pipeline`: stage 1, pseudo-labels, retraining, the final model, and for atmaja2025 the hard-sample
reference), with an epoch cap (`--max-epochs`). Measured per recipe and stage: wall time, epochs, time per epoch,
training samples/s, the share of training time spent waiting for data, peak resident memory (RSS), peak GPU memory,
and the accuracy figures with the split named; once: the synthesis time and disk, the feature cache's time and size.

On this 2-core CPU the full run takes days, so a run on a subset (`--clips N`, the real clip length) measures the cost
per clip and epoch, and the report extrapolates the full run's time from it, linearly in clips and epochs (said as
such). `--quick` runs the same code on a few hundred short clips with two epochs: the check that it works.

Usage:
  python bench/rehearsal.py --quick                                  # a few hundred 2 s clips, 2 epochs (minutes)
  python bench/rehearsal.py --clips 200 --max-epochs 1               # the real clip length on a subset: the cost here
  python bench/rehearsal.py --max-epochs 5 --device cuda --compile   # the real size on a GPU
Options: --recipes, --seconds, --sr, --rounds, --precision, --work (kept; a rerun resumes finished stages), --out.
"""
import os
if not __import__('torch').cuda.is_available():
    os.environ.setdefault('OMP_NUM_THREADS', str(os.cpu_count() or 1))
import argparse, json, platform, shutil, sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from fastai.callback.core import Callback
from asc_nbdev.pipeline.config import RunConfig
from asc_nbdev.files import load_json
from asc_nbdev.data.metadata import read_meta, cas2023_metadata
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.audio.cache import build_feature_cache
from asc_nbdev.pipeline.run import run_pipeline, pipeline_stages
from asc_nbdev.pipeline.context import Stage
from asc_nbdev.train.recipes import get_recipe

RECIPES = ['baseline', 'yang2025', 'li2025', 'atmaja2025']
GPU = torch.cuda.is_available()

def load_avg(): return '/'.join(f'{v:.2f}' for v in os.getloadavg())

def reset_peak_rss():
    "Reset the process's peak resident memory (Linux: /proc/self/clear_refs); False where it cannot"
    try: Path('/proc/self/clear_refs').write_text('5'); return True
    except OSError: return False

def peak_rss_mib():
    "Peak resident memory of this process since start (or the last reset), MiB (Linux: VmHWM)"
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    except OSError: pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def du_mib(path): return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file()) / 2**20

class FitMeter(Callback):
    """Per training run (a fit): epochs, training and validation seconds, training samples, and the time the training loop
    waited for the loader: from the end of a batch (this callback's `after_batch`, the last) to the start of the next
    (`BatchStart`, the first callback of `before_batch`). The GPU is synchronised at the phases' edges only"""
    order = 99
    def __init__(self): self.stage, self.fits, self.ran = None, [], set()
    def _now(self):
        if GPU: torch.cuda.synchronize()
        return time.perf_counter()
    def before_fit(self): self.cur = dict(stage=self.stage, epochs=0, train_s=0., valid_s=0., wait_s=0., samples=0)
    def before_train(self): self.t_train = self.t_last = self._now()
    def batch_start(self):
        if self.training: self.cur['wait_s'] += time.perf_counter() - self.t_last
    def after_batch(self):
        if self.training: self.cur['samples'] += len(self.xb[0]); self.t_last = time.perf_counter()
    def after_train(self): self.cur['train_s'] += self._now() - self.t_train
    def before_validate(self): self.t_valid = self._now()
    def after_validate(self): self.cur['valid_s'] += self._now() - self.t_valid
    def after_epoch(self): self.cur['epochs'] += 1
    def after_fit(self): self.fits.append(self.cur)

class BatchStart(Callback):
    "The first callback of each batch (before augmentation): tells the `FitMeter` when the loader handed the batch over"
    order = -100
    def __init__(self, meter): self.meter = meter
    def before_batch(self): self.meter.batch_start()

class Measured(Stage):
    "A pipeline stage run as usual, with its wall and CPU time, peak RSS, peak GPU memory and its fits' figures kept in its results"
    def __init__(self, inner, meter, out):
        self.inner, self.meter, self.out = inner, meter, out
        self.name, self.resumable, self.always = inner.name, inner.resumable, inner.always
    def start(self, ctx): return self.inner.start(ctx)
    def fingerprint(self, ctx): return self.inner.fingerprint(ctx)
    def run(self, ctx, d):
        self.meter.stage = self.name; self.meter.ran.add(self.name); n0 = len(self.meter.fits)
        rss_reset = reset_peak_rss()
        if GPU: torch.cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        res = dict(self.inner.run(ctx, d) or {})
        res['rehearsal'] = dict(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                                peak_rss_mib=peak_rss_mib(), rss_since='stage' if rss_reset else 'process start',
                                peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20 if GPU else None, fits=self.meter.fits[n0:])
        return res
    def record(self, ctx, res):
        self.inner.record(ctx, res)
        if isinstance(res, dict) and 'rehearsal' in res: self.out[self.name] = res['rehearsal']

def make_data(a, work):
    "The twin (or a seeded subset of its rows) at the asked clip format, made once per work folder; returns (folder, info)"
    D, info_f = work/'data', work/'data_info.json'
    want = dict(clips=a.clips, seconds=a.seconds, sr=a.sr)
    info = json.loads(info_f.read_text()) if info_f.exists() else {}
    if info.get('settings') != want or not (D/'truth.csv').exists():
        t0 = time.perf_counter()
        make_synthetic(D, preset='twin', n_clips=a.clips, duration=a.seconds, sr=a.sr, overwrite=True, progress=True)
        info = dict(settings=want, synth_s=time.perf_counter() - t0, audio_mib=du_mib(D/'audio'), n_audio=len(list((D/'audio').glob('*.wav'))))
        info_f.write_text(json.dumps(info))
    return D, info

def features(D, work, device):
    "The feature cache of every clip (dev and eval), shared by the recipes' runs; its time and size"
    dev, ev = read_meta(D/'dev_metadata.csv'), read_meta(D/'eval_metadata.csv')
    t0, info_f = time.perf_counter(), work/'features_info.json'
    c = build_feature_cache(D/'audio', list(dev.filename) + list(ev.filename), work/'features', device=device, progress=True, verbose=False)
    if c.report['up_to_date'] and info_f.exists(): return json.loads(info_f.read_text()), dev, ev   # measured when it was built
    info = dict(seconds=time.perf_counter() - t0, computed=c.report['computed'], clips=len(c), mib=du_mib(work/'features'),
                shape=list(c.features.shape), dtype=str(c.features.dtype))
    info_f.write_text(json.dumps(info))
    return info, dev, ev

def run_recipe(name, a, D, work):
    meter, measured = FitMeter(), {}
    limit = get_recipe(name).epochs
    cfg = RunConfig(recipe=name, audio=str(D/'audio'), meta=str(D/'dev_metadata.csv'), eval_meta=str(D/'eval_metadata.csv'),
                    truth=str(D/'truth.csv'), out=str(work/f'{name}{a.suffix}'), epochs=None if a.max_epochs is None else min(a.max_epochs, limit), rounds=a.rounds,
                    device=a.device, precision=a.precision, compile=a.compile)
    logf = open(work/f'{name}{a.suffix}.log', 'a')
    def log(*x): print(*x, file=logf, flush=True)
    t0 = time.perf_counter()
    rep = run_pipeline(cfg, cbs=[meter, BatchStart(meter)], log=log, progress=False, epoch_lines=True,
                       stages=lambda ctx: [Measured(s, meter, measured) for s in pipeline_stages(ctx)], repeat=dict(features_dir=work/'features'))
    return dict(report=rep, measured=measured, wall_s=time.perf_counter() - t0, recipe=get_recipe(name).to_dict(),
                resumed=bool(set(measured) - meter.ran))

def _fit_sum(fits):
    f = lambda k: sum(x[k] for x in fits)
    return dict(epochs=f('epochs'), train_s=f('train_s'), valid_s=f('valid_s'), wait_s=f('wait_s'), samples=f('samples'))

def stage_rows(r):
    "One row per stage: the measurements beside the report's figures"
    rep, rows = r['report'], []
    figs = {s['name']: s for s in rep.get('stages', [])}
    for name, m in r['measured'].items():
        f, s = _fit_sum(m['fits']), figs.get(name, {})
        ep = f['epochs'] or None
        test = (s.get('test') or {}).get('accuracy')
        rows.append(dict(stage=name, wall_s=m['wall_s'], epochs=f['epochs'], s_per_epoch=(f['train_s'] + f['valid_s']) / ep if ep else None,
                         train_samples_s=f['samples'] / f['train_s'] if f['train_s'] else None,
                         data_wait=f['wait_s'] / f['train_s'] if f['train_s'] else None, peak_rss_mib=m['peak_rss_mib'],
                         peak_gpu_mib=m['peak_gpu_mib'], valid=s.get('accuracy'), test=test, n_train=s.get('n_train'),
                         samples=f['samples'], train_s=f['train_s'], valid_s=f['valid_s'], fits=len(m['fits'])))
    return rows

def extrapolate(r, rows, sub, full, max_epochs):
    """Seconds of each stage on the full data, from this run's measured costs (not measured: a linear extrapolation).
    Training time scales with the stage's training clips (the labeled ones for stage 1 and the reference; labeled +
    pseudo-labeled, i.e. up to every dev clip, for a retrain), validation time with the labeled clips, the rest of the stage
    (predictions, plots) with all clips; epochs: the cap, and the recipe's limit. A retrain that did not run here (no
    pseudo-label passed the recipe's threshold) is estimated from stage 1's cost per clip over every dev clip."""
    limit, out = r['recipe']['epochs'], []
    s_lab, s_dev, s_all = full['labeled'] / sub['labeled'], full['dev'] / sub['dev'], full['all'] / sub['all']
    rows = list(rows)
    if r['report'].get('rounds') and not any(x['stage'].startswith('stage3') for x in rows):
        s1 = next((x for x in rows if x['stage'] == 'stage1_train' and x['samples']), None)
        if s1 is not None:
            rows.append(dict(s1, stage='stage3_retrain_r1 (did not run here: estimated)', wall_s=s1['train_s'] + s1['valid_s'],
                             retrain_from_stage1=True))
    for x in rows:
        if x['epochs']:
            retrain = x['stage'].startswith('stage3')
            s_train = s_dev if retrain else s_lab
            if x.get('retrain_from_stage1'): s_train = full['dev'] / sub['labeled'] * (sub['labeled'] / max(x['n_train'] or sub['labeled'], 1))
            per_fit_epochs = x['epochs'] / max(x['fits'], 1)
            per_epoch = (x['train_s'] * s_train + x['valid_s'] * s_lab) / per_fit_epochs     # one epoch of each of the stage's fits
            other = max(x['wall_s'] - x['train_s'] - x['valid_s'], 0) * s_all
            out.append(dict(stage=x['stage'], per_epoch=per_epoch, at_cap=per_epoch * min(max_epochs or limit, limit) + other,
                            at_limit=per_epoch * limit + other))
        else:
            out.append(dict(stage=x['stage'], per_epoch=None, at_cap=x['wall_s'] * s_all, at_limit=x['wall_s'] * s_all))
    return out

def per_epoch_min(e): return '–' if e['per_epoch'] is None else f"{e['per_epoch'] / 60:.1f} min"

def fmt(v, spec='.1f', dash='–'):
    return dash if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)

def markdown(a, res, data, feat, sub, full, t_start, load0):
    dev = f'GPU {torch.cuda.get_device_name()}' if GPU else f'CPU only ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch on {torch.get_num_threads()} threads)'
    whole = a.clips is None and not a.quick
    cmd = 'python bench/rehearsal.py ' + ' '.join(sys.argv[1:])
    cap = a.max_epochs or "none (the recipes' limits)"
    L = ['# Full-size rehearsal', '',
         f'`{cmd}`: {dev}; torch {torch.__version__}; epoch cap {cap}; '
         f'the full recipes (not quick); device {a.device}, precision {a.precision}{", compiled" if a.compile else ""}; '
         f'load average {load0} at the start, {load_avg()} at the end; {(time.time() - t_start) / 60:.0f} min in this call'
         f'{" (stages done before were resumed: their figures are from when they ran)" if any(r["resumed"] for r in res.values()) else ""}.', '',
         ('No GPU on this machine: the GPU columns are empty. `bash bench/device_check.sh` runs this rehearsal on a GPU '
          '(bench/gpu.py, part rehearsal: 2,000 clips, cap 3, eager and then compiled).') if not GPU else '', '',
         '## Data and features', '',
         f'The `twin` synthetic dataset, {"all" if whole else "a seeded subset of"} {sub["all"]} of the {full["all"]} rows of the real CAS 2023 '
         f'metadata ({sub["dev"]} dev clips, {sub["labeled"]} labeled; {sub["eval"]} eval clips), {a.seconds:g} s at {a.sr} Hz, 16-bit WAV.', '',
         '| what | here | at the full size (9,800 clips of 10 s, 44.1 kHz) |', '|---|---|---|']
    per_clip_disk = data['audio_mib'] / max(data['n_audio'], 1) * (10 / a.seconds) * (44100 / a.sr)
    L += [f"| synthesis | {fmt(data.get('synth_s'), '.0f')} s | {'measured' if whole else 'about ' + fmt(data.get('synth_s', 0) / sub['all'] * full['all'] * (10 / a.seconds) * (44100 / a.sr) / 60, '.0f') + ' min (scaled by clips and samples)'} |",
          f"| audio on disk | {data['audio_mib']:.0f} MiB | {per_clip_disk * full['all'] / 1024:.1f} GiB ({per_clip_disk:.2f} MiB a clip) |",
          f"| feature cache ({feat['dtype']}, {feat['shape'][1]} frames x {feat['shape'][2]} mels) | {feat['mib']:.0f} MiB, {feat['seconds']:.0f} s "
          f"({feat['computed']} clips computed) | {feat['mib'] / feat['clips'] * full['all'] * (500 / feat['shape'][1]) / 1024:.2f} GiB |", '']
    L += ['## Summary', '', '| recipe | stages here | ' + ('extrapolated full run: cap / recipe limit | ' if not whole else '') +
          'peak RSS | peak GPU memory | kept stage: validation / test accuracy |', '|---|---|' + ('---|' if not whole else '') + '---|---|---|']
    for name, r in res.items():
        rows = stage_rows(r); rep = r['report']
        kept = next((x for x in rows if x['stage'] == rep.get('kept')), {})
        ex = '' if whole else (lambda e: f"{sum(x['at_cap'] for x in e) / 3600:.1f} h / {sum(x['at_limit'] for x in e) / 3600:.1f} h | ")(extrapolate(r, rows, sub, full, a.max_epochs))
        gpu_mem = max((x['peak_gpu_mib'] or 0) for x in rows) if GPU else None
        L.append(f"| {name} | {sum(x['wall_s'] for x in rows) / 60:.1f} min | {ex}{max(x['peak_rss_mib'] for x in rows) / 1024:.1f} GiB | "
                 f"{'–' if gpu_mem is None else f'{gpu_mem / 1024:.1f} GiB'} | {fmt(kept.get('valid'), '.3f')} / {fmt(kept.get('test'), '.3f')} |")
    L += ['', 'Extrapolated: not measured; linear in the clips each stage sees and in epochs (below, per recipe). Early stopping usually '
          'ends a stage before the recipe\'s limit, so that column is an upper bound; the cap column is what `--epochs` set to the cap would cost.', '']
    for name, r in res.items():
        rows = stage_rows(r); rep = r['report']
        L += [f'## {name}', '', f"Recipe limit {r['recipe']['epochs']} epochs (patience {r['recipe']['patience']}), batch {r['recipe']['bs']}, "
              f"model {r['recipe']['model']}; validation on the {rep.get('split')} split; test = the eval clips against the hidden truth; "
              f"kept stage: {rep.get('kept')}; the stages took {sum(m['wall_s'] for m in r['measured'].values()) / 60:.1f} min.", '',
              '| stage | wall s | epochs | s per epoch | train samples/s | data wait | peak RSS MiB | peak GPU MiB | validation acc. | test acc. |',
              '|---|---|---|---|---|---|---|---|---|---|']
        for x in rows:
            L.append(f"| {x['stage']} | {x['wall_s']:.0f} | {x['epochs'] or '–'} | {fmt(x['s_per_epoch'])} | {fmt(x['train_samples_s'])} | "
                     f"{fmt(x['data_wait'], '.1%')} | {x['peak_rss_mib']:.0f} | {fmt(x['peak_gpu_mib'], '.0f')} | {fmt(x['valid'], '.3f')} | {fmt(x['test'], '.3f')} |")
        if not whole:
            ex = extrapolate(r, rows, sub, full, a.max_epochs)
            cap, lim = sum(e['at_cap'] for e in ex), sum(e['at_limit'] for e in ex)
            L += ['', f"**Extrapolated to the full data on this machine** (not measured: this run's seconds per epoch and stage, scaled by the "
                  f"clips each stage sees at full size): {cap / 3600:.1f} h with the cap of {a.max_epochs or r['recipe']['epochs']} epochs, "
                  f"{lim / 3600:.1f} h if every training stage ran the recipe's {r['recipe']['epochs']} epochs (early stopping ends sooner). "
                  + ('' if a.seconds == 10 and a.sr == 44100 else f'This run used {a.seconds:g} s clips at {a.sr} Hz, not the real format: the figure '
                     'is not the real cost.'), '']
            L += ['| stage | one epoch (of each fit) at full size | extrapolated, cap | extrapolated, recipe limit |', '|---|---|---|---|'] + \
                 [f"| {e['stage']} | {per_epoch_min(e)} | {e['at_cap'] / 60:.0f} min | "
                  f"{e['at_limit'] / 60:.0f} min |" for e in ex]
        L.append('')
    L += ['Epochs: all fits of the stage (li2025 and baseline train the audio-only model first, then the city/time fusion on its '
          'frozen body: two fits, each up to the cap). Wall s: the stage as the pipeline ran it (training, validation, plots, predictions of the eval part, pseudo-labels). '
          'Data wait: the share of training time spent in the loader\'s next() before each batch. Peak RSS: the process\'s peak '
          'resident memory during the stage (reset at its start where Linux allows). Accuracy of synthetic data: says the pipeline '
          'works at this size, not what the real data gives.', '']
    return '\n'.join(L)

def counts(dev, ev):
    return dict(dev=len(dev), labeled=int((dev.label >= 0).sum()), eval=len(ev), all=len(dev) + len(ev))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='a few hundred 2 s clips at 16 kHz, 2 epochs: does it work')
    ap.add_argument('--clips', type=int, default=None, help='a seeded subset of the twin\'s rows (default: all 9,800)')
    ap.add_argument('--seconds', type=float, default=10.0); ap.add_argument('--sr', type=int, default=44100)
    ap.add_argument('--recipes', nargs='+', default=RECIPES, choices=RECIPES)
    ap.add_argument('--max-epochs', type=int, default=None, help='epoch cap of every training stage (default: the recipes\' own)')
    ap.add_argument('--rounds', type=int, default=None); ap.add_argument('--device', default='auto')
    ap.add_argument('--precision', default='auto'); ap.add_argument('--compile', action='store_true')
    ap.add_argument('--work', default='/tmp/asc_rehearsal'); ap.add_argument('--out', default=str(Path(__file__).with_suffix('.md')))
    ap.add_argument('--clean', action='store_true', help='remove the work folder first (else a rerun resumes)')
    ap.add_argument('--suffix', default='', help="run folders WORK/RECIPE+SUFFIX: another setting (e.g. --compile) on the same data and features")
    a = ap.parse_args()
    if a.quick: a.clips, a.seconds, a.sr, a.max_epochs = a.clips or 300, 2.0, 16000, a.max_epochs or 2
    work = Path(a.work)
    if a.clean: shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    t_start, load0 = time.time(), load_avg()
    D, data = make_data(a, work)
    feat, dev, ev = features(D, work, a.device)
    full = counts(read_meta(cas2023_metadata('dev')), read_meta(cas2023_metadata('eval')))
    sub = counts(dev, ev)
    print(f'data: {sub} of {full}; audio {data["audio_mib"]:.0f} MiB; features {feat["mib"]:.0f} MiB in {feat["seconds"]:.0f} s', flush=True)
    res = {}
    for name in a.recipes:
        print(f'{name}: running (log: {work}/{name}{a.suffix}.log)', flush=True)
        res[name] = run_recipe(name, a, D, work)
        Path(a.out).write_text(markdown(a, res, data, feat, sub, full, t_start, load0))
        print(f"{name}: {res[name]['wall_s'] / 60:.1f} min", flush=True)
    text = markdown(a, res, data, feat, sub, full, t_start, load0)
    Path(a.out).write_text(text); print(text)

if __name__ == '__main__': main()
