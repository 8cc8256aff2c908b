"Audio loading, log-mel parity with the librosa specification, the feature cache (reuse, resume, bad audio) and asc-features"
import json, os, shutil, signal, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf, torch
from asc_nbdev.audio.io import AudioError, load_audio, median_duration
from asc_nbdev.audio.logmel import logmel_librosa, assert_logmel_close, LogMel
from asc_nbdev.audio.cache import build_feature_cache, load_feature_cache, FeatureCache
from asc_nbdev.cli import asc_features
from asc_nbdev.files import LOCK_FILE

SR = 44_100
REAL_WAV = Path(__file__).parent/'data'/'acoustic_scene.wav'   # a real recording (dcase_util, MIT; see data/SOURCE.md)
CACHE_FILES = ['features.npy', 'index.csv', 'skipped.csv', 'manifest.json']


def clip(seconds=0.5, sr=SR, seed=0, channels=1, gain=0.5):
    "Noise (white + brown) plus three tones, peak `gain`, shape (samples, channels)"
    rng = np.random.default_rng(seed); t = np.arange(int(round(seconds*sr)))/sr
    y = 0.05*np.cumsum(rng.standard_normal((len(t), channels)), 0)/np.sqrt(sr) + 0.02*rng.standard_normal((len(t), channels))
    for f in rng.uniform(80, 8000, 3): y += 0.1*np.sin(2*np.pi*f*t)[:, None]
    return (y/np.abs(y).max()*gain).astype(np.float32)

def write(path, seconds=0.5, sr=SR, seed=0, channels=1, subtype='PCM_16'):
    sf.write(path, clip(seconds, sr, seed, channels), sr, subtype=subtype); return path

