"""Speed and memory of the training DataLoader (`asc_dataloaders` over a feature cache, read with `read_rows`).

Usage: python bench/dataloader.py [--dtypes float16,float32] [--threads 1,2] [--keep] [--out bench/dataloader.md]
                                  [--baseline DIR [--baseline-name NAME]]

--baseline DIR: also measure (a) and (b) with another copy of the package (DIR/asc_nbdev, put first on PYTHONPATH of
its children), alternating with the current one, e.g. the last commit before a change:
    git archive 46d96da asc_nbdev | tar -x -C /tmp/base && python bench/dataloader.py --baseline /tmp/base --baseline-name 46d96da

(a) batches per second of the training `ASCDataLoader` alone (bs 64, shuffled, 500 frames x 64 mels,
    normalised, city/time/target tensors as training gets them), against the time of one MobileASCNet
    training step at batch 64 (default-size model, forward + backward + Adam, 500 frames, train mode).
    Target: the loader is at least 5x faster than the step (ratio = step time / loader time per batch).
(b) peak resident memory of a fresh process that opens a cache of CAS dev size (8,700 x 500 x 64),
    builds the DataLoaders (including the training-split normalisation statistics) and iterates over
    a full epoch (training loader + validation loader). Target: under 1.5 GB.
(c) for comparison, a raw read of a whole epoch (batches of 64 rows, no conversion) four ways: fancy indexing
    of the memory map (sorted; what the loader did before `read_rows`), the same + madvise(MADV_DONTNEED) after
    each batch, os.preadv per row into the batch buffer, and `asc_nbdev.features.read_rows` (what the loader
    does: sorted positioned reads, runs of consecutive rows in one call, scattered into batch order): time per
    batch and the resident memory it leaves.

The cache is built directly: `features.npy` written with `np.lib.format.open_memmap`, filled in chunks
with random normal data (mean -40, std 10, like dB log-mels) of the chosen dtype, plus `index.csv`
(filename,row) and `manifest.json` as `asc_nbdev.features.FeatureCache` reads them, under
`bench/_work/` (git-ignored; deleted at the end unless --keep). The metadata are the 8,700 rows of the
real CAS 2023 dev CSV (`../shared/data/cas2023/APSIPA2025_GC_ASC_dev_metadata.csv`, read with
`read_meta`); the 6,960 unlabeled rows are given random labels (seed 0) so that every clip is labeled
and the 'session' split trains on about 80% of all 8,700 clips.

Every measurement runs in its own fresh subprocess, one at a time (never in parallel: the machine has
2 cores and is shared). The load average is printed next to each figure. Memory figures:
VmHWM (peak resident set, /proc/self/status) = anonymous memory + the file pages of the memory map that
the process has touched; the anonymous part (RssAnon, sampled every 5 ms) is what the process
really owns: the mapped file pages are page cache, shared and reclaimable by the kernel.
"""
import argparse, json, os, platform, resource, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent/'shared'/'data'/'cas2023'/'APSIPA2025_GC_ASC_dev_metadata.csv'
WORK = ROOT/'bench'/'_work'/'dataloader'
N, FRAMES, MELS, BS = 8700, 500, 64, 64

def load_avg() -> str: return '/'.join(f'{v:.2f}' for v in os.getloadavg())

def proc_mem() -> dict:
    "Memory fields of /proc/self/status, in MB"
    out = {}
    for line in Path('/proc/self/status').read_text().splitlines():
        k, _, v = line.partition(':')
        if k in ('VmHWM', 'VmRSS', 'RssAnon', 'RssFile', 'RssShmem'): out[k] = int(v.split()[0]) / 1024
    return out

def map_rss(name:str='features.npy') -> float:
    "Resident MB of this process's mappings of files called `name` (/proc/self/smaps)"
    tot, cur = 0, False
    for line in Path('/proc/self/smaps').read_text().splitlines():
        f = line.split()
        if f and '-' in f[0] and len(f) >= 5 and not f[0].endswith(':'): cur = line.rstrip().endswith(name)
        elif cur and f[0] == 'Rss:': tot += int(f[1])
    return tot / 1024

