"Synthetic CAS-like dataset: the asc-synth command, files and CSV format, recordings and eval overlap, the twin, determinism, bad arguments, difficulty"
import hashlib, json, re, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf
from asc_nbdev.core import CLASSES, CITIES
from asc_nbdev.data.synthetic import make_synthetic, synth_summary, synth_baselines, synth_settings
from asc_nbdev.data.synth_plan import synth_plan, twin_labels, twin_plan, DEV_CITIES, UNSEEN_CITIES, chain_recordings, _real_meta

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
    assert g.true.nunique().max() == 1                          # one label per session
    assert 2 <= g.size().median() <= 6
    assert set(dev.location) == set(DEV_CITIES)
    unseen = set(ev.location) - set(dev.location)
    assert unseen <= set(UNSEEN_CITIES) and len(unseen) >= 4
    frac = (dev.scene_label != '').mean()
    assert abs(frac - 0.2) < 0.01, frac
    d = both[both.split == 'dev'].copy(); d['labeled'] = d.scene_label != ''
    per_session = d.groupby(['location', 'record_time']).labeled.any()
    assert d[~d.labeled].set_index(['location', 'record_time']).index.isin(per_session[per_session].index).mean() > 0.6
    assert (d[d.labeled].true.value_counts().reindex(CLASSES).fillna(0) > 0).all()   # every class has labeled clips
    s = synth_summary(quick)
    assert s['labeled'] == (dev.scene_label != '').sum() and set(s['cities']['unseen']) == unseen

def test_recordings(quick):
    "Sessions are consecutive 10-minute chunks of recordings: one scene, one city, one day; chaining finds them"
    dev, ev, truth = read(quick / 'dev_metadata.csv'), read(quick / 'eval_metadata.csv'), read(quick / 'truth.csv')
    d = dev.assign(true=dev.filename.map(truth.set_index('filename').scene_label), t=pd.to_datetime(dev.record_time))
    d['rec'] = chain_recordings(d.location, d.t)
    ses = d.drop_duplicates(['location', 't']).sort_values(['rec', 't'])
    steps = ses.groupby('rec').t.diff().dropna()
    assert (steps == pd.Timedelta(minutes=10)).all()                            # consecutive sessions: exactly 10 min apart
    assert ses.groupby('rec').size().between(2, 3).all()                        # the quick preset: 2-3 sessions per recording
    assert d.groupby('rec').true.nunique().max() == 1 and d.groupby('rec').t.apply(lambda x: x.dt.date.nunique()).max() == 1
    assert 30 <= d.rec.nunique() <= 40
    # another recording of a city is more than 30 min away; seconds are kept (not all start on the minute)
    assert (d.t.dt.second != 0).mean() > 0.5
    labeled_recs = d[d.scene_label != ''].groupby('true').rec.nunique().reindex(CLASSES).fillna(0)
    assert labeled_recs.min() >= 2, labeled_recs                                 # a recording split can keep every class
    s = synth_summary(quick)
    assert s['recordings']['dev'] == d.rec.nunique() and min(s['labeled_recordings_per_class'].values()) >= 2

def test_city_confounded_with_class():
    "As in CAS: every class recorded in 1-3 dev cities, every dev city holding a class, drawn by the dataset seed"
    for seed in range(5):
        p = synth_plan(800, seed=seed, session_size=(2, 6), recording_size=(2, 4))
        dev = p[p.split == 'dev']
        n = dev.groupby('scene_label').location.nunique()
        assert n.between(1, 3).all() and set(dev.location) == set(DEV_CITIES), n
        assert dev.groupby('recording').location.nunique().max() == 1
    a, b = (synth_plan(800, seed=s).query("split == 'dev'").groupby('scene_label').location.agg(frozenset) for s in (0, 1))
    assert not a.equals(b)

@pytest.mark.parametrize('preset', ['quick', 'demo', 'cas'])
def test_eval_overlap(preset):
    "The eval part shares dev sessions and recordings and has unseen cities, in shares like the real eval (37%, 42%, 33%)"
    p = synth_plan(**{k: v for k, v in synth_settings(preset).items() if k not in ('duration', 'sr')})
    dev, ev = p[p.split == 'dev'], p[p.split == 'eval']
    es = ev.groupby('session').first()
    n = len(es)
    same = es.index.isin(dev.session)
    assert abs(same.mean() - 0.37) < 0.06, same.mean()
    assert abs((es.kind == 'near').mean() - 0.055) < 0.05
    assert abs((~es.location.isin(set(dev.location))).mean() - 0.325) < 0.06
    assert (es.kind == 'unseen').sum() == (~es.location.isin(set(dev.location))).sum()
    # near sessions continue a dev recording, 10-20 min from its first or last session
    for r, k in zip(es.recording[es.kind == 'near'], es.k[es.kind == 'near']):
        ks = dev.k[dev.recording == r]
        assert k in (ks.min() - 1, ks.min() - 2, ks.max() + 1, ks.max() + 2)
    if preset == 'cas': assert n > 100 and set(ev.location) - set(dev.location) == set(UNSEEN_CITIES)