def make_bad(d):
    "One file of each kind of bad audio; returns {name: kind}"
    (d/'empty.wav').write_bytes(b'')
    sf.write(d/'noframes.wav', np.zeros(0, np.float32), SR)
    (d/'junk.wav').write_bytes(os.urandom(3000))
    (d/'text.wav').write_text('filename,location\nnot,audio\n')
    sf.write(d/'nan.wav', np.where(np.arange(SR//10) == 5, np.nan, 0.1).astype(np.float32), SR, subtype='FLOAT')
    sf.write(d/'inf.wav', np.where(np.arange(SR//10) == 5, np.inf, 0.1).astype(np.float32), SR, subtype='FLOAT')
    sf.write(d/'silent.wav', np.zeros((SR//2, 2), np.int16), SR, subtype='PCM_16')
    return {'missing': 'missing', 'empty': 'empty', 'noframes': 'empty', 'junk': 'unreadable', 'text': 'unreadable',
            'nan': 'nonfinite', 'inf': 'nonfinite', 'silent': 'silent'}

@pytest.fixture
def folder(tmp_path):
    "Eight 0.5 s clips (stereo/mono, 16/24-bit/float, 44.1/22.05/48 kHz), one short (0.4 s) and one long (0.6 s)"
    d = tmp_path/'audio'; d.mkdir()
    specs = [(0.5, SR, 2, 'PCM_16'), (0.5, SR, 1, 'PCM_24'), (0.5, 22_050, 2, 'PCM_16'), (0.5, SR, 1, 'FLOAT'),
             (0.4, SR, 1, 'PCM_16'), (0.6, 48_000, 1, 'PCM_16'), (0.5, SR, 1, 'PCM_16'), (0.5, SR, 2, 'PCM_24')]
    names = [f'clip{i}' for i in range(len(specs))]
    for i, (n, (s, sr, ch, st)) in enumerate(zip(names, specs)): write(d/f'{n}.wav', s, sr, i, ch, st)
    return d, names

def stat_ns(out): return {f: (out/f).stat().st_mtime_ns for f in CACHE_FILES}


# ---------------------------------------------------------------- parity with the librosa specification
def test_parity_real_recording():
    import librosa
    y, info = load_audio(REAL_WAV)
    assert (info.channels, info.sr_in, info.subtype) == (2, SR, 'PCM_16')
    y_lr, _ = librosa.load(REAL_WAV, sr=SR)                 # the baseline's loader gives the same samples
    np.testing.assert_allclose(y, y_lr, atol=1e-7)
    ref = logmel_librosa(y_lr)
    with torch.inference_mode(): ours = LogMel()(torch.from_numpy(y)).numpy()
    assert ref.shape == ours.shape == (500, 64)
    assert_logmel_close(ours, ref)
    y10, info10 = load_audio(REAL_WAV, duration=10)          # 441,001 samples: cropped by one, still 500 frames
    assert info10.cropped and not info10.padded and len(y10) == 441_000
    with torch.inference_mode(): assert LogMel()(torch.from_numpy(y10)[None]).shape == (1, 500, 64)

@pytest.mark.parametrize('seconds,gain,seed', [(10.0, 0.5, 1), (1.0, 1e-3, 2), (2.37, 1.0, 3), (0.3, 4.0, 4)])
def test_parity_synthetic(seconds, gain, seed):
    y = clip(seconds, seed=seed, gain=gain)[:, 0]
    ref = logmel_librosa(y)
    with torch.inference_mode(): ours = LogMel()(torch.from_numpy(y)).numpy()
    assert ours.shape == ref.shape == (len(y)//882, 64)
    assert_logmel_close(ours, ref)

def test_logmel_batch_is_per_clip():
    "Each clip in a batch gets exactly its result alone, with its own top_db floor"
    x = torch.from_numpy(np.stack([clip(1.0, seed=s, gain=g)[:, 0] for s, g in [(0, 1.0), (1, 1e-4), (2, 0.3)]]))
    m = LogMel()
    with torch.inference_mode():
        b = m(x); singles = torch.stack([m(xi) for xi in x])
    assert b.shape == (3, 50, 64) and torch.equal(b, singles)
    assert ((b.amax(dim=(1, 2)) - b.amin(dim=(1, 2))) <= 80 + 1e-4).all()
    with pytest.raises(ValueError, match='expects a waveform'): m(x[None])

def test_logmel_under_autocast_and_params():
    m = LogMel(); x = torch.from_numpy(clip(0.5)[:, 0])
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16): y = m(x)
    assert y.dtype == torch.float32
    with torch.inference_mode(): torch.testing.assert_close(y, m(x))
    p = m.params
    assert (p['n_fft'], p['win_length'], p['hop_length'], p['n_mels'], p['fmin'], p['fmax'], p['top_db']) == (2048, 1764, 882, 64, 50.0, 22050.0, 80.0)
    assert m.n_frames(441_000) == 500 and LogMel(crop=False).n_frames(441_000) == 501


# ---------------------------------------------------------------- loading audio
def test_load_variants(tmp_path):
    import librosa
    p = write(tmp_path/'st22.wav', 1.0, 22_050, 0, 2, 'PCM_16')
    y, info = load_audio(p)
    assert (info.sr_in, info.channels, info.resampled, len(y), y.dtype) == (22_050, 2, True, SR, np.float32)
    np.testing.assert_allclose(y, librosa.load(p, sr=SR)[0], atol=1e-5)    # same soxr HQ resampler as librosa.load
    p = write(tmp_path/'m24.wav', 0.5, SR, 1, 1, 'PCM_24')
    y, info = load_audio(p)
    assert info.subtype == 'PCM_24' and not info.resampled
    np.testing.assert_allclose(y, clip(0.5, seed=1)[:, 0], atol=2**-22)
    p = write(tmp_path/'f.wav', 0.5, SR, 2, 1, 'FLOAT')
    np.testing.assert_array_equal(load_audio(p)[0], clip(0.5, seed=2)[:, 0])
    p = write(tmp_path/'quad.wav', 0.5, SR, 3, 4, 'FLOAT')                  # any channel count: the mean
    np.testing.assert_allclose(load_audio(p)[0], clip(0.5, seed=3, channels=4).mean(1), atol=1e-7)
    y, info = load_audio(p, sr=None)
    assert len(y) == SR//2 and not info.resampled
    y, info = load_audio(p, duration=0.6)
    assert (info.padded, info.cropped, len(y)) == (True, False, int(0.6*SR)) and not y[SR//2:].any()
    y, info = load_audio(p, duration=0.25)
    assert (info.padded, info.cropped, len(y)) == (False, True, SR//4)
    y, info = load_audio(p, duration=0.5)
    assert (info.padded, info.cropped) == (False, False)

@pytest.mark.parametrize('subtype,channels', [('PCM_16', 1), ('PCM_16', 2), ('PCM_24', 1), ('PCM_24', 2), ('PCM_32', 1),
                                              ('PCM_32', 2), ('PCM_U8', 1), ('FLOAT', 2), ('DOUBLE', 1)])
def test_load_matches_soundfile(tmp_path, subtype, channels):
    "The integer fast path gives exactly soundfile's float32 samples (mixed as librosa.to_mono does)"
    p = write(tmp_path/'x.wav', 0.3, SR, 4, channels, subtype)
    ref = sf.read(p, dtype='float32', always_2d=True)[0].mean(axis=1)
    y, info = load_audio(p)
    assert y.dtype == np.float32 and y.flags.c_contiguous and (info.channels, info.subtype) == (channels, subtype)
    np.testing.assert_array_equal(y, ref)
    buf = np.full(int(0.5*SR), np.nan, np.float32)
    y, info = load_audio(p, duration=0.5, out=buf)
    assert y is buf and info.padded and not info.cropped
    np.testing.assert_array_equal(buf[:len(ref)], ref); assert not buf[len(ref):].any()
    y, info = load_audio(p, duration=0.2)
    assert info.cropped and not info.padded
    np.testing.assert_array_equal(y, ref[:int(0.2*SR)])
    with pytest.raises(ValueError, match='out'): load_audio(p, duration=0.5, out=np.zeros(10, np.float32))

def test_logmel_fast_path_matches_autograd_path():
    "Without autograd the CPU path reuses buffers; with it, plain differentiable ops: the same numbers"
    x = torch.from_numpy(np.stack([clip(1.3, seed=s)[:, 0] for s in range(3)]))
    m = LogMel()
    with torch.inference_mode(): fast = m(x)
    xg = x.clone().requires_grad_()
    slow = m(xg)
    slow.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-4)

def test_bad_audio_raises(tmp_path):
    kinds = make_bad(tmp_path)
    for name, kind in kinds.items():
        with pytest.raises(AudioError) as e: load_audio(tmp_path/f'{name}.wav')
        assert e.value.kind == kind and f'{name}.wav' in str(e.value), (name, str(e.value))
        assert isinstance(e.value, ValueError)
    with pytest.raises(AudioError, match='NaN/inf'): load_audio(tmp_path/'inf.wav')
    with pytest.raises(AudioError, match='all silence'): load_audio(tmp_path/'silent.wav')
    with pytest.raises(AudioError, match='missing'): load_audio(tmp_path/'missing.wav')
    with pytest.raises(AudioError, match='zero-length'): load_audio(tmp_path/'empty.wav')


# ---------------------------------------------------------------- the feature cache
def test_cache_build_and_api(folder, tmp_path, capsys):
    d, names = folder
    c = build_feature_cache(d, names, tmp_path/'fc', batch_size=3, progress=False)
    assert isinstance(c, FeatureCache) and c.params['clip_seconds'] == 0.5          # the median duration
    assert (len(c), c.n_frames, c.n_mels, c.dtype) == (8, 25, 64, np.float16)
    assert (c.report['padded'], c.report['cropped'], c.report['computed'], c.report['skipped']) == (1, 1, 8, 0)
    assert 'padded 1, cropped 1' in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path/'fc').iterdir()) == sorted(CACHE_FILES + [LOCK_FILE])   # its lock stays, released
    arr = np.load(tmp_path/'fc'/'features.npy', mmap_mode='r')
    assert isinstance(arr, np.memmap) and arr.shape == (8, 25, 64) and not c.features.flags.writeable
    assert list(c.index.index) == names and list(c.index) == list(range(8))
    np.testing.assert_array_equal(c.rows(['clip3', 'clip0']), [3, 0])
    with pytest.raises(KeyError) as e: c.rows(names + [f'x{i}' for i in range(7)])
    assert '7 of 15' in str(e.value) and 'x0' in str(e.value) and 'x4' in str(e.value) and 'x5' not in str(e.value)
    # each row is the LogMel of load_audio(duration=clip_seconds): resampled, mixed, padded or cropped
    # (float16 rows: steps of 1/32 dB; clip2 was 22.05 kHz: its bands above 11 kHz hold only rounding, and are not compared)
    for n in ['clip2', 'clip4', 'clip5']:
        y, _ = load_audio(d/f'{n}.wav', duration=0.5)
        assert_logmel_close(c[n], logmel_librosa(y), atol=0.07, what=n)
    m = json.loads((tmp_path/'fc'/'manifest.json').read_text())
    assert m['params']['dtype'] == 'float16' and m['params']['n_fft'] == 2048 and m['files']['clip0'][0] == (d/'clip0.wav').stat().st_size
    assert m['padded'] == ['clip4'] and m['cropped'] == ['clip5']
    c32 = build_feature_cache(d, names, tmp_path/'fc32', dtype='float32', clip_seconds=0.5, progress=False, verbose=False)
    assert c32.dtype == np.float32
    np.testing.assert_allclose(c32.features, c.features.astype(np.float32), atol=0.07)
    assert repr(load_feature_cache(tmp_path/'fc')).startswith('FeatureCache(')

def test_cache_reuse_and_changes(folder, tmp_path):
    d, names = folder; out = tmp_path/'fc'
    kw = dict(batch_size=4, progress=False, verbose=False)
    c1 = build_feature_cache(d, names, out, **kw); before = stat_ns(out); f1 = np.array(c1.features)
    c2 = build_feature_cache(d, names, out, **kw)                      # unchanged: nothing recomputed or rewritten
    assert c2.report['up_to_date'] and c2.report['computed'] == 0 and stat_ns(out) == before
    write(d/'clip6.wav', 0.5, SR, 99)                                  # one file changed: only it is recomputed
    c3 = build_feature_cache(d, names, out, **kw)
    assert (c3.report['computed'], c3.report['reused']) == (1, 7)
    changed = np.abs(np.array(c3.features, np.float32) - f1).reshape(8, -1).max(1) > 0
    assert list(np.flatnonzero(changed)) == [6]
    write(d/'extra.wav', 0.5, SR, 7)                                   # a file added: only it is computed
    c4 = build_feature_cache(d, names + ['extra'], out, **kw)
    assert (c4.report['computed'], c4.report['reused'], len(c4)) == (1, 8, 9)
    c5 = build_feature_cache(d, names[::-1][:5], out, **kw)            # subset, reordered: copied, nothing computed
    assert (c5.report['computed'], len(c5)) == (0, 5)
    np.testing.assert_array_equal(c5[names[-1]], c4[names[-1]])
    c6 = build_feature_cache(d, names, out, dtype='float32', **kw)    # parameters changed: everything computed
    assert (c6.report['computed'], c6.report['reused'], c6.dtype) == (8, 0, np.float32)
    c7 = build_feature_cache(d, names, out, dtype='float32', clip_seconds=0.3, **kw)
    assert (c7.report['computed'], c7.n_frames, c7.report['cropped']) == (8, 15, 8)

def test_cache_workers_same_bytes(folder, tmp_path):
    d, names = folder
    build_feature_cache(d, names, tmp_path/'w0', batch_size=3, progress=False, verbose=False)
    build_feature_cache(d, names, tmp_path/'w2', batch_size=5, workers=2, progress=False, verbose=False)
    for f in CACHE_FILES: assert (tmp_path/'w0'/f).read_bytes() == (tmp_path/'w2'/f).read_bytes(), f

class Killed(Exception): pass

def test_cache_decoders_same_bytes(folder, tmp_path):
    "Decoding in worker processes (`decoders`): the same cache files; bad files raised and skipped as with threads"
    d, names = folder
    build_feature_cache(d, names, tmp_path/'w0', batch_size=3, progress=False, verbose=False)
    for dec, w in [(1, 0), (2, 2)]:
        build_feature_cache(d, names, tmp_path/f'd{dec}', batch_size=3, decoders=dec, workers=w, progress=False, verbose=False)
        for f in CACHE_FILES: assert (tmp_path/'w0'/f).read_bytes() == (tmp_path/f'd{dec}'/f).read_bytes(), (dec, f)
    kinds = make_bad(d)
    allnames = names[:2] + list(kinds) + names[2:]
    with pytest.raises(AudioError, match=f'{list(kinds)[0]}.wav'):
        build_feature_cache(d, allnames, tmp_path/'r', batch_size=3, clip_seconds=0.5, decoders=2, progress=False, verbose=False)
    a = build_feature_cache(d, allnames, tmp_path/'skip0', batch_size=3, clip_seconds=0.5, on_error='skip', progress=False, verbose=False)
    b = build_feature_cache(d, allnames, tmp_path/'skip2', batch_size=3, clip_seconds=0.5, on_error='skip', decoders=2, progress=False, verbose=False)
    assert a.report['skipped'] == b.report['skipped'] == len(kinds)
    for f in CACHE_FILES: assert (tmp_path/'skip0'/f).read_bytes() == (tmp_path/'skip2'/f).read_bytes(), f

def test_cache_decoders_resume(folder, tmp_path):
    "Interrupted while processes decode ahead: the re-run resumes the logged batches and gives the same bytes"
    d, names = folder
    kw = dict(batch_size=2, clip_seconds=0.5, progress=False, verbose=False, decoders=2)
    straight = build_feature_cache(d, names, tmp_path/'straight', **kw)
    def kill(b, n):
        if b == 2: raise Killed()
    with pytest.raises(Killed): build_feature_cache(d, names, tmp_path/'resumed', after_batch=kill, **kw)
    r = build_feature_cache(d, names, tmp_path/'resumed', **kw)
    assert (r.report['resumed'], r.report['computed']) == (4, 4)
    for f in CACHE_FILES: assert (tmp_path/'resumed'/f).read_bytes() == (tmp_path/'straight'/f).read_bytes(), f

def test_cache_bad_audio_raise_and_skip(folder, tmp_path, capsys):
    d, names = folder
    kinds = make_bad(d)
    for bad in kinds:   # raise: the run stops with an error naming the file
        with pytest.raises(AudioError, match=f'{bad}.wav'):
            build_feature_cache(d, names[:3] + [bad] + names[3:], tmp_path/f'r_{bad}', clip_seconds=0.5, progress=False, verbose=False)
        assert not (tmp_path/f'r_{bad}'/'manifest.json').exists()
    capsys.readouterr()
    allnames = names[:2] + list(kinds) + names[2:]
    c = build_feature_cache(d, allnames, tmp_path/'skip', batch_size=3, on_error='skip', progress=False)
    printed = capsys.readouterr().out
    assert len(c) == len(names) and c.report['skipped'] == len(kinds) and list(c.index.index) == names
    sk = pd.read_csv(tmp_path/'skip'/'skipped.csv', keep_default_na=False)
    assert list(sk.columns) == ['filename', 'problem'] and sorted(sk['filename']) == sorted(kinds)
    assert sorted(c.skipped['filename']) == sorted(kinds)
    for bad in kinds: assert f'  {bad}: ' in printed
    assert f'skipped {len(kinds)} file(s)' in printed
    with pytest.raises(KeyError, match=r'nan \(skipped: .*NaN'): c.rows(['nan'])
    # a re-run keeps the verdicts on the unchanged bad files without recomputing anything
    c2 = build_feature_cache(d, allnames, tmp_path/'skip', batch_size=3, on_error='skip', progress=False, verbose=False)
    assert c2.report['up_to_date'] and c2.report['skipped'] == len(kinds)
    # fixing a bad file brings it in, computed alone
    write(d/'junk.wav', 0.5, SR, 5)
    c3 = build_feature_cache(d, allnames, tmp_path/'skip', batch_size=3, on_error='skip', progress=False, verbose=False)
    assert (c3.report['computed'], c3.report['skipped'], len(c3)) == (1, len(kinds) - 1, len(names) + 1)
    # every file bad: an empty cache, everything listed
    e = build_feature_cache(d, ['nan', 'silent'], tmp_path/'allbad', clip_seconds=0.5, on_error='skip', progress=False, verbose=False)
    assert len(e) == 0 and e.features.shape == (0, 25, 64) and len(e.skipped) == 2

def test_cache_bad_arguments(folder, tmp_path):
    d, names = folder
    with pytest.raises(ValueError, match='more than once'): build_feature_cache(d, names + names[:1], tmp_path/'x')
    with pytest.raises(ValueError, match='dtype'): build_feature_cache(d, names, tmp_path/'x', dtype='int8')
    with pytest.raises(ValueError, match='on_error'): build_feature_cache(d, names, tmp_path/'x', on_error='ignore')
    with pytest.raises(AudioError, match='none of the 2 files'): build_feature_cache(d, ['nope1', 'nope2'], tmp_path/'x')
    with pytest.raises(FileNotFoundError, match='not a feature cache'): load_feature_cache(tmp_path)
    assert median_duration([d/f'{n}.wav' for n in names] + [d/'nope.wav']) == 0.5


def test_cache_resume_after_interruption(folder, tmp_path):
    d, names = folder
    kw = dict(batch_size=2, clip_seconds=0.5, progress=False, verbose=False)
    straight = build_feature_cache(d, names, tmp_path/'straight', **kw)
    def kill(b, n):
        if b == 2: raise Killed()
    with pytest.raises(Killed): build_feature_cache(d, names, tmp_path/'resumed', after_batch=kill, **kw)
    assert sorted(p.name for p in (tmp_path/'resumed').iterdir()) == [LOCK_FILE, '.features.partial.npy', '.features.progress']
    r = build_feature_cache(d, names, tmp_path/'resumed', **kw)
    assert (r.report['resumed'], r.report['computed']) == (4, 4)
    for f in CACHE_FILES: assert (tmp_path/'resumed'/f).read_bytes() == (tmp_path/'straight'/f).read_bytes(), f
    assert sorted(p.name for p in (tmp_path/'resumed').iterdir()) == sorted(CACHE_FILES + [LOCK_FILE])
    # an interrupted update leaves the old cache intact and readable; the re-run finishes it
    write(d/'clip1.wav', 0.5, SR, 50); write(d/'clip7.wav', 0.5, SR, 51)
    old = stat_ns(tmp_path/'resumed')
    def kill1(b, n): raise Killed()
    with pytest.raises(Killed): build_feature_cache(d, names, tmp_path/'resumed', after_batch=kill1, **dict(kw, batch_size=1))
    assert stat_ns(tmp_path/'resumed') == old and len(load_feature_cache(tmp_path/'resumed')) == 8
    r2 = build_feature_cache(d, names, tmp_path/'resumed', **kw)
    assert r2.report['computed'] == 1 and r2.report['resumed'] == 7
    fresh = build_feature_cache(d, names, tmp_path/'fresh', **kw)   # (other batch sizes: features do not depend on them)
    for f in ['features.npy', 'index.csv']: assert (tmp_path/'resumed'/f).read_bytes() == (tmp_path/'fresh'/f).read_bytes(), f

def test_cache_resume_after_sigkill(folder, tmp_path):
    "A real kill (SIGKILL: no cleanup runs) half-way through, then a re-run: identical to an uninterrupted build"
    d, names = folder
    more = names + [f'more{i}' for i in range(8)]
    for i in range(8): write(d/f'more{i}.wav', 0.5, SR, 100 + i)
    script = tmp_path/'killme.py'
    script.write_text(textwrap.dedent(f'''
        import os, signal
        from asc_nbdev.audio.cache import build_feature_cache
        def hook(b, n):
            if b == 3: os.kill(os.getpid(), signal.SIGKILL)
        build_feature_cache({str(d)!r}, {more!r}, {str(tmp_path/'killed')!r}, batch_size=2, progress=False, after_batch=hook)
    '''))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert not (tmp_path/'killed'/'manifest.json').exists()
    r = build_feature_cache(d, more, tmp_path/'killed', batch_size=2, progress=False, verbose=False)
    assert (r.report['resumed'], r.report['computed']) == (6, 10)
    build_feature_cache(d, more, tmp_path/'straight', batch_size=2, progress=False, verbose=False)
    for f in CACHE_FILES: assert (tmp_path/'killed'/f).read_bytes() == (tmp_path/'straight'/f).read_bytes(), f


# ---------------------------------------------------------------- the asc-features command
@pytest.fixture(scope='module')
def run_cli():
    "Run asc-features (installed by the test command) in a fresh process"
    from conftest import cli_runner
    return cli_runner('asc-features', timeout=180)

def write_meta(path, names):
    pd.DataFrame({'filename': names, 'location': 'Beijing', 'record_time': '2023-06-18 18:44:34', 'scene_label': ''}).to_csv(path, index=False, encoding='utf-8-sig')

def test_cli(folder, tmp_path, run_cli):
    d, names = folder
    write_meta(tmp_path/'meta.csv', names)
    p = run_cli(d, tmp_path/'meta.csv', tmp_path/'out', '--batch-size', 3, '--workers', 2, '--decoders', 1, '--dtype', 'float32')
    assert p.returncode == 0, p.stderr
    assert 'computed 8' in p.stdout and 'padded 1, cropped 1' in p.stdout
    c = load_feature_cache(tmp_path/'out')
    assert (len(c), c.dtype, c.n_frames) == (8, np.float32, 25)
    assert asc_features(d, tmp_path/'meta.csv', tmp_path/'out', dtype='float32', quiet=True).report['up_to_date']
    make_bad(d)
    write_meta(tmp_path/'bad.csv', names + ['junk', 'silent'])
    p = run_cli(d, tmp_path/'bad.csv', tmp_path/'out2', '--clip-seconds', 0.5)
    assert p.returncode != 0 and 'junk.wav: not a readable audio file' in p.stderr and '--on-error skip' in p.stderr
    assert 'Traceback' not in p.stderr
    p = run_cli(d, tmp_path/'bad.csv', tmp_path/'out2', '--clip-seconds', 0.5, '--on-error', 'skip', '--device', 'cpu')
    assert p.returncode == 0, p.stderr
    assert 'skipped 2 file(s)' in p.stdout and 'silent: all silence' in p.stdout
    assert sorted(pd.read_csv(tmp_path/'out2'/'skipped.csv')['filename']) == ['junk', 'silent']
    with pytest.raises(FileNotFoundError, match='nope.csv'): asc_features(d, tmp_path/'nope.csv', tmp_path/'out3')

def test_cli_arguments():
    from fastcore.script import anno_parser
    p = anno_parser(asc_features)
    a = p.parse_args(['A', 'B.csv', 'OUT', '--batch-size', '8', '--workers', '2', '--dtype', 'float32', '--on-error', 'skip',
                      '--clip-seconds', '2.5', '--device', 'cuda', '--decoders', '4'])
    assert (a.audio_dir, a.csv, a.out, a.batch_size, a.workers, a.dtype, a.on_error, a.clip_seconds, a.device, a.decoders) == \
           ('A', 'B.csv', 'OUT', 8, 2, 'float32', 'skip', 2.5, 'cuda', 4)
    a = p.parse_args(['A', 'B.csv', 'OUT'])
    assert (a.batch_size, a.workers, a.dtype, a.on_error, a.clip_seconds, a.device) == (16, 2, 'float16', 'raise', None, 'cpu')
    for bad in [['--dtype', 'int8'], ['--on-error', 'ignore']]:
        with pytest.raises(SystemExit): p.parse_args(['A', 'B.csv', 'OUT'] + bad)


# ---------------------------------------------------------------- FLAC/OGG lookup, truncated WAV files
def test_find_audio_and_formats(tmp_path):
    from asc_nbdev.audio.io import find_audio, AUDIO_EXTENSIONS
    assert AUDIO_EXTENSIONS == ('.wav', '.flac', '.ogg')
    y = clip(0.5, SR, 3)
    sf.write(tmp_path/'a.flac', y, SR, subtype='PCM_16'); sf.write(tmp_path/'a.ogg', y, SR, format='OGG', subtype='VORBIS')
    sf.write(tmp_path/'b.ogg', y, SR, format='OGG', subtype='VORBIS')
    write(tmp_path/'c.wav'); sf.write(tmp_path/'c.flac', y, SR)
    assert [find_audio(tmp_path, n).name for n in ['a', 'b', 'c', 'd', 'c.wav', 'b.ogg']] == ['a.flac', 'b.ogg', 'c.wav', 'd.wav', 'c.wav', 'b.ogg']
    # a 44.1 kHz 16-bit FLAC holds fewer bytes than samples: read whole (it was cut to its byte size before)
    yf, info = load_audio(tmp_path/'a.flac')
    assert (len(yf), info.cropped, info.padded) == (len(y), False, False)
    np.testing.assert_array_equal(yf, sf.read(tmp_path/'a.flac', dtype='float32')[0])
    yo, _ = load_audio(tmp_path/'b.ogg')
    assert len(yo) == len(y) and np.corrcoef(yo, y[:, 0])[0, 1] > 0.9          # lossy, the same clip
    c = build_feature_cache(tmp_path, ['a', 'b', 'c'], tmp_path/'fc', clip_seconds=0.5, progress=False, verbose=False)
    assert len(c) == 3 and c.report['computed'] == 3
    with pytest.raises(AudioError, match=r'd\.wav: missing: no such file, nor d\.flac or \.ogg'):
        build_feature_cache(tmp_path, ['a', 'd'], tmp_path/'fc2', clip_seconds=0.5, progress=False, verbose=False)

@pytest.mark.parametrize('subtype,channels', [('PCM_16', 1), ('PCM_24', 2), ('FLOAT', 1), ('PCM_U8', 1)])
def test_truncated_wav(tmp_path, subtype, channels):
    "A WAV file cut short (its header declares more than it holds) is an error, not a quietly shorter clip"
    p = write(tmp_path/'x.wav', 0.5, 16_000, 0, channels, subtype)
    full = p.read_bytes()
    p.write_bytes(full[:len(full)//2])
    with pytest.raises(AudioError, match=r'x\.wav: truncated: the header declares 8000 frames, the file holds \d+') as e: load_audio(p)
    assert e.value.kind == 'truncated'
    hdr = full[:full.index(b'data') + 8]
    p.write_bytes(hdr)                                                        # the header alone, promising 8000 frames
    with pytest.raises(AudioError, match='truncated: .* holds 0'): load_audio(p)
    p.write_bytes(full + b'\0' * 7)                                           # longer than declared: fine
    assert len(load_audio(p, sr=None)[0]) == 8000


# ---------------------------------------------------------------- reading rows without mapping them
def _mapped_kb(name):
    "Resident kB of this process's mappings of files whose path ends with `name`"
    tot, cur = 0, False
    for line in Path('/proc/self/smaps').read_text().splitlines():
        f = line.split()
        if f and '-' in f[0] and not f[0].endswith(':'): cur = line.rstrip().endswith(name)
        elif cur and f[0] == 'Rss:': tot += int(f[1])
    return tot

@pytest.mark.parametrize('dtype', ['float16', 'float32'])
def test_read_rows(tmp_path, dtype, monkeypatch):
    from asc_nbdev.audio.cache import read_rows, open_features
    import asc_nbdev.audio.cache as F
    a = np.random.default_rng(0).standard_normal((300, 9, 5)).astype(dtype)
    np.save(tmp_path/'f.npy', a); m = open_features(tmp_path/'f.npy')
    assert isinstance(m, np.memmap) and not m.flags.writeable and m.shape == a.shape
    cases = [[3, 1, 2, 299, 0], [5, 5, 2, 5], list(range(300)), [], np.random.default_rng(1).integers(0, 300, 1000), [7]]
    for rows in cases:
        want = a[np.asarray(rows, dtype=int)]
        np.testing.assert_array_equal(read_rows(m, rows), want)
        np.testing.assert_array_equal(read_rows(a, rows), want)              # in memory: plain indexing
        np.testing.assert_array_equal(read_rows(np.load(tmp_path/'f.npy', mmap_mode='r'), rows), want)   # another memmap: indexing
    out = np.empty((3, 9, 5), dtype)
    assert read_rows(m, [9, 8, 7], out=out) is out and np.array_equal(out, a[[9, 8, 7]])
    with pytest.raises(ValueError, match='out must be'): read_rows(m, [1, 2], out=out)
    with pytest.raises(IndexError, match=r'\[300\]'): read_rows(m, [0, 300])
    monkeypatch.setattr(F, '_IOV_MAX', 4)                                     # long runs split over several calls
    np.testing.assert_array_equal(read_rows(m, np.arange(50)[::-1]), a[::-1][-50:])
    if hasattr(os, 'preadv'):
        real = os.preadv
        def short(fd, bufs, pos):                                             # at most 37 bytes per call
            data = os.pread(fd, 37, pos); i = 0
            for b in bufs:
                v = memoryview(b).cast('B'); t = min(v.nbytes, len(data) - i)
                if t <= 0: break
                v[:t] = data[i:i + t]; i += t
            return len(data)
        monkeypatch.setattr(os, 'preadv', short)
        np.testing.assert_array_equal(read_rows(m, [4, 5, 6, 100, 299]), a[[4, 5, 6, 100, 299]])
        monkeypatch.delattr(os, 'preadv')                                     # no preadv (Windows): seek and read
        np.testing.assert_array_equal(read_rows(m, [4, 5, 6, 100, 299]), a[[4, 5, 6, 100, 299]])
        monkeypatch.setattr(os, 'preadv', real, raising=False)
    # no page of the file became resident through the map (this file's own path: other tests' caches in this worker do not count)
    if Path('/proc/self/smaps').exists(): assert _mapped_kb(str(tmp_path/'f.npy')) == 0
    # the file replaced under an open map: both the map and read_rows still see the old one (the file is held open)
    np.save(tmp_path/'g.npy', a + 1); os.replace(tmp_path/'g.npy', tmp_path/'f.npy')
    np.testing.assert_array_equal(read_rows(m, [0, 1]), a[[0, 1]])
    # a file cut short under the map: a clear error naming it
    m2 = open_features(tmp_path/'f.npy')
    os.truncate(tmp_path/'f.npy', 128 + 10*a[0].nbytes)
    with pytest.raises(OSError, match=r'f\.npy: the file ends before the rows'): read_rows(m2, [50])

def test_loader_batches_leave_no_mapped_pages(folder, tmp_path):
    "ASCItems.batch and band_stats on a FeatureCache read by positioned reads: same values as indexing, nothing mapped"
    if not Path('/proc/self/smaps').exists(): pytest.skip('needs /proc/self/smaps (Linux)')
    from asc_nbdev.data.loaders import ASCItems, band_stats
    d, names = folder
    for dtype in ['float16', 'float32']:
        c = build_feature_cache(d, names, tmp_path/dtype, dtype=dtype, progress=False, verbose=False)
        ref = np.array(np.load(tmp_path/dtype/'features.npy'))
        mean, std = band_stats(c.features, [6, 1, 2, 3])
        m2, s2 = band_stats(ref, [1, 2, 3, 6])
        np.testing.assert_allclose(mean, m2, rtol=1e-6); np.testing.assert_allclose(std, s2, rtol=1e-6)
        it = ASCItems(c.features, [7, 2, 2, 5, 0], [0]*5, np.zeros((5, 8)))
        x = it.batch([3, 0, 1, 4], mean, std)[0]
        want = (ref[[5, 7, 2, 0]].astype(np.float32) - mean) / std
        np.testing.assert_allclose(x[:, 0].numpy(), want, rtol=1e-6, atol=1e-6)
        assert _mapped_kb(str(tmp_path/dtype/'features.npy')) == 0   # this cache's file (other tests' caches in this worker do not count)