class AnonPeak:
    "Background thread sampling RssAnon every `dt` seconds; `phase()` returns the peak (MB) since the last call"
    def __init__(self, dt:float=0.005):
        import threading
        self.samples, self.dt, self._stop, self.t0 = [], dt, threading.Event(), time.perf_counter()
        self.t = threading.Thread(target=self._run, daemon=True); self.t.start()
    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), proc_mem()['RssAnon'])); time.sleep(self.dt)
    def phase(self) -> float:
        t0, self.t0 = self.t0, time.perf_counter()
        return max([v for t, v in list(self.samples) if t0 <= t <= self.t0] + [proc_mem()['RssAnon']])
    def stop(self) -> float:
        v = self.phase(); self._stop.set(); self.t.join(); return v

# ---------------------------------------------------------------- building the cache and the metadata
def meta_all_labeled(seed:int=0):
    "The real CAS dev metadata with random labels for its unlabeled rows"
    import numpy as np
    from asc_nbdev.core import CLASSES
    from asc_nbdev.data.metadata import read_meta
    df = read_meta(CSV)
    unl = (df['label'] < 0).to_numpy()
    lab = np.random.default_rng(seed).integers(0, len(CLASSES), unl.sum())
    df.loc[unl, 'label'] = lab
    df.loc[unl, 'scene_label'] = [CLASSES[i] for i in lab]
    return df, int(unl.sum())

def build_cache(folder:Path, dtype:str, names, chunk:int=256, seed:int=0):
    "A feature cache of random data of `dtype` for `names`, in the layout FeatureCache reads"
    import numpy as np, pandas as pd
    from asc_nbdev.files import save_json
    man = dict(format='asc_nbdev feature cache', shape=[len(names), FRAMES, MELS],
               params=dict(dtype=dtype, clip_seconds=10.0, n_mels=MELS, sample_rate=44100, note='random data (bench/dataloader.py)'))
    if (folder/'manifest.json').is_file() and json.loads((folder/'manifest.json').read_text()) == man:
        return False  # kept from an earlier --keep run
    folder.mkdir(parents=True, exist_ok=True)
    (folder/'manifest.json').unlink(missing_ok=True)
    arr = np.lib.format.open_memmap(folder/'features.npy', mode='w+', dtype=dtype, shape=(len(names), FRAMES, MELS))
    rng = np.random.default_rng(seed)
    for i in range(0, len(names), chunk):
        k = min(chunk, len(names) - i)
        arr[i:i + k] = (rng.standard_normal((k, FRAMES, MELS), dtype=np.float32) * 10 - 40).astype(dtype)
    arr.flush(); del arr
    # rows in a shuffled order (a real cache is not in metadata order either)
    rows = np.random.default_rng(seed + 1).permutation(len(names))
    pd.DataFrame({'filename': names, 'row': rows}).to_csv(folder/'index.csv', index=False)
    (folder/'manifest.json').write_text(json.dumps(man))
    return True

