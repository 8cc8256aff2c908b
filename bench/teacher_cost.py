"""CPU cost of each teacher adapter, with random weights in its official format (BEATs: the iter3+ settings).

Usage: python bench/teacher_cost.py [--adapters panns_cnn14,beats] [--threads 2] [--rounds 2] [--out FILE.md]

- parameters of the loaded module (the unused tagging heads included, as they are in the checkpoints), and the size
  of the checkpoint file `random_*_checkpoint` writes (float32, like the official files);
- 10 s clips per second at the teacher's own rate, eval mode under torch.inference_mode, --threads torch threads,
  batch 1 and batch 8, after one warm-up call of each; every round times each batch size once (batch 1: the fastest
  of 2 calls), round after round; reported: the fastest wall time over the rounds as clips/s, and the process CPU time
  per clip of that call;
- beside each figure, the 1-minute load average (os.getloadavg) just before it was measured: on a shared machine
  wall times are only comparable at the same load.
PaSST needs the optional package hear21passt (`pip install -e ".[passt]"`); without it its row says so.
"""
import argparse, importlib.util, os, platform, sys, tempfile, time
from pathlib import Path
import torch
from asc_nbdev.teachers.core import load_teacher, TEACHERS
from asc_nbdev.teachers.panns import random_cnn14_checkpoint
from asc_nbdev.teachers.efficientat import random_mn10_checkpoint
from asc_nbdev.teachers.beats import random_beats_checkpoint

WRITERS = {'panns_cnn14': random_cnn14_checkpoint, 'efficientat_mn10': random_mn10_checkpoint,
           'beats': random_beats_checkpoint, 'passt': None}
BATCHES, SECONDS = (1, 8), 10

def writer(name):
    if name != 'passt': return WRITERS[name]
    if importlib.util.find_spec('hear21passt') is None: return None
    from asc_nbdev.teachers.passt import random_passt_checkpoint
    return random_passt_checkpoint

def timed(fn):
    "(wall seconds, process CPU seconds) of one call"
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0

def measure(name, tmp, rounds):
    write = writer(name)
    if write is None: return dict(name=name, skipped='hear21passt is not installed (the optional extra passt)')
    ck = write(Path(tmp)/TEACHERS[name]['file'])
    t = load_teacher(f'{name}={ck}')
    g = torch.Generator().manual_seed(0)
    xs = {bs: torch.randn(bs, SECONDS * t.sample_rate, generator=g) * 0.1 for bs in BATCHES}
    run = lambda bs: t.module(xs[bs])
    best = {}
    with torch.inference_mode():
        for bs in BATCHES: run(bs)   # warm-up
        for r in range(rounds):
            for bs in BATCHES:
                load = os.getloadavg()[0]
                wall, cpu = min((timed(lambda: run(bs)) for _ in range(2 if bs == 1 else 1)), key=lambda w: w[0])
                print(f"{name:17s} round {r + 1} batch {bs}: {bs / wall:6.2f} clips/s, {cpu / bs:6.2f} CPU s/clip "
                      f"(load {load:.2f})", flush=True)
                if bs not in best or wall < best[bs][0]: best[bs] = (wall, cpu, load)
    size = ck.stat().st_size / 1e6
    ck.unlink()
    return dict(name=name, params=t.params, dim=t.dim, sr=t.sample_rate, mb=size, best=best)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--adapters', default=','.join(TEACHERS), help='comma-separated names of TEACHERS')
    p.add_argument('--threads', type=int, default=2, help='torch threads')
    p.add_argument('--rounds', type=int, default=2, help='timed rounds after the warm-up')
    p.add_argument('--out', help='write the results as markdown here')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names = [n.strip() for n in a.adapters.split(',') if n.strip()]
    unknown = [n for n in names if n not in TEACHERS]
    if unknown: p.error(f'unknown adapters {unknown}; the adapters are {list(TEACHERS)}')
    t0, rows = time.time(), []
    with tempfile.TemporaryDirectory(prefix='teacher-cost-') as tmp:
        for n in names: rows.append(measure(n, tmp, a.rounds))
    if a.out: write_md(a, rows, time.time() - t0)

def write_md(a, rows, secs):
    cmd = ' '.join(['python', 'bench/teacher_cost.py'] + sys.argv[1:])
    lines = ['# Teacher adapters: size and CPU speed', '',
             'Written by `bench/teacher_cost.py` (see its docstring for the method): random weights in each official '
             'format (BEATs with the iter3+ settings), 10 s clips at the teacher\'s rate, eval mode, '
             f'{a.threads} torch threads, the fastest of {a.rounds} rounds after a warm-up; the 1-minute load average '
             'beside each figure.', '',
             f'Command: `{cmd}`; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, '
             f'torch {torch.__version__}; {secs:.0f} s.', '',
             '| teacher | rate | dim | parameters | checkpoint MB | batch 1: clips/s | CPU s/clip | load | '
             'batch 8: clips/s | CPU s/clip | load |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        if 'skipped' in r: lines.append(f"| {r['name']} | | | | | {r['skipped']} | | | | | |"); continue
        cells = ' | '.join(f"{bs / w:.2f} | {c / bs:.2f} | {l:.2f}" for bs, (w, c, l) in sorted(r['best'].items()))
        lines.append(f"| {r['name']} | {r['sr'] // 1000} kHz | {r['dim']} | {r['params'] / 1e6:.1f} M | "
                     f"{r['mb']:.0f} | {cells} |")
    loads = [l for r in rows if 'best' in r for _, _, l in r['best'].values()]
    if loads and max(loads) > os.cpu_count():
        lines += ['', f'Measured under load: the 1-minute load average reached {max(loads):.1f} on '
                  f'{os.cpu_count()} CPUs (other jobs shared the machine), so the wall-clock figures are pessimistic '
                  'and the CPU seconds per clip somewhat too; rerun on an idle machine for the figures to quote.']
    Path(a.out).write_text('\n'.join(lines) + '\n')
    print('wrote', a.out)

if __name__ == '__main__': main()
