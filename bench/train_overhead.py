"""Throughput of the fastai Learner (`asc_learner`) against a minimal hand-written PyTorch loop, same model, data and batch size.

Usage: python bench/train_overhead.py [--threads 1,2] [--repeats 3] [--epochs 2] [--out bench/train_overhead.md]

Main figure: MobileASCNet (default size, city and time on) on 100-frame x 64-mel inputs, batch 32,
--n-train training clips and --n-valid validation clips (random features held in memory, normalised by
the loaders), --epochs epochs per measurement.
- Learner: `asc_learner(dls, model, lr=1e-3)` with its defaults (fastai Adam, step decay, early stopping,
  save/restore of the best epoch's weights, accuracy / balanced accuracy / per-city accuracy computed
  each epoch), progress bar and logging off, data from `asc_dataloaders` (the `ASCDataLoader`s).
- Plain loop: the same initial weights, `torch.optim.Adam(lr=1e-3)`, the same loss (`ASCLoss()`), the
  same batches as tensors prepared beforehand (the training and validation batches of the same
  loaders, materialised once, so the plain loop pays nothing for data), a validation pass per epoch
  under `torch.no_grad` with the loss and accuracy.
- samples/s = training clips x epochs / time. Two figures: the whole `fit` (training + validation,
  i.e. wall-clock training throughput) and the training phase alone (timed in the Learner by a callback
  that only reads the clock before and after each training phase).
- The two are measured alternately (plain, Learner, Learner, plain, ...), each from a fresh copy of the
  same initial weights after one warm-up step; the best of --repeats runs of each is compared (the
  machine is shared: the fastest run is the least disturbed), the median is printed too.
- Interleaved (paired) figure, robust to the load of a shared machine: one Learner `fit` of --paired-epochs
  epochs in which a callback runs one plain-loop step (own copy of the initial weights, torch Adam, the
  prepared batch tensors) right before each Learner training batch; the Learner batch time is the time
  from the end of that plain step to the start of the next one (or the end of the training phase).
  Throughput ratio = sum of plain step times / sum of Learner batch times.
Target: the Learner reaches at least 90% of the plain loop's throughput.

Second figure (per-batch overhead): the same comparison with a tiny model (mean over time and
frequency -> linear), where a step costs almost nothing, so the difference per batch is the fixed cost
of the Learner's machinery (events, callbacks, metrics, loader) per batch; the plain loop is run both
over prepared tensors and over the same `ASCDataLoader` to separate the loader's share.
"""
import argparse, contextlib, copy, io, os, platform, statistics, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, torch.nn as nn
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from asc_nbdev.core import CLASSES, N_CLASSES
from asc_nbdev.files import atomic_write
from asc_nbdev.data.metadata import read_meta, make_split
from asc_nbdev.data.loaders import asc_dataloaders
from asc_nbdev.train.learner import asc_learner, ASCLoss
from asc_nbdev.models.zoo import create_model, count_params

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent/'shared'/'data'/'cas2023'/'APSIPA2025_GC_ASC_dev_metadata.csv'
MELS = 64

def load_avg() -> str: return '/'.join(f'{v:.2f}' for v in os.getloadavg())

class MemCache:
    "An in-memory stand-in for a FeatureCache: `.features`, `.index`, `.rows(names)`"
    def __init__(self, names, frames:int, seed:int=0):
        rng = np.random.default_rng(seed)
        self.features = (rng.standard_normal((len(names), frames, MELS), dtype=np.float32) * 10 - 40)
        self.index = pd.Series(np.arange(len(names)), index=pd.Index(names, name='filename'))
    def rows(self, names): return self.index.reindex(list(names)).to_numpy(np.int64)

def make_dls(n_train:int, n_valid:int, frames:int, bs:int, seed:int=0):
    "DataLoaders over the first n_train + n_valid clips of the real CAS dev metadata (random labels, random features)"
    meta = read_meta(CSV).iloc[:n_train + n_valid].reset_index(drop=True)
    lab = np.random.default_rng(seed).integers(0, N_CLASSES, len(meta))
    meta['label'] = lab; meta['scene_label'] = [CLASSES[i] for i in lab]
    sp = make_split(meta, 'random', valid_pct=n_valid / len(meta), seed=seed)
    return asc_dataloaders(meta, MemCache(meta['filename'], frames, seed), split=sp, bs=bs, seed=seed)

