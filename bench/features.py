"""Feature extraction speed: clips per second on the same set of 10 s, 44.1 kHz clips for
(a) the official baseline's way: librosa.load, then librosa's mel spectrogram + power_to_db, one file at a time;
(b) this library on the CPU: `build_feature_cache` (decoding, LogMel in batches, writing the cache);
(c) the same on a GPU, when there is one.
Prints b/a (target: at least 3x on a 2-core CPU) and c/a. Record the figures in bench/features.md.

Usage: python bench/features.py [--clips 24] [--repeats 3]
"""
import argparse, os, platform, shutil, tempfile, time
from pathlib import Path
import numpy as np, soundfile as sf, torch

SR, SECONDS = 44_100, 10.0


def make_clips(folder, n, seed=0):
    "n mono 16-bit 10 s clips of noise (white + brown) and tones, as CAS 2023 files"
    rng = np.random.default_rng(seed); t = np.arange(int(SR*SECONDS))/SR; names = []
    for i in range(n):
        y = 0.05*np.cumsum(rng.standard_normal(len(t)))/np.sqrt(SR) + 0.02*rng.standard_normal(len(t))
        for f in rng.uniform(80, 8000, 3): y += 0.1*np.sin(2*np.pi*f*t)
        names.append(f'clip{i:03d}'); sf.write(folder/f'{names[-1]}.wav', (y/np.abs(y).max()*0.5).astype(np.float32), SR, subtype='PCM_16')
    return names


