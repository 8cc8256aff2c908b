"""CPU cost of each model of the zoo: parameters, multiply-accumulates per 10 s clip, inference time per clip and per GMAC.

Usage: python bench/models.py [--models se_trans,fcnn] [--rounds 5] [--threads 1] [--train] [--out bench/models.md]

- parameters: default settings, 10 classes, metadata on;
- MACs per clip: torch's own FLOP counter (torch.utils.flop_counter.FlopCounterMode) on one
  500-frame x 64-mel clip, MACs = FLOPs / 2, counted on the plain modules. It runs with gradients
  enabled (so the Transformer's fused inference path, which the counter cannot see, is not taken)
  and with the "math" attention backend (so the attention matmuls are counted too);
- inference: eval mode under torch.inference_mode, --threads CPU threads (default 1), batch 1 and
  batch 16; ms per clip = batch time / batch size, ms/GMAC = ms per clip / GMACs per clip;
- before/after: MobileASCNet is timed twice, `plain` (its `body.fast = False`: the modules as
  written, the path before issue 17) and `fast` (the default: BatchNorm folded, channels-last,
  fused oneDNN ops, the batch in cache-sized chunks). The other models have one path (`-`);
- interleaving: every configuration (model, path, batch) is timed once per round, round after
  round (--rounds), after one warm-up each, so load changes on a shared machine hit all of them
  alike; a batch-1 timing is the fastest of 3 calls. Reported: the fastest wall time over the
  rounds, and the fastest thread CPU time (time.thread_time: excludes the time the thread waited
  for a core, not the slowdown from other jobs sharing caches and memory);
- the load average (1 min) is printed before every round and summarised in the file;
- --train adds one training step (forward + backward + Adam, batch 64, train mode; the plain path
  for every model, as training never takes MobileASCNet's fast path).
GPU timings are bench/gpu.py's.
"""
import argparse, os, platform, time
from pathlib import Path
import torch, torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torch.nn.attention import sdpa_kernel, SDPBackend
from asc_nbdev.files import atomic_write
from asc_nbdev.models.zoo import MODELS, create_model, count_params

FRAMES, N_MELS, BATCHES, TRAIN_BS = 500, 64, (1, 16), 64