def test_drift_within_recording():
    from asc_nbdev.data.synth_sound import session_params
    walk = [session_params(3, 0, 'Bus', 'Hefei', 8., recording=5, k=k) for k in range(8)]
    others = [session_params(3, 0, 'Bus', 'Hefei', 8., recording=r) for r in range(6, 30)]
    step = np.mean(np.abs(np.diff([p['gain'] for p in walk])))
    spread = np.std([p['gain'] for p in others])
    assert 0 < step < 0.2 * spread and len({p['seed'] for p in walk}) == 1

def test_twin_labels_rule():
    df = pd.DataFrame({'filename': list('abcdefg'), 'location': ['X'] * 4 + ['Y'] + ['Z'] * 2,
                       'record_time': ['2023-05-01 10:00:00', '2023-05-01 10:10:00', '2023-05-01 10:20:00', '2023-05-01 11:30:00',
                                       '2023-05-01 10:00:00', '2023-05-01 10:00:00', '2023-05-01 10:10:00'],
                       'scene_label': ['Bus', '', 'Metro', '', 'Bar', '', '']})
    out = twin_labels(df, seed=0)
    assert out.tolist()[:3] == ['Bus', 'Bus', 'Metro']             # nearest labeled session of the recording; tie: the earlier
    assert out[3] == 'Bus' or out[3] == 'Metro'                    # another X recording: a label of X's labeled recordings
    assert out[5] == out[6] and out[5] in ('Bus', 'Metro', 'Bar')  # Z never labeled: one label for the recording, from all
    assert twin_labels(df, seed=0).equals(out)

def test_twin_plan_is_the_real_metadata():
    tw = twin_plan(0)
    dev, ev = _real_meta('dev'), _real_meta('eval')
    assert len(tw) == 9800 and tw.filename.tolist() == dev.filename.tolist() + ev.filename.tolist()
    assert tw.record_time.tolist() == dev.record_time.tolist() + ev.record_time.tolist()
    assert tw.scene_label[tw.labeled].tolist() == dev.scene_label[dev.scene_label != ''].tolist()
    assert tw.groupby('session').scene_label.nunique().max() == 1
    e = tw[tw.split == 'eval'].groupby('session').kind.first().value_counts()
    assert (e['same'], e['unseen']) == (59, 52)

def test_twin_preset_subset(tmp_path):
    out = tmp_path / 'twin'
    r = run_cli(out, '--preset', 'twin', '--n-clips', 40, '--duration', 0.2, '--sr', 8000, '--json')
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s['clips'], s['duration'], s['sr'], s['missing_audio']) == (40, 0.2, 8000, 0) and s['eval'] >= 1
    dev, ev = read(out / 'dev_metadata.csv'), read(out / 'eval_metadata.csv')
    real = _real_meta('dev').set_index('filename')
    assert (dev.scene_label.to_numpy() == real.scene_label[dev.filename].to_numpy()).all()
    assert (dev.record_time.to_numpy() == real.record_time[dev.filename].to_numpy()).all()
    assert set(ev.filename) <= set(_real_meta('eval').filename) and (ev.scene_label == '').all()
    a = tree_bytes(out)
    make_synthetic(tmp_path / 'again', preset='twin', n_clips=40, duration=0.2, sr=8000, progress=False)
    assert tree_bytes(tmp_path / 'again') == a                               # same seed and settings, same bytes
    r = run_cli(tmp_path / 'bad', '--preset', 'twin', '--labeled-frac', 0.5)
    assert r.returncode == 2 and 'cannot be set' in r.stderr

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
    "A linear model on clip-mean log-mels, on recording-grouped splits: well above chance, clearly below 100%; held-out sessions leak"
    b = synth_baselines(quick, split='recording')
    assert 2.5 * b['chance'] <= b['audio'] <= 0.9, b
    assert 2 * b['chance'] <= b['city'] <= 0.6, b      # city is nearly a label (as in CAS), but only nearly
    assert b['pair_error_share'] > 0.15, b              # errors concentrate on the 4 confusable pairs (4 of 45 class pairs: 0.09)
    leaky = synth_baselines(quick, split='session')
    assert leaky['audio'] >= b['audio'] + 0.1, (leaky, b)   # neighbouring sessions of a held-out session were in training
