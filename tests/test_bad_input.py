"""A bad-input corpus, run through `asc-features`, `asc-predict` and `asc-train`.

Every kind of bad (and odd but valid) audio file, metadata CSV, output folder and model file. Each case ends
in either a correct result or a clear error naming the file or row and the problem (exit code 2, no
traceback); with `--on-error skip` every skipped file is listed. Tiny inputs: 0.5 s clips at 16 kHz, one
tiny model trained once for the module (`asc-train --demo --n-clips 240 --epochs 1 --rounds 0`).

The command runs that each need a whole process (training, the skip runs, the read-only folder) run as
separate processes with `run_cli`. The many quick ones (each CSV case through each command, each bad file in
`raise` mode, each odd model file) run through the same console-script entry points, one after another in a
single process started with `run_cli` (`_driver` below: `sys.argv` set, the entry point called from the top
level of a script as its console script does, `SystemExit` taken as the exit code), since starting Python with
torch and fastai costs 4-8 s a run; `test_driver_matches_real_processes` checks that it gives the same exit
codes and messages as separate processes.

`OUTCOMES` (filled as the tests run) is printed at the end of the module with `-s` (case -> outcome).
"""
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf, torch
from conftest import run_cli

SR, SECS = 16_000, 0.5
GOOD_META = dict(location='Beijing', record_time='2023-06-18 18:44:34', scene_label='')
OUTCOMES = {}   # case id -> outcome, for the summary


# ---------------------------------------------------------------- the audio corpus
def signal(seconds=SECS, sr=SR, channels=1):
    "Three tones under a slow tremolo, |y| <= 0.4, the same waveform at every sample rate and length (no normalisation by the peak)"
    t = np.arange(int(round(seconds * sr))) / sr
    y = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in [(0.5, 220, 0), (0.3, 1250, 1), (0.2, 3100, 2)])
    y = 0.4 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.stack([y * (1 - 0.4 * c) for c in range(channels)], 1).astype(np.float32)   # channels differ (mixing is tested)

def _sf(ext='.wav', subtype='PCM_16', sr=SR, channels=1, seconds=SECS, **kw):
    return lambda stem: sf.write(f'{stem}{ext}', signal(seconds, sr, channels), sr, subtype=subtype, **kw)

def _bytes(data):
    return lambda stem: Path(f'{stem}.wav').write_bytes(data)

def _cut(keep):
    "A 16-bit WAV cut to `keep(n_bytes)` bytes (a broken download)"
    def make(stem):
        p = Path(f'{stem}.wav'); sf.write(p, signal(), SR, subtype='PCM_16'); b = p.read_bytes()
        p.write_bytes(b[:keep(b)])
    return make

def _float(value):
    def make(stem):
        y = signal()[:, 0]; y[100] = value
        sf.write(f'{stem}.wav', y, SR, subtype='FLOAT')
    return make