class TinyNet(nn.Module):
    "Almost free: mean over time and frequency, then a linear layer (city and time ignored)"
    def __init__(self): super().__init__(); self.fc = nn.Linear(1, N_CLASSES)
    def forward(self, x, city, time): return self.fc(x.mean((2, 3)))

class PhaseTimer(Callback):
    "Reads the clock before and after each training phase (nothing else)"
    order = 100
    def before_fit(self): self.train_s = 0.
    def before_train(self): self._t = time.perf_counter()
    def after_train(self): self.train_s += time.perf_counter() - self._t

def run_learner(dls, model0, epochs:int, lr:float, path) -> dict:
    model = copy.deepcopy(model0)
    timer = PhaseTimer()
    kw = {} if hasattr(model, 'body') else dict(splitter=lambda m: [list(m.parameters())])
    learn = asc_learner(dls, model, lr=lr, path=path, cbs=[timer], **kw)
    learn.remove_cb(ProgressCallback)
    with learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):  # (SaveModelCallback's "Better model found")
        t0 = time.perf_counter(); learn.fit(epochs, lr); total = time.perf_counter() - t0
    return dict(total_s=total, train_s=timer.train_s, load=load_avg())

def run_plain(batches_tr, batches_va, model0, epochs:int, lr:float, dl=None) -> dict:
    "Minimal loop; `dl`: iterate this loader (its train and valid) instead of the prepared tensors"
    model = copy.deepcopy(model0)
    opt, loss_func = torch.optim.Adam(model.parameters(), lr=lr), ASCLoss()
    train_s, t0 = 0., time.perf_counter()
    for e in range(epochs):
        t1 = time.perf_counter(); model.train()
        for x, city, tm, y in (dl.train if dl is not None else batches_tr):
            loss = loss_func(model(x, city, tm), y)
            opt.zero_grad(); loss.backward(); opt.step()
        train_s += time.perf_counter() - t1
        model.eval(); tot, correct, n = 0., 0, 0
        with torch.no_grad():
            for x, city, tm, y in (dl.valid if dl is not None else batches_va):
                p = model(x, city, tm); tot += loss_func(p, y).item() * len(y)
                correct += (p.argmax(1) == y).sum().item(); n += len(y)
    return dict(total_s=time.perf_counter() - t0, train_s=train_s, load=load_avg(), valid_acc=correct / n)

class PairedPlain(Callback):
    "Before each Learner training batch, runs one plain-loop step on its own model (the same batch tensors, in turn)"
    order = -100
    def __init__(self, batches, model0, lr):
        self.batches, self.model = batches, copy.deepcopy(model0)
        self.opt, self.loss_func = torch.optim.Adam(self.model.parameters(), lr=lr), ASCLoss()
    def before_fit(self): self.last, self.plain, self.learner, self.i = None, [], [], 0
    def before_batch(self):
        if not self.training: return
        now = time.perf_counter()
        if self.last is not None: self.learner.append(now - self.last)   # the previous Learner batch, from end of plain step to here
        x, city, tm, y = self.batches[self.i % len(self.batches)]; self.i += 1
        t0 = time.perf_counter(); self.model.train()
        loss = self.loss_func(self.model(x, city, tm), y)
        self.opt.zero_grad(); loss.backward(); self.opt.step()
        self.last = time.perf_counter(); self.plain.append(self.last - t0)
    def after_train(self):   # the epoch's last Learner batch ends here (validation is not counted)
        if self.last is not None: self.learner.append(time.perf_counter() - self.last)
        self.last = None

def run_paired(dls, model0, epochs:int, lr:float, path) -> dict:
    "Learner and plain steps interleaved batch by batch in one fit, so both see the same machine load"
    pp = PairedPlain(list(dls.train), model0, lr)
    learn = asc_learner(dls, copy.deepcopy(model0), lr=lr, path=path, cbs=[pp])
    learn.remove_cb(ProgressCallback)
    with learn.no_logging(), contextlib.redirect_stdout(io.StringIO()): learn.fit(epochs, lr)
    assert len(pp.plain) == len(pp.learner), (len(pp.plain), len(pp.learner))
    r = [q / l for q, l in zip(pp.plain, pp.learner)]
    return dict(n=len(r), plain_s=sum(pp.plain), learner_s=sum(pp.learner), ratio_sum=sum(pp.plain) / sum(pp.learner),
                ratio_median=statistics.median(r), plain_median_s=statistics.median(pp.plain),
                learner_median_s=statistics.median(pp.learner), load=load_avg())

