"Synthetic CAS-like dataset: the asc-synth command, files and CSV format, determinism, bad arguments, difficulty"
import hashlib, json, re, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf
from asc_nbdev.core import CLASSES, CITIES
from asc_nbdev.data.synthetic import (make_synthetic, synth_summary, synth_baselines, synth_settings,
                                      DEV_CITIES, UNSEEN_CITIES)

HEADER = b'filename,location,record_time,scene_label\n'

def run_cli(*args):
    return subprocess.run(['asc-synth', *map(str, args)], capture_output=True, text=True, timeout=300)

def tree_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob('*')) if p.is_file()}

def read(path): return pd.read_csv(path, dtype=str, keep_default_na=False)

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp('tiny') / 'data'
    make_synthetic(out, preset='tiny', progress=False)
    return out

@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('quick') / 'data'
    make_synthetic(out, preset='quick', progress=False)
    return out

def test_cli_runs(tmp_path):
    r = run_cli(tmp_path / 'out', '--preset', 'tiny', '--n-clips', 80, '--duration', 0.3, '--sr', 8000, '--seed', 3, '--quiet')
    assert r.returncode == 0, r.stderr
    assert 'synthetic CAS-like dataset' in r.stdout and '80 clips of 0.3 s at 8000 Hz' in r.stdout
    assert len(list((tmp_path / 'out' / 'audio').glob('*.wav'))) == 80
    r = run_cli(tmp_path / 'out', '--preset', 'tiny', '--n-clips', 80, '--duration', 0.3, '--sr', 8000, '--seed', 3, '--json')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)   # nothing but the JSON object on stdout
    assert s['reused'] and s['clips'] == 80 and s['sr'] == 8000 and s['duration'] == 0.3 and s['missing_audio'] == 0

def test_files_and_csv_format(tiny):
    for name in ('dev_metadata.csv', 'eval_metadata.csv'):
        raw = (tiny / name).read_bytes()
        assert raw.startswith(HEADER), raw[:60]                 # exact header, no byte-order mark
        raw.decode('utf-8')
    assert (tiny / 'truth.csv').read_bytes().startswith(b'filename,scene_label\n')
    dev, ev, truth = read(tiny / 'dev_metadata.csv'), read(tiny / 'eval_metadata.csv'), read(tiny / 'truth.csv')
    assert list(dev.columns) == ['filename', 'location', 'record_time', 'scene_label']
    assert not dev.filename.str.endswith('.wav').any()
    assert dev.filename.str.fullmatch(r'[0-9a-f]{32}\d+_[12]').all()
    assert dev.record_time.str.fullmatch(r'2023-\d\d-\d\d \d\d:\d\d:\d\d').all()
    assert set(dev.scene_label) - {''} <= set(CLASSES) and (ev.scene_label == '').all()
    assert set(dev.location) | set(ev.location) <= set(CITIES)
    # truth covers every clip exactly once, and agrees with the visible labels
    assert truth.filename.is_unique and set(truth.filename) == set(dev.filename) | set(ev.filename)
    assert len(truth) == len(dev) + len(ev) and set(truth.scene_label) <= set(CLASSES)
    lab = dev[dev.scene_label != '']
    assert (truth.set_index('filename').scene_label[lab.filename].to_numpy() == lab.scene_label.to_numpy()).all()
    # audio: mono 16-bit PCM wav of the asked length
    for f in list(dev.filename[:3]) + list(ev.filename[:2]):
        info = sf.info(str(tiny / 'audio' / f'{f}.wav'))
        assert (info.channels, info.subtype, info.samplerate, info.frames) == (1, 'PCM_16', 16000, 8000)

def test_sessions_cities_labels(quick):
    dev, ev, truth = read(quick / 'dev_metadata.csv'), read(quick / 'eval_metadata.csv'), read(quick / 'truth.csv')
    t = truth.set_index('filename').scene_label
    both = pd.concat([dev.assign(split='dev'), ev.assign(split='eval')]); both['true'] = both.filename.map(t)
    g = both.groupby(['location', 'record_time'])
    assert g.true.nunique().max() == 1                          # one label per recording session
    assert 2 <= g.size().median() <= 6
    assert set(dev.location) <= set(DEV_CITIES) and len(set(dev.location)) == 8
    unseen = set(ev.location) - set(dev.location)
    assert unseen == set(UNSEEN_CITIES) and len(set(ev.location)) == 12
    frac = (dev.scene_label != '').mean()
    assert abs(frac - 0.2) < 0.01, frac
    d = both[both.split == 'dev'].copy(); d['labeled'] = d.scene_label != ''
    per_session = d.groupby(['location', 'record_time']).labeled.any()
    assert d[~d.labeled].set_index(['location', 'record_time']).index.isin(per_session[per_session].index).mean() > 0.6
    assert (d[d.labeled].true.value_counts().reindex(CLASSES).fillna(0) > 0).all()   # every class has labeled clips
    s = synth_summary(quick)
    assert s['labeled'] == (dev.scene_label != '').sum() and sorted(s['cities']['unseen']) == sorted(UNSEEN_CITIES)