def batch(bs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(bs, 1, FRAMES, N_MELS, generator=g)
    city = torch.randint(0, 23, (bs,), generator=g)
    t = torch.randn(bs, 8, generator=g)
    y = torch.randint(0, 10, (bs,), generator=g)
    return x, city, t, y

def macs_per_clip(model):
    x, city, t, _ = batch(1)
    model.eval()
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
        model(x, city, t)
    return fc.get_total_flops() / 2

def set_path(model, path):
    "Select MobileASCNet's plain or fast path; no-op for models with one path"
    if path != '-': model.body.fast = path == 'fast'

def timed(fn, calls=1):
    "Fastest of `calls` calls of `fn`: (wall seconds, thread CPU seconds)"
    best = (float('inf'), float('inf'))
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        best = (min(best[0], time.perf_counter() - t0), min(best[1], time.thread_time() - c0))
    return best

def infer_fn(model, path, bs):
    x, city, t, _ = batch(bs)
    def f():
        set_path(model, path)
        with torch.inference_mode(): model(x, city, t)
    return f

def check_paths(model):
    "The fast path's logits equal the plain path's (eval mode): largest absolute difference"
    x, city, t, _ = batch(4)
    with torch.inference_mode():
        set_path(model, 'plain'); a = model(x, city, t)
        set_path(model, 'fast'); b = model(x, city, t)
    return (a - b).abs().max().item()

def train_step_s(model, rounds):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    def step(bs):
        x, city, t, y = batch(bs)
        def f():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, city, t), y).backward()
            opt.step()
        return f
    step(8)()
    s = min(timed(step(TRAIN_BS))[0] for _ in range(rounds))
    model.eval()
    return s

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models', default=','.join(MODELS), help='comma-separated model names')
    ap.add_argument('--rounds', type=int, default=5, help='rounds of interleaved timings (the fastest is reported)')
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    ap.add_argument('--train', action='store_true', help='also time one training step at batch 64 (slow)')
    ap.add_argument('--out', default=str(Path(__file__).with_suffix('.md')), help='markdown file to write')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = a.models.split(',')
    env = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
           f"{torch.get_num_threads()} torch thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(env, flush=True)
    t_all, models, info = time.perf_counter(), {}, {}
    for name in names:
        torch.manual_seed(0)
        m = models[name] = create_model(name).eval()
        info[name] = dict(params=count_params(m), macs=macs_per_clip(m))
        print(f"{name}: {info[name]['params']/1e6:.3f} M params, {info[name]['macs']/1e9:.3f} GMACs/clip", flush=True)
    configs = [(n, p, bs) for n in names for p in (('plain', 'fast') if hasattr(models[n].body, 'fast') else ('-',)) for bs in BATCHES]
    diffs = {n: check_paths(models[n]) for n in names if hasattr(models[n].body, 'fast')}
    for n, d in diffs.items(): print(f"{n}: fast vs plain logits, largest difference {d:.2g}", flush=True)
    for n, p, bs in configs: infer_fn(models[n], p, bs)()           # warm-up
    best, loads = {}, []
    for r in range(a.rounds):
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{a.rounds} (load {loads[-1]:.2f})", flush=True)
        for n, p, bs in configs:
            w, c = timed(infer_fn(models[n], p, bs), 3 if bs == 1 else 1)
            o = best.get((n, p, bs), (float('inf'), float('inf')))
            best[(n, p, bs)] = (min(o[0], w), min(o[1], c))
    loads.append(os.getloadavg()[0])
    train = {n: train_step_s(models[n], 2) for n in names} if a.train else {}
    total = time.perf_counter() - t_all

    hdr = ("| model | path | params (M) | GMAC / clip | b1 ms/clip (wall / CPU) | b1 ms/GMAC (wall / CPU) "
           "| b16 ms/clip (wall / CPU) | b16 ms/GMAC (wall / CPU) | b16 / b1 (CPU) |" + (" train step b64 (s) |" if train else ""))
    lines = [hdr, "|---" * (9 + bool(train)) + "|"]
    for n, p, _ in configs[::len(BATCHES)]:
        g = info[n]['macs'] / 1e9
        (w1, c1), (w16, c16) = (best[(n, p, bs)] for bs in BATCHES)
        w1, c1, w16, c16 = 1000 * w1, 1000 * c1, 1000 * w16 / 16, 1000 * c16 / 16
        line = (f"| {n} | {p} | {info[n]['params']/1e6:.3f} | {g:.3f} | {w1:.1f} / {c1:.1f} | {w1/g:.0f} / {c1/g:.0f} "
                f"| {w16:.1f} / {c16:.1f} | {w16/g:.0f} / {c16/g:.0f} | {c16/c1:.2f} |")
        if train: line += f" {train[n]:.2f} |"
        lines.append(line)
    table = '\n'.join(lines)
    speed = '; '.join(f"{n} at batch {bs}: the fast path takes 1/{best[(n, 'plain', bs)][0] / best[(n, 'fast', bs)][0]:.1f} "
                      f"of the plain path's wall time, 1/{best[(n, 'plain', bs)][1] / best[(n, 'fast', bs)][1]:.1f} of its CPU time"
                      for n in diffs for bs in BATCHES)
    load = f"load average (1 min) {min(loads):.1f} to {max(loads):.1f} over the rounds (per round: {', '.join(f'{l:.1f}' for l in loads)})"
    print('\n' + table + '\n\n' + speed + '\n' + load)
    md = (f"# Model cost (CPU inference)\n\n`python bench/models.py{' --train' if train else ''}` ({time.strftime('%Y-%m-%d')}; {env}; "
          f"{a.rounds} rounds; {total:.0f} s in all).\n\n"
          f"Input: 10 s clips = 500 frames x 64 mel bands, city and time on; default settings, 10 classes; eval mode under "
          f"`torch.inference_mode`. GMAC / clip from `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2) on the plain modules. "
          f"Every configuration timed once per round, rounds interleaved, after one warm-up; reported: the fastest wall time "
          f"(batch 1: fastest of 3 calls per round) and the fastest thread CPU time. `plain` is MobileASCNet's path before "
          f"issue 17 (`model.body.fast = False`), `fast` the default now (BatchNorm folded into the convs, channels-last, fused "
          f"oneDNN conv + bias + residual + ReLU, the batch in cache-sized chunks); the largest logit difference between them "
          f"was {', '.join(f'{d:.1g}' for d in diffs.values()) or 'not measured'}. b16 / b1: batch-16 CPU time per clip over "
          f"batch-1 CPU time per clip.\n\n"
          f"The machine is shared: {load}. With a load above the core count every time here is inflated (up to several "
          f"times an idle machine's), the wall times most; compare rows of one run, not runs.\n\n"
          f"{table}\n\n{speed}.\n")
    with atomic_write(a.out, 'w') as f: f.write(md)
    print(f"\nwrote {a.out} ({total:.0f} s)")

if __name__ == '__main__': main()