# ---------------------------------------------------------------- children (fresh processes)
def child_loader(dtype:str, epochs:int):
    "Open the cache, build the DataLoaders, iterate `epochs` training epochs + one validation pass; print JSON"
    import numpy as np, torch
    from asc_nbdev.audio.cache import FeatureCache
    from asc_nbdev.data.loaders import asc_dataloaders
    torch.set_num_threads(1)
    res = dict(dtype=dtype, mem_after_imports=proc_mem())
    df, n_unl = meta_all_labeled()
    cache = FeatureCache(WORK/dtype)
    sampler = AnonPeak()
    t0 = time.perf_counter()
    dls = asc_dataloaders(df, cache, split='session', bs=BS, seed=1234)
    res.update(build_s=time.perf_counter() - t0, mem_after_build=dict(proc_mem(), cache_map=map_rss()),
               peak_anon_build_mb=sampler.phase(), n_train=len(dls.train.items),
               n_valid=len(dls.valid.items), n_batches=len(dls.train), num_workers=dls.train.fake_l.num_workers,
               file_mb=os.path.getsize(WORK/dtype/'features.npy') / 2**20, n_unlabeled_given_random_labels=n_unl)
    epochs_s, loads = [], []
    for e in range(epochs):
        n, t0 = 0, time.perf_counter()
        for b in dls.train: n += 1
        epochs_s.append(time.perf_counter() - t0); loads.append(load_avg())
        assert n == len(dls.train)
    x, city, tm, y = b
    res['batch'] = dict(x=list(x.shape), x_dtype=str(x.dtype), city=list(city.shape), time=list(tm.shape), y=str(y.dtype))
    t0 = time.perf_counter()
    for b in dls.valid: pass
    res.update(valid_s=time.perf_counter() - t0, epoch_s=epochs_s, epoch_loads=loads, peak_anon_mb=sampler.stop(),
               mem_end=dict(proc_mem(), cache_map=map_rss()), maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               maxrss_children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    print('RESULT ' + json.dumps(res), flush=True)

def child_step(threads:int, reps:int, bs:int=BS):
    "Time MobileASCNet training steps (bs x 1 x 500 x 64, forward + backward + Adam); print JSON"
    import torch, torch.nn.functional as F
    from asc_nbdev.models.zoo import create_model, count_params
    torch.set_num_threads(threads); torch.manual_seed(0)
    m = create_model('mobileascnet').train(); opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    x = torch.randn(bs, 1, FRAMES, MELS); city = torch.randint(0, 23, (bs,)); tm = torch.randn(bs, 8); y = torch.randint(0, 10, (bs,))
    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(m(x, city, tm), y).backward(); opt.step()
    step()  # warm-up
    ts, loads = [], []
    for _ in range(reps):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0); loads.append(load_avg())
    print('RESULT ' + json.dumps(dict(threads=threads, params=count_params(m), step_s=ts, loads=loads)), flush=True)

def child_raw(dtype:str, method:str, reps:int=3):
    "Read all rows of a shuffled epoch in batches of 64 as the loader does, by `method`, `reps` times; print ms/batch (best) and memory"
    import mmap, numpy as np
    path = WORK/dtype/'features.npy'
    f = np.load(path, mmap_mode='r'); rb, off = f[0].nbytes, f.offset
    if method == 'read_rows':
        from asc_nbdev.audio.cache import open_features, read_rows
        f = open_features(path)
    fd = os.open(path, os.O_RDONLY)
    rows = np.random.default_rng(0).permutation(len(f))
    m0 = proc_mem(); times = []
    for rep in range(reps):    # the whole epoch `reps` times: the best is the least disturbed by other jobs
        t0 = time.perf_counter(); nb = 0
        for i in range(0, len(rows) - BS + 1, BS):
            r = np.sort(rows[i:i + BS]); nb += 1
            if method == 'read_rows': x = read_rows(f, rows[i:i + BS])   # sorts itself, returns batch order
            elif method == 'pread':    # each row is contiguous in the file: one positioned read straight into the batch buffer
                x = np.empty((len(r),) + f.shape[1:], f.dtype)
                for k, row in enumerate(r): os.preadv(fd, [x[k]], off + int(row) * rb)
            else:
                x = np.asarray(f[r])
                if method == 'madvise': f._mmap.madvise(mmap.MADV_DONTNEED)   # unmap the pages just read (they stay in the page cache)
        times.append(1000 * (time.perf_counter() - t0) / nb)
    print('RESULT ' + json.dumps(dict(dtype=dtype, method=method, ms_per_batch=min(times), ms_all=times, vmhwm_before=m0['VmHWM'],
                                      mem_end=dict(proc_mem(), cache_map=map_rss()))), flush=True)