def baseline(folder, names):
    "The official baseline's extraction: librosa.load + melspectrogram(power=1) + power_to_db per file"
    import librosa
    out = []
    for n in names:
        y, sr = librosa.load(folder/f'{n}.wav', sr=SR)
        S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=882, win_length=1764, window='hann',
                                           center=True, pad_mode='constant', power=1.0, n_mels=64, fmin=50, fmax=22050)
        out.append(librosa.power_to_db(S).T[:len(y)//882])
    return np.stack(out)


_runs = [0]
def ours(folder, names, out, **kw):
    "A fresh cache (a new folder each time, so deleting the last one is not timed)"
    from asc_nbdev.audio.cache import build_feature_cache
    _runs[0] += 1; out = Path(f'{out}{_runs[0]}')
    return build_feature_cache(folder, names, out, clip_seconds=SECONDS, progress=False, verbose=False, **kw)


def cpu_ticks():
    "(busy, idle) jiffies of the whole machine (Linux), to tell how busy other processes kept it"
    try: v = [int(x) for x in open('/proc/stat').readline().split()[1:]]; return sum(v) - v[3] - v[4], v[3] + v[4]
    except (OSError, ValueError, IndexError): return None


def rate(fn, n, repeats):
    "Best-of-`repeats` clips per second of fn()"
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    return n/best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--clips', type=int, default=24); ap.add_argument('--repeats', type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench_features_'))
    try:
        names = make_clips(tmp, args.clips)
        n = len(names)
        print(f'{n} clips of {SECONDS:g} s at {SR} Hz (mono, 16-bit); {os.cpu_count()} CPU cores, '
              f'torch {torch.__version__} ({torch.get_num_threads()} threads), {platform.processor() or platform.machine()}')
        baseline(tmp, names[:1]); ours(tmp, names[:2], tmp/'warm')          # warm-up: imports, first-call caches
        # interleave the runs (the machine may be shared), best of `repeats` for each. The baseline runs twice: as
        # is (NumPy's BLAS threads for librosa's mel product) and with BLAS on one thread (faster on a busy machine);
        # (a) is the faster of the two, so the ratios are conservative
        from threadpoolctl import threadpool_limits
        def baseline_1t():
            with threadpool_limits(1): baseline(tmp, names)
        configs = {'baseline': lambda: baseline(tmp, names), 'baseline, 1 BLAS thread': baseline_1t}
        for w in (0, 1, 2, 3): configs[w] = lambda w=w: ours(tmp, names, tmp/'out', device='cpu', batch_size=16, workers=w)
        best, cpu = {k: float('inf') for k in configs}, {k: float('inf') for k in configs}
        ticks0, own0 = cpu_ticks(), time.process_time()
        for _ in range(args.repeats):
            for k, fn in configs.items():
                t0, c0 = time.perf_counter(), time.process_time(); fn()
                best[k] = min(best[k], time.perf_counter() - t0); cpu[k] = min(cpu[k], time.process_time() - c0)
        ticks1, own = cpu_ticks(), time.process_time() - own0
        if ticks0 and ticks1:   # the machine's busy CPU-seconds (USER_HZ = 100) minus this process's own
            busy, idle = (ticks1[0] - ticks0[0])/100, (ticks1[1] - ticks0[1])/100
            print(f'    during the runs other processes used {max(0.0, busy - own)/(busy + idle)*(os.cpu_count() or 1):.1f} '
                  f'of the {os.cpu_count()} cores on average')
        res = {k: n/v for k, v in best.items()}
        ms = {k: 1000*v/n for k, v in cpu.items()}   # CPU time per clip, all threads: independent of other load
        base = {k: res.pop(k) for k in ('baseline', 'baseline, 1 BLAS thread')}
        a = max(base.values())
        print(f'{"":52}  wall clips/s     CPU ms/clip')
        for k, r in base.items(): print(f'    {k:<48}: {r:7.1f} clips/s   {ms[k]:6.2f}')
        print(f'(a) baseline (librosa.load + librosa mel, per file)  : {a:7.1f} clips/s')
        for w, r in res.items():
            print(f'    {f"library CPU, {w} workers" + (" (default)" if w == 0 else ""):<48}: {r:7.1f} clips/s   {ms[w]:6.2f}   {r/a:.1f}x')
        wb, b = max(res.items(), key=lambda kv: kv[1])
        ref = baseline(tmp, names[:3])
        c = ours(tmp, names, tmp/'out', device='cpu', batch_size=16)
        err = np.abs(c.features[:3].astype(np.float32) - ref).max()
        print(f'(b) library CPU (build_feature_cache, {wb} workers)    : {b:7.1f} clips/s   b/a = {b/a:.1f}x   '
              f'(default 0 workers: {res[0]/a:.1f}x; against the baseline as is: {b/base["baseline"]:.1f}x)')
        print(f'    max |library cache (float16) - baseline| over 3 clips: {err:.3f} dB')
        if torch.cuda.is_available():
            ours(tmp, names[:2], tmp/'warm', device='cuda')
            g = {bs: rate(lambda: ours(tmp, names, tmp/'out', device='cuda', batch_size=bs, workers=4), n, args.repeats) for bs in (16, 32)}
            bs, cg = max(g.items(), key=lambda kv: kv[1])
            print(f'(c) library GPU ({torch.cuda.get_device_name()}, batch {bs}, 4 workers): {cg:7.1f} clips/s   c/a = {cg/a:.1f}x')
            x = torch.randn(64, int(SR*SECONDS), device='cuda')
            from asc_nbdev.audio.logmel import LogMel
            m = LogMel().cuda()
            with torch.inference_mode():
                m(x); torch.cuda.synchronize(); t0 = time.perf_counter()
                for _ in range(5): m(x)
                torch.cuda.synchronize()
            print(f'    LogMel alone on the GPU (batch 64, no decoding)  : {5*64/(time.perf_counter()-t0):7.1f} clips/s')
        else: print('(c) library GPU: skipped (no CUDA GPU on this machine)')
        from asc_nbdev.audio.logmel import LogMel
        x, m = torch.randn(16, int(SR*SECONDS)), LogMel()
        for th in (1, 2):
            torch.set_num_threads(th)
            with torch.inference_mode():
                m(x); t0 = time.perf_counter(); m(x); m(x)
            print(f'    LogMel alone on the CPU (batch 16, no decoding, {th} torch threads): {32/(time.perf_counter()-t0):7.1f} clips/s')
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__': main()