def test_same_seed_same_bytes(tmp_path):
    make_synthetic(tmp_path / 'a', preset='tiny', seed=7, progress=False)
    make_synthetic(tmp_path / 'b', preset='tiny', seed=7, progress=False)
    make_synthetic(tmp_path / 'c', preset='tiny', seed=8, progress=False)
    a, b, c = (tree_bytes(tmp_path / k) for k in 'abc')
    assert a == b
    assert a['truth.csv'] != c['truth.csv']

def test_reuse_resume_overwrite(tmp_path):
    out = tmp_path / 'd'
    make_synthetic(out, preset='tiny', progress=False)
    before = tree_bytes(out)
    victim = sorted((out / 'audio').glob('*.wav'))[5]; victim.unlink()       # a run killed half-way
    s = make_synthetic(out, preset='tiny', progress=False)
    assert not s['reused'] and tree_bytes(out) == before                      # resumed: identical bytes
    assert make_synthetic(out, preset='tiny', progress=False)['reused']
    with pytest.raises(FileExistsError, match='pass overwrite=True'):
        make_synthetic(out, preset='tiny', seed=1, progress=False)
    r = run_cli(out, '--preset', 'tiny', '--seed', 1)
    assert r.returncode == 2 and '--overwrite' in r.stderr
    s = make_synthetic(out, preset='tiny', seed=1, overwrite=True, progress=False)
    assert s['clips'] == 60 and len(list((out / 'audio').glob('*.wav'))) == 60   # old clips removed

@pytest.mark.parametrize('args,msg', [
    (['--labeled-frac', 1.5], 'labeled_frac must be in (0, 1], got 1.5'),
    (['--n-clips', 20], 'n_clips=20 is too small for 10 classes'),
    (['--preset', 'huge'], "unknown preset 'huge'"),
])
def test_bad_arguments_cli(tmp_path, args, msg):
    r = run_cli(tmp_path / 'x', '--preset', 'tiny', *args)
    assert r.returncode == 2 and msg in r.stderr, (r.returncode, r.stderr)
    assert r.stderr.startswith('asc-synth: error: ') and 'Traceback' not in r.stderr
    assert not (tmp_path / 'x').exists()                                  # nothing written

@pytest.mark.parametrize('kw,msg', [
    (dict(labeled_frac=0), 'labeled_frac must be in (0, 1], got 0'),
    (dict(labeled_frac=0.01), 'every class needs a labeled clip'),
    (dict(duration=0.), 'duration must be in [0.05, 60], got 0'),
    (dict(sr=100), 'sr must be in [8000, 96000], got 100'),
    (dict(sr=16000.), 'sr must be an integer'),
    (dict(eval_frac=0.9), 'eval_frac must be in (0, 0.5], got 0.9'),
    (dict(session_size=(0, 3)), 'session_size must be two integers'),
    (dict(seed=-1), 'seed must be in [0, 4294967295], got -1'),
])
def test_bad_arguments_api(tmp_path, kw, msg):
    with pytest.raises(ValueError) as e: make_synthetic(tmp_path / 'x', preset='quick', progress=False, **kw)
    assert msg in str(e.value), str(e.value)
    assert not (tmp_path / 'x').exists()

def test_unknown_setting():
    with pytest.raises(TypeError, match='unknown synthetic-data settings'): synth_settings('quick', clips=3)

def test_not_trivial_not_hopeless(quick):
    "A linear model on clip-mean log-mels: well above chance, clearly below 100%, on session-grouped splits"
    b = synth_baselines(quick)
    assert 0.45 <= b['audio'] <= 0.9, b
    assert b['city'] < 0.4 and b['audio'] > b['city'] + 0.2, b
    assert b['pair_error_share'] > 0.3, b      # errors concentrate on the 4 confusable pairs (4 of 45 class pairs)