def warm_up(model0, b, lr):
    m = copy.deepcopy(model0); opt = torch.optim.Adam(m.parameters(), lr=lr)
    loss = ASCLoss()(m(*b[:3]), b[3]); loss.backward(); opt.step()

def compare(dls, model0, epochs, repeats, lr, path, plain_on_loader=False) -> dict:
    "Alternate plain / Learner runs; all results"
    tr, va = list(dls.train), list(dls.valid)
    warm_up(model0, tr[0], lr)
    res = {'plain': [], 'learner': []} | ({'plain_loader': []} if plain_on_loader else {})
    for r in range(repeats):
        order = ['plain', 'learner'] if r % 2 == 0 else ['learner', 'plain']
        if plain_on_loader: order.append('plain_loader')
        for k in order:
            if k == 'learner': res[k].append(run_learner(dls, model0, epochs, lr, path))
            else: res[k].append(run_plain(tr, va, model0, epochs, lr, dls if k == 'plain_loader' else None))
            print(f"  {k:12s} run {r + 1}: fit {res[k][-1]['total_s']:.2f} s, training phase {res[k][-1]['train_s']:.2f} s "
                  f"(load {res[k][-1]['load']})", flush=True)
    n = len(dls.train) * dls.train.bs * epochs  # clips seen in training (last partial batch dropped)
    out = dict(samples=n, runs=res)
    for k, v in res.items():
        for ph in ('total_s', 'train_s'):
            ts = [x[ph] for x in v]
            out[f'{k}_{ph}_best'], out[f'{k}_{ph}_median'] = min(ts), statistics.median(ts)
    for ph in ('total_s', 'train_s'):
        for agg in ('best', 'median'):
            out[f'ratio_{ph}_{agg}'] = out[f'plain_{ph}_{agg}'] / out[f'learner_{ph}_{agg}']  # = learner sps / plain sps
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', default='mobileascnet', help='a model of the zoo (default settings)')
    ap.add_argument('--frames', type=int, default=100)
    ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--n-train', type=int, default=256)
    ap.add_argument('--n-valid', type=int, default=64)
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', default='1', help='torch intra-op thread counts to measure, comma-separated (e.g. 1,2)')
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--paired-epochs', type=int, default=4, help='epochs of the interleaved (paired) measurement (0: skip)')
    ap.add_argument('--tiny-batches', type=int, default=100, help='training batches of the tiny-model measurement (0: skip)')
    ap.add_argument('--out', default=None, help='write the results as markdown here (e.g. bench/train_overhead.md)')
    a = ap.parse_args()
    threads = [int(t) for t in a.threads.split(',')]
    t_start, load_start = time.perf_counter(), load_avg()
    print(f'load average at start (1/5/15 min): {load_start}; {os.cpu_count()} CPUs', flush=True)
    tmp = tempfile.TemporaryDirectory(prefix='asc_bench_')
    dls = make_dls(a.n_train, a.n_valid, a.frames, a.bs)
    torch.manual_seed(0); model0 = create_model(a.model)
    print(f'{a.model} ({count_params(model0)/1e6:.3f} M params), {a.frames} frames x {MELS} mels, bs {a.bs}: '
          f'{len(dls.train.items)} training clips ({len(dls.train)} batches), {len(dls.valid.items)} validation clips, '
          f'{a.epochs} epochs per run', flush=True)
    results = {}
    for th in threads:
        torch.set_num_threads(th)
        print(f'torch threads {th}:', flush=True)
        m = results[th] = compare(dls, model0, a.epochs, a.repeats, a.lr, tmp.name)
        S = m['samples']
        print(f"[{th} thread(s)] samples/s, best of {a.repeats}: plain loop {S / m['plain_total_s_best']:.2f} (fit) / "
              f"{S / m['plain_train_s_best']:.2f} (training phase); Learner {S / m['learner_total_s_best']:.2f} / "
              f"{S / m['learner_train_s_best']:.2f}")
        for ph, name in (('total_s', 'whole fit'), ('train_s', 'training phase')):
            r, rm = m[f'ratio_{ph}_best'], m[f'ratio_{ph}_median']
            print(f"[{th} thread(s)] Learner / plain throughput, {name}: {100 * r:.1f}% best, {100 * rm:.1f}% median -> "
                  f"{'PASS' if r >= 0.9 else 'FAIL'} (>= 90%)", flush=True)
        if a.paired_epochs:
            pr = m['paired'] = run_paired(dls, model0, a.paired_epochs, a.lr, tmp.name)
            print(f"[{th} thread(s)] interleaved, {pr['n']} pairs of training batches: Learner / plain throughput "
                  f"{100 * pr['ratio_sum']:.1f}% (total times {pr['learner_s']:.2f} / {pr['plain_s']:.2f} s), median of the "
                  f"pairs {100 * pr['ratio_median']:.1f}% (load {pr['load']}) -> {'PASS' if pr['ratio_sum'] >= 0.9 else 'FAIL'} "
                  f"(>= 90%)", flush=True)

    tiny = None
    if a.tiny_batches:
        torch.set_num_threads(threads[0])
        dls_t = make_dls(a.tiny_batches * a.bs, a.n_valid, a.frames, a.bs, seed=1)
        torch.manual_seed(0)
        print(f'tiny model ({threads[0]} thread(s)): {len(dls_t.train)} training batches of {a.bs}, 1 epoch per run', flush=True)
        tiny = compare(dls_t, TinyNet(), 1, a.repeats, a.lr, tmp.name, plain_on_loader=True)
        nb = len(dls_t.train)
        tiny['per_batch_ms'] = {k: 1000 * tiny[f'{k}_train_s_best'] / nb for k in ('plain', 'plain_loader', 'learner')}
        tiny['fit_extra_ms'] = 1000 * (tiny['learner_total_s_best'] - tiny['learner_train_s_best'])
        tiny['plain_fit_extra_ms'] = 1000 * (tiny['plain_total_s_best'] - tiny['plain_train_s_best'])
        pb = tiny['per_batch_ms']
        print(f"tiny model, training phase per batch (best): plain on tensors {pb['plain']:.2f} ms, plain on the ASCDataLoader "
              f"{pb['plain_loader']:.2f} ms, Learner {pb['learner']:.2f} ms -> Learner machinery "
              f"{pb['learner'] - pb['plain_loader']:.2f} ms/batch beyond the loader's {pb['plain_loader'] - pb['plain']:.2f} ms; "
              f"validation + end of epoch: Learner {tiny['fit_extra_ms']:.0f} ms, plain {tiny['plain_fit_extra_ms']:.0f} ms", flush=True)
    total = time.perf_counter() - t_start
    print(f'total {total:.0f} s; load average at end: {load_avg()}')

    if a.out:
        import fastai
        L = ['# Training overhead: fastai Learner against a plain PyTorch loop', '',
             f'`python bench/train_overhead.py --threads {a.threads} --out {a.out}` ({time.strftime("%Y-%m-%d")}; Python '
             f'{platform.python_version()}, torch {torch.__version__}, fastai {fastai.__version__}, {platform.machine()}, '
             f'{os.cpu_count()} CPUs, no GPU; {total:.0f} s in all). Load average (1/5/15 min) at the start {load_start}, at '
             f'the end {load_avg()} (shared machine; the load after each run is in the tables).', '',
             f'Setup: {a.model} ({count_params(model0)/1e6:.3f} M parameters, default settings, city and time on), '
             f'{a.frames} frames x {MELS} mels, batch {a.bs}, {len(dls.train.items)} training clips ({len(dls.train)} batches), '
             f'{len(dls.valid.items)} validation clips (random features in memory, metadata rows of the CAS dev CSV with '
             f'random labels), {a.epochs} epochs per run, {a.repeats} runs of each, alternated. Learner: `asc_learner(dls, '
             f'model, lr={a.lr})` with its default callbacks (step decay, early stopping, save/restore best, three metrics), '
             'progress bar and logging off, data from `asc_dataloaders`. Plain loop: same initial weights, '
             '`torch.optim.Adam`, `ASCLoss()`, the same batches prepared as tensors beforehand (so it pays nothing for data), '
             'a validation pass with loss and accuracy per epoch. See the docstring of the script for the details.', '']
        for th, m in results.items():
            S = m['samples']
            L += [f'## {th} torch thread(s)', '', '| samples/s | plain loop | Learner | Learner / plain |', '|---|---|---|---|']
            for ph, name in (('total_s', 'whole fit'), ('train_s', 'training phase')):
                for agg in ('best', 'median'):
                    L.append(f"| {name}, {agg} of {a.repeats} | {S / m[f'plain_{ph}_{agg}']:.2f} | "
                             f"{S / m[f'learner_{ph}_{agg}']:.2f} | {100 * m[f'ratio_{ph}_{agg}']:.1f}% |")
            L += ['', f"Target (Learner >= 90% of the plain loop, best runs, whole fit): "
                  f"{'pass' if m['ratio_total_s_best'] >= 0.9 else 'FAIL'}.", '', 'Runs (seconds; load after the run):', '',
                  '| run | plain: fit / training phase | Learner: fit / training phase |', '|---|---|---|']
            for i, (p, l) in enumerate(zip(m['runs']['plain'], m['runs']['learner'])):
                L.append(f"| {i + 1} | {p['total_s']:.2f} / {p['train_s']:.2f} ({p['load']}) | "
                         f"{l['total_s']:.2f} / {l['train_s']:.2f} ({l['load']}) |")
            if 'paired' in m:
                pr = m['paired']
                L += ['', f"Interleaved (one `fit` of {a.paired_epochs} epochs; before each Learner training batch a callback runs "
                      f"one plain-loop step on its own copy of the initial weights, so each pair sees the same machine load), "
                      f"{pr['n']} pairs: Learner / plain throughput **{100 * pr['ratio_sum']:.1f}%** (sum of the batch times: "
                      f"Learner {pr['learner_s']:.2f} s, plain {pr['plain_s']:.2f} s), median of the per-pair ratios "
                      f"{100 * pr['ratio_median']:.1f}%, median batch Learner {1000 * pr['learner_median_s']:.0f} ms, plain "
                      f"{1000 * pr['plain_median_s']:.0f} ms (load at the end {pr['load']}). A Learner batch here is the time from "
                      f"the end of the plain step to the next batch's start (or the end of the training phase): loading the "
                      f"batch, fastai's events and callbacks, forward, loss, backward, fastai's Adam. Target: "
                      f"{'pass' if pr['ratio_sum'] >= 0.9 else 'FAIL'}."]
            L.append('')
        if tiny:
            pb = tiny['per_batch_ms']
            L += ['## Fixed cost per batch (tiny model)', '',
                  f"A model that costs almost nothing (mean -> linear), {len(dls_t.train)} training batches of {a.bs} "
                  f"({a.frames} x {MELS}), 1 epoch per run, best of {a.repeats}, {threads[0]} torch thread(s):", '',
                  '| training phase, per batch | ms |', '|---|---|',
                  f"| plain loop over prepared tensors | {pb['plain']:.2f} |",
                  f"| plain loop over the same `ASCDataLoader` | {pb['plain_loader']:.2f} |",
                  f"| Learner | {pb['learner']:.2f} |",
                  f"| Learner machinery beyond the loader | {pb['learner'] - pb['plain_loader']:.2f} |", '',
                  f"Validation and end-of-epoch work (best fit time less the training phase): Learner "
                  f"{tiny['fit_extra_ms']:.0f} ms, plain loop {tiny['plain_fit_extra_ms']:.0f} ms "
                  f"({len(dls_t.valid.items)} validation clips).", '']
            m1 = results[threads[0]]
            step = m1['paired']['plain_median_s'] if 'paired' in m1 else m1['plain_train_s_best'] / (len(dls.train) * a.epochs)
            extra = (pb['learner'] - pb['plain']) / 1000
            L += ['## Notes', '',
                  f"- Expected Learner overhead at the main setting: the fixed cost per batch (Learner less the plain loop on "
                  f"prepared tensors, {1000 * extra:.1f} ms, which includes reading the batch from the features) against a "
                  f"{a.model} step of about {step:.2f} s ({threads[0]} thread(s)) is {100 * extra / step:.2f}% of a step, i.e. "
                  f"an expected Learner / plain throughput of about {100 * step / (step + extra):.1f}% in the training phase. "
                  "fastai's Adam (a Python loop over the parameter tensors) is part of that cost; with a step this long it "
                  "does not show.",
                  '- The whole-run figures above swing by tens of percent from run to run because other jobs share the 2 '
                  'cores (see the load column); the interleaved figure puts each Learner batch next to a plain step under '
                  'the same load and is the one to trust on a busy machine.',
                  '- The overhead would become visible only where a step takes a few ms (a GPU, or a tiny model): at '
                  f"{1000 * extra:.1f} ms per batch the Learner stays above 90% of a plain loop for steps longer than about "
                  f"{9 * 1000 * extra:.0f} ms.", '']
        with atomic_write(ROOT/a.out if not Path(a.out).is_absolute() else Path(a.out), 'w') as f: f.write('\n'.join(L))
        print(f'wrote {a.out}')
    tmp.cleanup()

if __name__ == '__main__': main()