def run_child(*args, pkg:str|None=None) -> dict:
    "Run a measurement in a fresh process; `pkg`: a folder whose asc_nbdev package it imports instead of this one"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg] + [v for v in [os.environ.get('PYTHONPATH')] if v])) if pkg else None
    p = subprocess.run([sys.executable, __file__, '--child', *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith('RESULT ')]
    if p.returncode or not lines: raise RuntimeError(f'child {args} failed (rc {p.returncode}):\n{p.stdout}\n{p.stderr}')
    return json.loads(lines[-1][7:])

# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dtypes', default='float16,float32', help='cache dtypes to measure (comma-separated)')
    ap.add_argument('--threads', default='1,2', help='torch threads for the training-step timing (comma-separated)')
    ap.add_argument('--step-reps', type=int, default=2, help='timed training steps after one warm-up')
    ap.add_argument('--epochs', type=int, default=2, help='training-loader epochs per dtype (the first touches the pages)')
    ap.add_argument('--keep', action='store_true', help='keep bench/_work/dataloader (and reuse it next time)')
    ap.add_argument('--out', default=None, help='write the results as markdown here (e.g. bench/dataloader.md)')
    ap.add_argument('--baseline', default=None, help='folder with another asc_nbdev package to measure alongside (see the docstring)')
    ap.add_argument('--baseline-name', default='baseline', help='what to call the baseline in the output (e.g. a commit)')
    ap.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == 'raw': return child_raw(*rest)
        return child_loader(rest[0], int(rest[1])) if kind == 'loader' else child_step(int(rest[0]), int(rest[1]))

    t_start, load_start = time.perf_counter(), load_avg()
    dtypes, threads = a.dtypes.split(','), [int(t) for t in a.threads.split(',')]
    print(f'load average at start (1/5/15 min): {load_start}; {os.cpu_count()} CPUs', flush=True)
    df, n_unl = meta_all_labeled()
    assert len(df) == N, len(df)
    for dt in dtypes:
        t0 = time.perf_counter(); made = build_cache(WORK/dt, dt, df['filename'].tolist())
        print(f'cache {dt}: {"built" if made else "reused"} in {time.perf_counter() - t0:.1f} s '
              f'({os.path.getsize(WORK/dt/"features.npy") / 2**20:.0f} MB)', flush=True)

    loader = {}
    variants = [(dt, None) for dt in dtypes]
    if a.baseline:   # alternate: baseline, current, per dtype
        variants = [v for dt in dtypes for v in ((dt, a.baseline_name), (dt, None))]
        print(f'baseline: {a.baseline_name} = {Path(a.baseline).resolve()}/asc_nbdev', flush=True)
    for key in variants:
        dt, base = key
        r = loader[key] = run_child('loader', dt, a.epochs, pkg=a.baseline if base else None)
        if base: dt = f'{dt} ({base})'
        bps = [r['n_batches'] / s for s in r['epoch_s']]
        r['bps'] = bps
        print(f"[{dt}] train {r['n_train']} clips, valid {r['n_valid']}, {r['n_batches']} batches of {BS}, "
              f"num_workers {r['num_workers']}; build (incl. band stats) {r['build_s']:.1f} s", flush=True)
        print(f"[{dt}] loader: {', '.join(f'{v:.1f}' for v in bps)} batches/s per epoch "
              f"(load {', '.join(r['epoch_loads'])}); validation pass {r['valid_s']:.1f} s", flush=True)
        ma, mb, me = r['mem_after_imports'], r['mem_after_build'], r['mem_end']
        print(f"[{dt}] memory (MB): after imports VmHWM {ma['VmHWM']:.0f} (RssAnon {ma['RssAnon']:.0f}, RssFile {ma['RssFile']:.0f}); "
              f"after building the loaders VmHWM {mb['VmHWM']:.0f} (peak RssAnon {r['peak_anon_build_mb']:.0f}, cache pages mapped "
              f"{mb['cache_map']:.0f}); after the epoch(s) VmHWM {me['VmHWM']:.0f}, maxrss {r['maxrss_mb']:.0f} (peak RssAnon "
              f"while iterating {r['peak_anon_mb']:.0f}, now RssAnon {me['RssAnon']:.0f} + RssFile {me['RssFile']:.0f}, of which "
              f"cache pages {me['cache_map']:.0f}) -> {'PASS' if me['VmHWM'] < 1536 else 'FAIL'} (VmHWM < 1.5 GB); without the "
              f"cache's mapped pages: {me['VmHWM'] - me['cache_map']:.0f}", flush=True)

    raw = {}
    for dt in dtypes:
        for meth in ('memmap', 'madvise', 'pread', 'read_rows'):
            r = raw[dt, meth] = run_child('raw', dt, meth); r['load'] = load_avg()
            print(f"[{dt}] raw read of a whole epoch (all {N} rows, batches of {BS}) by {meth}: {r['ms_per_batch']:.2f} ms/batch "
                  f"(best of {', '.join(f'{v:.2f}' for v in r['ms_all'])}), "
                  f"VmHWM {r['vmhwm_before']:.0f} -> {r['mem_end']['VmHWM']:.0f} MB, cache pages mapped at the end "
                  f"{r['mem_end']['cache_map']:.0f} MB (load {load_avg()})", flush=True)

    steps = {}
    for th in threads:
        r = steps[th] = run_child('step', th, a.step_reps)
        print(f"MobileASCNet ({r['params']/1e6:.3f} M params) training step, bs {BS}, {FRAMES} frames, {th} thread(s): "
              f"{', '.join(f'{s:.2f}' for s in r['step_s'])} s (load {', '.join(r['loads'])})", flush=True)
    best_step = min(min(r['step_s']) for r in steps.values())
    best_th = min(steps, key=lambda t: min(steps[t]['step_s']))
    ratios = {dt: best_step * min(loader[dt, None]['bps']) for dt in dtypes}  # slowest loader epoch vs fastest step: the strict ratio
    for dt in dtypes:
        print(f"[{dt}] ratio step time / loader time per batch = {ratios[dt]:.0f}x "
              f"(fastest step, {best_th} thread(s), vs slowest loader epoch) -> {'PASS' if ratios[dt] >= 5 else 'FAIL'} (>= 5x)")
    total = time.perf_counter() - t_start
    print(f'total {total:.0f} s; load average at end: {load_avg()}')

    if a.out:
        import numpy, torch, fastai
        cur = loader[dtypes[0], None]
        name = lambda key: key[0] + (f' ({key[1]})' if key[1] else (' (this tree)' if a.baseline else ''))
        L = ['# DataLoader speed and memory', '',
             f'`python bench/dataloader.py --out {a.out}' + (f' --baseline DIR --baseline-name {a.baseline_name}' if a.baseline else '')
             + f'` ({time.strftime("%Y-%m-%d")}; Python {platform.python_version()}, '
             f'torch {torch.__version__}, fastai {fastai.__version__}, numpy {numpy.__version__}, {platform.machine()}, '
             f'{os.cpu_count()} CPUs, no GPU; {total:.0f} s in all). Load average (1/5/15 min) at the start {load_start}, '
             f'at the end {load_avg()}. **The machine is shared with other jobs** (other agents building and testing on the same '
             '2 cores): the load average at each figure is given beside it, and figures taken under different loads are not '
             'strictly comparable.', '',
             f'Cache: {N} clips x {FRAMES} frames x {MELS} mels of random data, built with `np.lib.format.open_memmap` under '
             f'`bench/_work/` and opened with `FeatureCache` (`features` is a read-only memmap; the loaders read it with '
             f'`read_rows`: positioned reads of `features.npy`). Metadata: the 8,700 rows of the real CAS 2023 dev '
             f'CSV; its {n_unl} unlabeled rows got random labels (seed 0) so that all are labeled. '
             f"`asc_dataloaders(meta, cache, split='session', bs={BS})`: {cur['n_train']} training clips "
             f"({cur['n_batches']} batches, shuffled, last partial batch dropped), {cur['n_valid']} "
             f"validation clips; num_workers {cur['num_workers']} (batches are read in the main process). "
             'Each measurement ran in a fresh subprocess, one at a time; the loader process used 1 torch thread.']
        if a.baseline:
            L += ['', f'Baseline `{a.baseline_name}`: the same measurements with that version of the package (its `asc_nbdev` first '
                  'on the child processes\' PYTHONPATH), run alternately with this tree\'s (baseline, then this tree, per dtype), '
                  'so that both see about the same machine load.']
        L += ['', '## (a) Loader speed against a training step', '',
              '| cache dtype (package) | file (MB) | ' + ' | '.join(f'loader epoch {e + 1} (batches/s)' for e in range(a.epochs))
              + ' | load (1/5/15) per epoch |', '|---|---|' + '---|' * a.epochs + '---|']
        for key, r in loader.items():
            b = r['bps'] + [float('nan')] * a.epochs
            L.append(f"| {name(key)} | {r['file_mb']:.0f} | " + ' | '.join(f'{v:.1f}' for v in b[:a.epochs]) + f" | {'; '.join(r['epoch_loads'])} |")
        L += ['', '| torch threads | MobileASCNet training step, bs 64, 500 frames (s) | load (1/5/15) after each step |', '|---|---|---|']
        for th, r in steps.items():
            L.append(f"| {th} | {', '.join(f'{s:.2f}' for s in r['step_s'])} | {'; '.join(r['loads'])} |")
        L += ['', f'Step: default MobileASCNet ({steps[threads[0]]["params"]/1e6:.3f} M parameters, city and time on), forward + '
              'cross-entropy + backward + Adam on 64 random clips, train mode, after one warm-up step.', '',
              '| cache dtype | step time / loader time per batch | target >= 5x |', '|---|---|---|']
        for dt in dtypes:
            L.append(f"| {dt} | {ratios[dt]:.0f}x | {'pass' if ratios[dt] >= 5 else 'FAIL'} |")
        L += ['', f'Ratio: fastest training step ({best_th} thread(s)) times the slowest loader epoch\'s batches per second '
              '(the least favourable pairing for the loader).', '',
              '## (b) Peak memory over a full epoch', '',
              '| cache dtype (package) | after imports: VmHWM (RssAnon + RssFile) | building the loaders: VmHWM after, peak RssAnon during | '
              'iterating: peak RssAnon | end: VmHWM (RssAnon + RssFile, of which cache pages) | VmHWM less the cache pages | '
              'target VmHWM < 1,536 MB | load (1/5/15) at the end |', '|---|---|---|---|---|---|---|---|']
        for key, r in loader.items():
            ma, mb, me = r['mem_after_imports'], r['mem_after_build'], r['mem_end']
            L.append(f"| {name(key)} | {ma['VmHWM']:.0f} ({ma['RssAnon']:.0f} + {ma['RssFile']:.0f}) | {mb['VmHWM']:.0f}, "
                     f"{r['peak_anon_build_mb']:.0f} | {r['peak_anon_mb']:.0f} | {me['VmHWM']:.0f} ({me['RssAnon']:.0f} + "
                     f"{me['RssFile']:.0f}, {me['cache_map']:.0f}) | {me['VmHWM'] - me['cache_map']:.0f} | "
                     f"{'pass' if me['VmHWM'] < 1536 else 'FAIL'} | {r['epoch_loads'][-1]} |")
        L += ['', f'All in MB (2^20 bytes). The process opens the cache, builds the loaders (this computes the per-band '
              f'statistics over the training rows), iterates {a.epochs} training epochs and one validation pass. VmHWM '
              '(/proc/self/status; `getrusage` maxrss agrees) counts the anonymous memory plus every file page the process '
              'has mapped and touched (RssFile): the shared libraries of torch and friends and any page of the memory-mapped '
              '`features.npy` read through the map (measured from /proc/self/smaps). Such cache pages are page cache: shared, '
              'and reclaimable by the kernel under memory pressure, but a limit on resident memory counts them. '
              'RssAnon peaks come from a thread sampling /proc/self/status every 5 ms.', '']
        L += ['## (c) Reading rows: through the map or with positioned reads', '',
              f'A fresh process reads all {N} rows of the cache in a shuffled order, {BS} at a time, with no normalisation or '
              'conversion: by fancy indexing of the memory map (each batch sorted by row; what `ASCItems.batch` did before '
              '`read_rows`), the same followed by `madvise(MADV_DONTNEED)` on the map after each batch, by one `os.preadv` per '
              'sorted row straight into a batch buffer, and by `read_rows` (the loader now: sorted positioned reads, each run '
              'of consecutive rows in one `os.preadv`, scattered into batch order, through the file `FeatureCache` holds open). '
              'Each reads the epoch three times; the best time is given. "VmHWM before" is after the imports (`read_rows` '
              'imports torch with `asc_nbdev.features`).', '',
              '| cache dtype | method | ms per batch (best of 3 epochs) | VmHWM before -> after (MB) | cache pages mapped at the end (MB) | load (1/5/15) |',
              '|---|---|---|---|---|---|']
        for (dt, meth), r in raw.items():
            L.append(f"| {dt} | {meth} | {r['ms_per_batch']:.2f} | {r['vmhwm_before']:.0f} -> {r['mem_end']['VmHWM']:.0f} | "
                     f"{r['mem_end']['cache_map']:.0f} | {r['load']} |")
        imp = cur['mem_after_imports']['RssAnon']
        L += ['', '## Notes', '',
              f"- Where the memory goes: about {imp:.0f} MB of anonymous memory after the imports (torch, fastai, pandas) "
              f"and about {cur['mem_after_imports']['RssFile']:.0f} MB of shared libraries. Building the loaders and iterating "
              f"costs little more (peak RssAnon {max(loader[dt, None]['peak_anon_mb'] for dt in dtypes):.0f} MB): a batch is "
              '64 x 500 x 64 float32 = 8 MB, and `band_stats` reads 64 rows at a time.',
              '- The loaders read the cache with `asc_nbdev.features.read_rows`: positioned reads (`os.preadv`) of '
              '`features.npy` through the file that `FeatureCache` holds open beside its memmap, sorted by row, each run of '
              'consecutive rows in one call, straight into the float32 batch tensor (float16: into a raw buffer in batch '
              'order, then cast with torch). No page of the map is touched, so the cache adds nothing to the resident set '
              'whatever its size (column "of which cache pages" in table b).']
        if a.baseline:
            for dt in dtypes:
                o, n = loader[dt, a.baseline_name], loader[dt, None]
                L.append(f"- {dt}: VmHWM {o['mem_end']['VmHWM']:.0f} MB with {a.baseline_name} (of which cache pages "
                         f"{o['mem_end']['cache_map']:.0f}) -> {n['mem_end']['VmHWM']:.0f} MB now; loader "
                         f"{max(o['bps']):.1f} -> {max(n['bps']):.1f} batches/s (best epoch; loads "
                         f"{o['epoch_loads'][-1]} and {n['epoch_loads'][-1]}).")
        for dt in dtypes:
            per_b, rd = 1000 / max(loader[dt, None]['bps']), raw[dt, 'read_rows']['ms_per_batch']
            L.append(f"- Speed, {dt}: {per_b:.1f} ms per batch in the loader (best epoch) against {rd:.1f} ms for the raw "
                     f"`read_rows` (table c): the rest is {'the cast to float32 (with torch), ' if dt == 'float16' else ''}the "
                     "normalisation, the city/time/target tensors and fastai's per-batch machinery.")
        L += ['- None of this matters against a CPU training step (ratios above); it would only start to matter if a GPU '
              'step of MobileASCNet took about 5 x the loader time per batch or less, which this CPU-only machine could not '
              'measure.', '']
        from asc_nbdev.files import atomic_write
        with atomic_write(ROOT/a.out if not Path(a.out).is_absolute() else Path(a.out), 'w') as f: f.write('\n'.join(L))
        print(f'wrote {a.out}')
    if not a.keep:
        shutil.rmtree(WORK, ignore_errors=True)
        try: WORK.parent.rmdir()   # bench/_work, when nothing else is in it
        except OSError: pass

if __name__ == '__main__': main()