# name -> (writer, expected): ('ok', 'padded'/'cropped'/'') or ('error', AudioError kind, text in the message)
AUDIO = {
    'base':        (_sf(), ('ok', '')),
    'flac':        (_sf('.flac'), ('ok', '')),                        # FILENAME.flac, no .wav
    'ogg':         (_sf('.ogg', 'VORBIS', format='OGG'), ('ok', '')),  # FILENAME.ogg (lossy)
    'pcm8':        (_sf(subtype='PCM_U8'), ('ok', '')),
    'pcm24':       (_sf(subtype='PCM_24'), ('ok', '')),
    'pcm32':       (_sf(subtype='PCM_32'), ('ok', '')),
    'float32':     (_sf(subtype='FLOAT'), ('ok', '')),
    'float64':     (_sf(subtype='DOUBLE'), ('ok', '')),
    'stereo':      (_sf(channels=2), ('ok', '')),
    'sr22k':       (_sf(sr=22_050), ('ok', '')),
    'sr44k':       (_sf(sr=44_100), ('ok', '')),
    'sr48k':       (_sf(sr=48_000), ('ok', '')),
    'short':       (_sf(seconds=0.3), ('ok', 'padded')),
    'long':        (_sf(seconds=0.8), ('ok', 'cropped')),
    'truncated':   (_cut(lambda b: len(b) // 2), ('error', 'truncated', 'truncated: the header declares 8000 frames, the file holds')),
    'header_only': (lambda stem: sf.write(f'{stem}.wav', np.zeros(0, np.float32), SR), ('error', 'empty', 'zero-length audio')),
    'header_cut':  (_cut(lambda b: b.index(b'data') + 8), ('error', 'truncated', 'declares 8000 frames, the file holds 0')),
    'empty_file':  (_bytes(b''), ('error', 'empty', 'zero-length file (0 bytes)')),
    'not_audio':   (_bytes(np.random.default_rng(0).bytes(5000)), ('error', 'unreadable', 'not a readable audio file')),
    'text_as_wav': (_bytes(b'filename,location\nnot,audio\n' * 50), ('error', 'unreadable', 'not a readable audio file')),
    'nan':         (_float(np.nan), ('error', 'nonfinite', '1 NaN/inf samples (first at sample 100)')),
    'inf':         (_float(np.inf), ('error', 'nonfinite', '1 NaN/inf samples (first at sample 100)')),
    'silence':     (lambda stem: sf.write(f'{stem}.wav', np.zeros(8000, np.int16), SR, subtype='PCM_16'), ('error', 'silent', 'all silence')),
    'missing':     (lambda stem: None, ('error', 'missing', 'missing: no such file, nor missing.flac or .ogg')),
}
OK = [n for n, (_, e) in AUDIO.items() if e[0] == 'ok']
BAD = [n for n, (_, e) in AUDIO.items() if e[0] == 'error']

def meta_frame(names, **kw):
    return pd.DataFrame({'filename': list(names), **{k: kw.get(k, v) for k, v in GOOD_META.items()}})


# ---------------------------------------------------------------- metadata CSV cases
def _csv_text(df, bom=False, crlf=False):
    t = df.to_csv(index=False, lineterminator='\r\n' if crlf else '\n')
    return ('\ufeff' if bom else '') + t

GOOD3 = ['base', 'pcm24', 'stereo']
# name -> (file content: str or bytes, or None for no file; expected per command: 'ok' or the error text; '' = not run)
def csv_cases():
    g = meta_frame(GOOD3)
    dup = meta_frame(GOOD3 + ['base'])
    lab = meta_frame(GOOD3); lab.loc[1, 'scene_label'] = 'Spaceport'
    city = meta_frame(GOOD3); city.loc[1, 'location'] = 'Atlantis'
    tm = meta_frame(GOOD3); tm.loc[1, 'record_time'] = 'yesterday'
    blank = meta_frame(GOOD3); blank.loc[1, 'filename'] = ''
    ext = meta_frame(['base.wav', 'pcm24', 'flac'])
    nolab = ok = 'ok'
    return {
        'bom':              (_csv_text(g, bom=True), dict(features=ok, predict=ok, train='combined')),
        'crlf':             (_csv_text(g, crlf=True), dict(features=ok, predict=ok, train='combined')),
        'bom_crlf':         (_csv_text(g, bom=True, crlf=True), dict(features=ok, predict=ok, train='combined')),
        'extra_columns':    (_csv_text(g.assign(device='A', notes='x, y')), dict(features=ok, predict=ok, train='combined')),
        'unknown_city':     (_csv_text(city), dict(features=ok, predict=ok, train='combined')),
        'extension_in_filename': (_csv_text(ext), dict(features=ok, predict=ok, train='combined')),
        'unparseable_time': (_csv_text(tm), dict(features=ok, predict=ok,
                                                   train="unparseable record_time on line 3 ('yesterday')")),
        'missing_column':   (_csv_text(g.drop(columns='record_time')), dict.fromkeys(['features', 'predict', 'train'],
                                                   "missing column(s) ['record_time']")),
        'duplicate_filenames': (_csv_text(dup), dict.fromkeys(['features', 'predict', 'train'],
                                                   "duplicate filename(s) ['base'] on lines 2, 5")),
        'unknown_label':    (_csv_text(lab), dict.fromkeys(['features', 'predict', 'train'],
                                                   "scene_label outside the vocabulary on line 3 ('Spaceport')")),
        'blank_filename':   (_csv_text(blank), dict.fromkeys(['features', 'predict', 'train'], 'empty filename on line 3')),
        'empty_file':       ('', dict.fromkeys(['features', 'predict', 'train'], 'the file is empty')),
        'header_only':      (','.join(g.columns) + '\n', dict.fromkeys(['features', 'predict', 'train'], 'the file has a header but no rows')),
        'not_a_csv':        (np.random.default_rng(1).bytes(3000), dict.fromkeys(['features', 'predict', 'train'], 'meta.csv: ')),
        'no_such_file':     (None, dict.fromkeys(['features', 'predict', 'train'], 'metadata file not found')),
        'no_labels_to_train_on': (_csv_text(g), dict(features='', predict='', train='the metadata has no labeled clips to train on')),
    }
CSV = csv_cases()


# ---------------------------------------------------------------- the driver: many command runs in one process
_DRIVER = '''
import contextlib, importlib, io, json, sys, traceback
ENTRY = {'asc-features': ('asc_nbdev.cli', 'asc_features'), 'asc-predict': ('asc_nbdev.cli', 'asc_predict'),
         'asc-train': ('asc_nbdev.cli', 'asc_train')}
runs_file, results_file = sys.argv[1:3]
runs, results = json.load(open(runs_file)), {}
for key, argv in runs.items():   # at the top level of this script, as a console script calls its entry point
    mod, fn = ENTRY[argv[0]]
    func = getattr(importlib.import_module(mod), fn)
    out, err, rc = io.StringIO(), io.StringIO(), 0
    sys.argv = list(argv)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: func()
        except SystemExit as e:
            if isinstance(e.code, str): print(e.code, file=sys.stderr); rc = 1   # what Python does with sys.exit('message')
            else: rc = e.code or 0
        except BaseException: traceback.print_exc(); rc = 1                   # an uncaught exception: exit code 1
    results[key] = dict(rc=rc, stdout=out.getvalue(), stderr=err.getvalue())
json.dump(results, open(results_file, 'w'))
'''

def run_driver(tmp, runs:dict) -> dict:
    "Run {key: [command, args...]} through the commands' entry points in one process; {key: dict(rc, stdout, stderr)}"
    (tmp/'driver.py').write_text(_DRIVER)
    (tmp/'runs.json').write_text(json.dumps({k: [str(a) for a in v] for k, v in runs.items()}))
    run_cli(sys.executable, tmp/'driver.py', tmp/'runs.json', tmp/'results.json', timeout=900)
    return json.loads((tmp/'results.json').read_text())

def clear_error(r, *texts, rc=2):
    "A run that failed with exit code `rc` and a one-line-ish message holding `texts`, without a traceback"
    msg = f"rc {r['rc']}\nstdout: {r['stdout'][-1500:]}\nstderr: {r['stderr'][-3000:]}"
    assert r['rc'] == rc, msg
    assert 'Traceback' not in r['stderr'], msg
    for t in texts: assert t in r['stderr'], f'{t!r} not in the error\n{msg}'


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope='module')
def work(tmp_path_factory): return tmp_path_factory.mktemp('bad_input')

@pytest.fixture(scope='module')
def corpus(work):
    "The audio corpus (one file per case) and its metadata CSV (every case, unlabeled, in AUDIO's order)"
    d = work/'audio'; d.mkdir()
    for name, (make, _) in AUDIO.items(): make(d/name)
    meta_frame(AUDIO).to_csv(work/'corpus.csv', index=False)
    return d, work/'corpus.csv'

@pytest.fixture(scope='module')
def model(work):
    "One tiny model for the module: its output folder (model.pt, data/)"
    out = work/'demo'
    run_cli('asc-train', '--demo', '--n-clips', 240, '--epochs', 1, '--rounds', 0, '--out', out, timeout=900)
    assert (out/'model.pt').is_file()
    return out

@pytest.fixture(scope='module')
def bad_models(work, model):
    "Model files 'from another library version' or otherwise not this library's: name -> (path, expected error text)"
    d = work/'models'; d.mkdir()
    obj = torch.load(model/'model.pt', weights_only=True)
    def save(name, change):
        o = {k: (dict(v) if isinstance(v, dict) else v) for k, v in obj.items()}
        change(o); torch.save(o, d/f'{name}.pt'); return d/f'{name}.pt'
    first = next(iter(obj['state_dict']))
    def drop_key(o): o['state_dict'].pop(first)
    def add_key(o): o['state_dict']['head.future_layer.weight'] = torch.zeros(3)
    def reshape(o): o['state_dict'][first] = torch.zeros(*(s + 1 for s in obj['state_dict'][first].shape))
    def bump(o): o['format'] = 'asc_nbdev.model/2'
    def hparam(o): o['hparams'] = dict(o['hparams'], a_future_option=True)
    def arch(o): o['arch'] = 'mobileascnet_v9'
    def classes(o): o['classes'] = list(reversed(o['classes']))
    def stats(o): o['stats'] = dict(mean=[0.0] * 128, std=[1.0] * 128)
    def feats(o): o['features'] = dict(o['features'], n_mels=128, n_fft=1024, hop_length=441)
    (d/'junk.pt').write_bytes(b'not a model at all' * 100)
    torch.save(obj['state_dict'], d/'state_dict_only.pt')
    return {
        'model_other_format':   (save('fmt', bump), "not an asc_nbdev model file (format 'asc_nbdev.model/2', expected 'asc_nbdev.model/1')"),
        'model_lacks_a_weight': (save('drop', drop_key), f"the weights do not fit the mobileascnet architecture"),
        'model_extra_weight':   (save('add', add_key), 'the weights do not fit the mobileascnet architecture'),
        'model_weight_shape':   (save('shape', reshape), 'the weights do not fit the mobileascnet architecture'),
        'model_unknown_hparam': (save('hparam', hparam), 'a_future_option'),
        'model_unknown_arch':   (save('arch', arch), 'mobileascnet_v9'),
        'model_other_classes':  (save('classes', classes), 'was trained on classes'),
        'model_stats_128_bands': (save('stats', stats), '128'),
        'model_other_features': (save('feats', feats), 'n_mels'),
        'model_state_dict_only': (d/'state_dict_only.pt', 'not an asc_nbdev model file'),
        'model_not_a_model':    (d/'junk.pt', 'not a loadable asc_nbdev model file'),
        'model_missing':        (d/'nope.pt', 'model file not found'),
    }

@pytest.fixture(scope='module')
def driven(work, corpus, model, bad_models):
    "Every quick command run, through the driver: CSV cases x commands, bad files in raise mode, odd model files"
    audio, _ = corpus
    runs, t = {}, work/'driven'; t.mkdir()
    for name, (content, want) in CSV.items():
        p = t/name/'meta.csv'; p.parent.mkdir()
        if isinstance(content, bytes): p.write_bytes(content)
        elif content is not None: p.write_text(content, encoding='utf-8', newline='')
        for cmd, w in want.items():
            if w in ('', 'combined'): continue
            if cmd == 'features': runs[f'csv/{name}/features'] = ['asc-features', audio, p, t/name/'cache', '--quiet']
            if cmd == 'predict': runs[f'csv/{name}/predict'] = ['asc-predict', '--model', model/'model.pt', '--meta', p, '--audio', audio,
                                                                 '--out', t/name/'sub.csv', '--device', 'cpu']
            if cmd == 'train': runs[f'csv/{name}/train'] = ['asc-train', '--audio', audio, '--meta', p, '--out', t/name/'run',
                                                             '--epochs', 1, '--rounds', 0, '--quick', '--device', 'cpu']
    for name in BAD:   # each bad file alone among good ones, on_error raise
        p = t/f'raise_{name}.csv'; meta_frame(['base', name, 'pcm24']).to_csv(p, index=False)
        runs[f'audio/{name}/features'] = ['asc-features', audio, p, t/f'raise_{name}', '--quiet']
        runs[f'audio/{name}/predict'] = ['asc-predict', '--model', model/'model.pt', '--meta', p, '--audio', audio,
                                         '--out', t/f'raise_{name}.sub.csv', '--device', 'cpu']
    meta_frame(GOOD3).to_csv(t/'good.csv', index=False)
    for name, (path, _) in bad_models.items():
        runs[f'model/{name}/predict'] = ['asc-predict', '--model', path, '--meta', t/'good.csv', '--audio', audio, '--out', t/f'{name}.csv',
                                         '--device', 'cpu']
    return run_driver(work, runs)


# ---------------------------------------------------------------- audio: every case through every command
def test_audio_features_skip_lists_every_bad_file(work, corpus):
    "asc-features --on-error skip over the whole corpus: every good file in the cache, right; every bad one listed with its problem"
    from asc_nbdev.audio.cache import FeatureCache
    audio, csv = corpus
    r = run_cli('asc-features', audio, csv, work/'skip_cache', '--on-error', 'skip', '--dtype', 'float32', check=False)
    assert r.returncode == 0, r.stderr
    c = FeatureCache(work/'skip_cache')
    assert sorted(c.index.index) == sorted(OK) and c.clip_seconds == SECS          # the median length
    sk = pd.read_csv(work/'skip_cache'/'skipped.csv', keep_default_na=False).set_index('filename')['problem']
    assert sorted(sk.index) == sorted(BAD)
    assert f'skipped {len(BAD)} file(s)' in r.stdout
    for name in BAD:
        kind, text = AUDIO[name][1][1:]
        assert text in sk[name], (name, sk[name])
        assert f'  {name}: ' in r.stdout or len(BAD) > 10, name                      # printed (up to 10; all in skipped.csv)
        OUTCOMES[f'audio/{name}/features --on-error skip'] = f'skipped, listed: {sk[name]}'
    # each good file's row is what the official baseline's loader (librosa.load: soundfile, mean of the channels, soxr HQ)
    # and the librosa log-mel give, in the bins that carry signal: the tones leave most bins far below the peak, where
    # only FFT rounding is left and builds of the FFT libraries differ (notebook 03, "Where rounding lives")
    import librosa
    from asc_nbdev.audio.logmel import logmel_librosa, assert_logmel_close
    from asc_nbdev.audio.io import find_audio
    man = json.loads((work/'skip_cache'/'manifest.json').read_text())
    for name in OK:
        flags = AUDIO[name][1][1]
        assert (name in man['padded'], name in man['cropped']) == (flags == 'padded', flags == 'cropped'), name
        y, _ = librosa.load(find_audio(audio, name), sr=44_100, mono=True)
        n = int(SECS * 44_100); y = np.pad(y, (0, max(0, n - len(y))))[:n]
        ref = logmel_librosa(y)
        err = assert_logmel_close(c[name], ref, atol=0.01, within_db=50, what=name)
        if name == 'base':   # the same check fails on a wrong window, a wrong mel norm, a 1 dB offset
            for wrong in [logmel_librosa(y, window='hamming'), logmel_librosa(y, norm=None), ref + 1]:
                with pytest.raises(AssertionError, match='below the peak'): assert_logmel_close(c[name], wrong, atol=0.01, within_db=50)
        OUTCOMES[f'audio/{name}/features'] = 'ok' + (f', {flags}' if flags else '') + f', = librosa reference within {err["max"]:.3f} dB'


@pytest.mark.parametrize('name', BAD)
def test_audio_raise(driven, name):
    "on_error raise: each bad file stops asc-features and asc-predict with exit code 2, naming the file and the problem"
    kind, text = AUDIO[name][1][1:]
    for cmd in ('features', 'predict'):
        r = driven[f'audio/{name}/{cmd}']
        clear_error(r, f'{name}.wav', text)
        if cmd == 'features': assert '--on-error skip' in r['stderr']
        OUTCOMES[f'audio/{name}/{cmd}'] = f"exit 2: {r['stderr'].strip().splitlines()[0][:150]}"

def test_audio_predict_skip(work, corpus, model):
    "asc-predict --on-error skip over the whole corpus: every good clip predicted, every bad one listed (stdout and _skipped.csv)"
    audio, csv = corpus
    (work/'pred').mkdir()
    r = run_cli('asc-predict', '--model', model/'model.pt', '--meta', csv, '--audio', audio, '--out', work/'pred'/'sub.csv',
                '--on-error', 'skip', '--device', 'cpu', check=False)
    assert r.returncode == 0, r.stderr
    sub = pd.read_csv(work/'pred'/'sub.csv', keep_default_na=False)
    assert list(sub.filename) == OK and sub.scene_label.str.len().gt(0).all()
    sk = pd.read_csv(work/'pred'/'sub_skipped.csv', keep_default_na=False)
    assert sorted(sk.filename) == sorted(BAD)
    assert f'{len(BAD)} clips could not be read and are not predicted' in r.stdout
    for name in BAD:
        assert f'  {name}: ' in r.stdout, name
        OUTCOMES[f'audio/{name}/predict --on-error skip'] = 'skipped, listed in stdout and sub_skipped.csv'
    for name in OK: OUTCOMES[f'audio/{name}/predict'] = 'ok, predicted (padded to the model\'s 2 s)'

@pytest.fixture(scope='module')
def train_corpus(work, corpus, model):
    """The demo's labeled dev data plus the whole audio corpus (unlabeled), in one CSV written with a BOM, CRLF line ends,
    extra columns, an unknown city on some rows and '.wav' kept in one filename: the valid CSV cases for asc-train"""
    audio, _ = corpus
    d = work/'train_audio'; d.mkdir()
    for p in list((model/'data'/'audio').iterdir()) + list(audio.iterdir()): os.symlink(p, d/p.name)
    dev = pd.read_csv(model/'data'/'dev_metadata.csv', dtype=str, keep_default_na=False, encoding='utf-8-sig')
    cor = meta_frame(AUDIO); cor.loc[cor.filename == 'base', 'filename'] = 'base.wav'
    cor.loc[cor.filename.isin(['pcm24', 'stereo']), 'location'] = 'Atlantis'
    df = pd.concat([dev, cor], ignore_index=True).assign(device='a', comment='odd, but fine')
    (work/'train.csv').write_text(_csv_text(df, bom=True, crlf=True), encoding='utf-8', newline='')
    return d, work/'train.csv', dev

def test_audio_train_skip(work, train_corpus):
    "asc-train --on-error skip over the demo data + the corpus: trains, leaves out every bad file and lists it"
    d, csv, dev = train_corpus
    r = run_cli('asc-train', '--audio', d, '--meta', csv, '--out', work/'train_skip', '--epochs', 1, '--rounds', 0, '--quick',
                '--on-error', 'skip', '--device', 'cpu', check=False, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((work/'train_skip'/'report.json').read_text())
    assert rep['data']['skipped'] == len(BAD) and rep['data']['dev_clips'] == len(dev) + len(OK)
    sk = pd.read_csv(work/'train_skip'/'features'/'skipped.csv', keep_default_na=False)
    assert sorted(sk.filename) == sorted(BAD)
    assert f'{len(BAD)} clips have no features' in r.stdout
    for name in BAD: OUTCOMES[f'audio/{name}/train --on-error skip'] = 'skipped, listed in features/skipped.csv'
    for name in OK: OUTCOMES[f'audio/{name}/train'] = 'ok (features computed, clip kept as unlabeled)'
    for name, (_, want) in CSV.items():
        if want.get('train') == 'combined': OUTCOMES[f'csv/{name}/train'] = 'ok (in the combined training CSV)'

def test_audio_train_raise(work, train_corpus):
    "asc-train (on_error raise) stops at the first bad file in CSV order, exit code 2, naming it"
    d, csv, _ = train_corpus
    r = run_cli('asc-train', '--audio', d, '--meta', csv, '--out', work/'train_raise', '--epochs', 1, '--rounds', 0, '--quick',
                '--device', 'cpu', check=False, timeout=900)
    first = BAD[0]
    r = dict(rc=r.returncode, stdout=r.stdout, stderr=r.stderr)
    clear_error(r, f'{first}.wav', AUDIO[first][1][2])
    OUTCOMES[f'audio/<first bad file>/train'] = f"exit 2: {r['stderr'].strip().splitlines()[0][:150]}"


# ---------------------------------------------------------------- metadata CSVs
@pytest.mark.parametrize('name', list(CSV))
def test_csv(driven, work, name):
    "Each CSV case through each command: the good ones give a correct result, the bad ones exit 2 naming the file and line"
    content, want = CSV[name]
    csv = work/'driven'/name/'meta.csv'
    for cmd, w in want.items():
        if w in ('', 'combined'): continue
        r = driven[f'csv/{name}/{cmd}']
        if w == 'ok':
            assert r['rc'] == 0, (cmd, r['stderr'][-2000:])
            if cmd == 'features':
                from asc_nbdev.audio.cache import FeatureCache
                c = FeatureCache(work/'driven'/name/'cache'); assert len(c) == 3
            if cmd == 'predict':
                sub = pd.read_csv(work/'driven'/name/'sub.csv', keep_default_na=False)
                assert len(sub) == 3 and list(sub.columns) == ['filename', 'location', 'record_time', 'scene_label']
                if name == 'unknown_city': assert 'Atlantis' in r['stdout']   # said, and predicted with the unknown city
            OUTCOMES[f'csv/{name}/{cmd}'] = 'ok'
        else:
            named = content is not None and name != 'no_labels_to_train_on'   # (that message names no file: there is only the one)
            clear_error(r, w, *([str(csv)] if named else []))
            OUTCOMES[f'csv/{name}/{cmd}'] = f"exit 2: {r['stderr'].strip().splitlines()[0][:150]}"


# ---------------------------------------------------------------- model files from elsewhere
MODEL_CASES = ['model_other_format', 'model_lacks_a_weight', 'model_extra_weight', 'model_weight_shape', 'model_other_classes',
               'model_state_dict_only', 'model_not_a_model', 'model_missing',
               'model_unknown_hparam',
               'model_unknown_arch',
               'model_stats_128_bands',
               'model_other_features']

@pytest.mark.parametrize('name', MODEL_CASES)
def test_model_file(driven, bad_models, name):
    "asc-predict with a model file of another library version (or not a model file): exit 2, naming the file and the problem"
    path, text = bad_models[name]
    r = driven[f'model/{name}/predict']
    last = (r['stderr'].strip().splitlines() or [''])
    OUTCOMES[f'{name}/predict'] = (f"exit 2: {last[0][:150]}" if r['rc'] == 2 and 'Traceback' not in r['stderr']
                                   else f"rc {r['rc']}{' (traceback)' if 'Traceback' in r['stderr'] else ''}: {last[-1][:150]}")
    clear_error(r, str(path), text)


# ---------------------------------------------------------------- a read-only output folder
_DROP = ['setpriv', '--bounding-set', '-dac_override,-dac_read_search,-fowner', '--']

@pytest.fixture(scope='module')
def readonly(work):
    """A folder that cannot be written, and the command prefix under which that holds: none for a normal user; for root
    (whom mode 0555 does not stop), `setpriv` dropping the capabilities that override file permissions"""
    d = work/'readonly'; d.mkdir(); d.chmod(0o555)
    try: (d/'probe').write_text('x'); (d/'probe').unlink()
    except PermissionError: return d, []
    if shutil.which('setpriv') is None: pytest.skip('running as root, and no setpriv to drop CAP_DAC_OVERRIDE: a mode-0555 folder stays writable')
    p = subprocess.run(_DROP + [sys.executable, '-c', f'open({str(d/"probe")!r}, "w")'], capture_output=True, text=True)
    if p.returncode == 0 or 'PermissionError' not in p.stderr:
        pytest.skip(f'running as root, and setpriv could not take away the right to write a mode-0555 folder: {p.stderr[-300:]}')
    return d, _DROP

def test_readonly_features(readonly, corpus):
    d, pre = readonly; audio, _ = corpus
    meta_frame(GOOD3).to_csv(d.parent/'ro.csv', index=False)
    r = run_cli(*pre, 'asc-features', audio, d.parent/'ro.csv', d, check=False)
    clear_error(dict(rc=r.returncode, stdout=r.stdout, stderr=r.stderr), f'cannot write the feature cache folder {d}', 'ermission denied')
    OUTCOMES['readonly_out/features'] = f"exit 2: {r.stderr.strip().splitlines()[0][:150]}"

def test_readonly_predict(readonly, corpus, model):
    d, pre = readonly; audio, _ = corpus
    meta_frame(GOOD3).to_csv(d.parent/'ro.csv', index=False)
    r = run_cli(*pre, 'asc-predict', '--model', model/'model.pt', '--meta', d.parent/'ro.csv', '--audio', audio, '--out', d/'sub.csv',
                '--device', 'cpu', check=False)
    OUTCOMES['readonly_out/predict'] = f"rc {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1][:150]}"
    clear_error(dict(rc=r.returncode, stdout=r.stdout, stderr=r.stderr), str(d), 'ermission denied')

def test_readonly_train(readonly, corpus):
    d, pre = readonly; audio, _ = corpus
    lab = meta_frame(GOOD3, scene_label='Bus'); lab.to_csv(d.parent/'ro_lab.csv', index=False)
    r = run_cli(*pre, 'asc-train', '--audio', audio, '--meta', d.parent/'ro_lab.csv', '--out', d, '--epochs', 1, '--rounds', 0,
                '--quick', '--device', 'cpu', check=False)
    OUTCOMES['readonly_out/train'] = f"rc {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1][:150]}"
    clear_error(dict(rc=r.returncode, stdout=r.stdout, stderr=r.stderr), str(d), 'ermission denied')


# ---------------------------------------------------------------- the driver against real processes
def test_driver_matches_real_processes(driven, work, corpus, model):
    "A few of the driven runs again, each in its own process: the same exit codes and messages"
    audio, _ = corpus
    t = work/'driven'
    for key, argv in [('csv/duplicate_filenames/features', ['asc-features', audio, t/'duplicate_filenames'/'meta.csv', t/'x1', '--quiet']),
                      ('csv/unknown_label/predict', ['asc-predict', '--model', model/'model.pt', '--meta', t/'unknown_label'/'meta.csv',
                                                     '--audio', audio, '--out', t/'x2.csv', '--device', 'cpu']),
                      ('csv/unparseable_time/train', ['asc-train', '--audio', audio, '--meta', t/'unparseable_time'/'meta.csv',
                                                      '--out', t/'x3', '--epochs', 1, '--rounds', 0, '--quick', '--device', 'cpu'])]:
        r = run_cli(*argv, check=False)
        assert (r.returncode, r.stderr.strip()) == (driven[key]['rc'], driven[key]['stderr'].strip()), key


def test_zz_summary(capsys):
    "Print the outcome of every case (pytest -s shows it)"
    with capsys.disabled():
        print(f'\n{len(OUTCOMES)} case runs:')
        for k in sorted(OUTCOMES): print(f'  {k}: {OUTCOMES[k]}')
