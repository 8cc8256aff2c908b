"""Cost of each model of the zoo: parameters, multiply-accumulates per 10 s clip, inference and training-step time.

Usage: python bench/models.py [--models se_trans,fcnn] [--budget 8] [--out bench/models.md]

- parameters: default settings, 10 classes, metadata on;
- MACs per clip: torch's own FLOP counter (torch.utils.flop_counter.FlopCounterMode) on one
  500-frame x 64-mel clip, MACs = FLOPs / 2. It runs with gradients enabled (so the Transformer's
  fused inference path, which the counter cannot see, is not taken) and with the "math"
  attention backend (so the attention matmuls are counted too);
- inference: eval mode under torch.inference_mode, time per clip at batch 1 and at batch 64
  (batch time / 64);
- training step: one forward + backward + Adam step on a batch of 64 clips (500 x 64), train mode;
- every timing: one warm-up run (at batch 8 for the batch-64 timings: the heavy models take
  minutes per training step on a 2-core CPU), then timed runs until --budget seconds are used
  (at least 1, at most 5); the fastest run is reported (the machine is shared, so the minimum is
  the least disturbed figure);
- GPU: the same timings on CUDA when a GPU is present, otherwise reported as skipped.
"""
import argparse, os, platform, time
from pathlib import Path
import torch, torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torch.nn.attention import sdpa_kernel, SDPBackend
from asc_nbdev.core import atomic_write
from asc_nbdev.models.zoo import MODELS, create_model, count_params

FRAMES, N_MELS, BIG = 500, 64, 64

def batch(bs, device='cpu'):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(bs, 1, FRAMES, N_MELS, generator=g)
    city = torch.randint(0, 23, (bs,), generator=g)
    t = torch.randn(bs, 8, generator=g)
    y = torch.randint(0, 10, (bs,), generator=g)
    return [v.to(device) for v in (x, city, t, y)]

def macs_per_clip(model):
    x, city, t, _ = batch(1)
    model.eval()
    with sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
        model(x, city, t)
    return fc.get_total_flops() / 2

def timeit(fn, warm, budget, sync=lambda: None, max_reps=5):
    "Fastest of the timed runs of `fn` (seconds) after one run of `warm`; runs until `budget` seconds are used (1 to `max_reps`)"
    warm(); sync()
    ts = []
    while not ts or (sum(ts) < budget and len(ts) < max_reps):
        t0 = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t0)
    return min(ts), len(ts)

def bench_device(model, device, budget, warm_bs=8):
    sync = (lambda: torch.cuda.synchronize()) if device == 'cuda' else (lambda: None)
    model = model.to(device)
    res = {}
    def infer_fn(bs):
        x, city, t, _ = batch(bs, device)
        def f():
            with torch.inference_mode(): model(x, city, t)
        return f
    model.eval()
    for bs in (1, BIG):
        s, n = timeit(infer_fn(bs), infer_fn(min(bs, warm_bs)), budget, sync)
        res[f'infer_b{bs}_ms'] = 1000 * s / bs; res[f'infer_b{bs}_reps'] = n
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    def step_fn(bs):
        x, city, t, y = batch(bs, device)
        def f():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, city, t), y).backward()
            opt.step()
        return f
    s, n = timeit(step_fn(BIG), step_fn(warm_bs), budget, sync)
    res['train_b64_s'], res['train_reps'] = s, n
    model.to('cpu')
    return res

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--models', default=','.join(MODELS), help='comma-separated model names')
    ap.add_argument('--budget', type=float, default=8., help='seconds of repetitions per timing (after warm-up)')
    ap.add_argument('--out', default=str(Path(__file__).with_suffix('.md')), help='markdown file to write')
    a = ap.parse_args()
    names = a.models.split(',')
    gpu = torch.cuda.is_available()
    env = (f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
           f"{torch.get_num_threads()} CPU threads" + (f", GPU {torch.cuda.get_device_name(0)}" if gpu else ", no GPU"))
    print(env, flush=True)
    rows, t_all, load0 = [], time.perf_counter(), os.getloadavg()[0]
    for name in names:
        torch.manual_seed(0)
        m = create_model(name)
        r = dict(model=name, params=count_params(m), macs=macs_per_clip(m))
        print(f"{name}: {r['params']/1e6:.3f} M params, {r['macs']/1e9:.3f} GMACs/clip", flush=True)
        r.update({f'cpu_{k}': v for k, v in bench_device(m, 'cpu', a.budget).items()})
        print(f"  CPU: infer {r['cpu_infer_b1_ms']:.1f} ms/clip (b1), {r['cpu_infer_b64_ms']:.1f} ms/clip (b64); "
              f"train step b64 {r['cpu_train_b64_s']:.2f} s", flush=True)
        if gpu:
            r.update({f'gpu_{k}': v for k, v in bench_device(m, 'cuda', a.budget).items()})
            print(f"  GPU: infer {r['gpu_infer_b1_ms']:.2f} ms/clip (b1), {r['gpu_infer_b64_ms']:.3f} ms/clip (b64); "
                  f"train step b64 {r['gpu_train_b64_s']*1000:.1f} ms", flush=True)
        rows.append(r)
    if not gpu: print("GPU: skipped (torch.cuda.is_available() is False on this machine)")
    total = time.perf_counter() - t_all
    load = f"load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"

    hdr = ("| model | params (M) | MACs / 10 s clip (G) | CPU inference, batch 1 (ms/clip) | CPU inference, batch 64 (ms/clip) "
           "| CPU train step, batch 64 (s) |" + (" GPU inference, batch 1 (ms/clip) | GPU inference, batch 64 (ms/clip) | GPU train step, batch 64 (ms) |" if gpu else ""))
    sep = "|---" * (6 + (3 if gpu else 0)) + "|"
    lines = [hdr, sep]
    for r in rows:
        line = (f"| {r['model']} | {r['params']/1e6:.3f} | {r['macs']/1e9:.3f} | {r['cpu_infer_b1_ms']:.1f} "
                f"| {r['cpu_infer_b64_ms']:.1f} | {r['cpu_train_b64_s']:.2f} |")
        if gpu: line += f" {r['gpu_infer_b1_ms']:.2f} | {r['gpu_infer_b64_ms']:.3f} | {r['gpu_train_b64_s']*1000:.1f} |"
        lines.append(line)
    table = '\n'.join(lines)
    reps = ', '.join(f"{r['model']} {r['cpu_infer_b1_reps']}/{r['cpu_infer_b64_reps']}/{r['cpu_train_reps']}" for r in rows)
    print('\n' + table)
    md = (f"# Model cost\n\n`python bench/models.py` ({time.strftime('%Y-%m-%d')}; {env}; {total:.0f} s in all).\n\n"
          f"Input: one 10 s clip = 500 frames x 64 mel bands, city and time on; default settings, 10 classes. "
          f"MACs from `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2). Times: fastest timed run after one warm-up "
          f"(at batch 8 for the batch-64 timings); timed runs (inference b1/b64/train): {reps}. "
          f"Training step: forward + backward + Adam on 64 clips. CPU times on a shared 2-core machine are "
          f"rough: other jobs ran at the same time ({load}); with a load above the core count, times can be "
          f"several times those of an idle machine. The MACs column does not depend on the load.\n\n"
          f"{table}\n\n" + ("" if gpu else "GPU: skipped, no CUDA device on the machine that ran this.\n"))
    with atomic_write(a.out, 'w') as f: f.write(md)
    print(f"\nwrote {a.out} ({total:.0f} s)")

if __name__ == '__main__': main()
