import json
import numpy as np, pandas as pd, pytest
from conftest import run_cli
from asc_nbdev.all import *

HDR = 'filename,location,record_time,scene_label\n'
DEV_CSV, EVAL_CSV = cas2023_metadata('dev'), cas2023_metadata('eval')   # the real files, shipped with the package

@pytest.fixture(scope='module')
def dev(): return read_meta(DEV_CSV)

@pytest.fixture(scope='module')
def lab(dev): return dev[dev.label >= 0].reset_index(drop=True)

def test_real_csvs_read(dev):
    ev = read_meta(EVAL_CSV)
    assert (len(dev), int((dev.label >= 0).sum()), dev.session.nunique()) == (8700, 1740, 328)
    assert len(ev) == 1100 and (ev.label == -1).all()
    # six eval cities never occur in dev; all are in the vocabulary, so none is unknown
    unseen = set(ev.location) - set(dev.location)
    assert unseen == {'Shenyang', 'Tianjin', 'Nanchang', 'Guangzhou', 'Changchun', 'Taiyuan'}
    assert (ev.city != UNKNOWN_CITY).all()
    tf = time_features(dev.record_time)
    assert tf.shape == (8700, 8) and (tf.std(0) > 0.1).all()   # not the baseline's constant zeros
    # every labeled session has exactly one label
    lab = dev[dev.label >= 0]
    assert lab.groupby('session').label.nunique().max() == 1
    # 47 recordings, 46 of them with labeled clips, 3 of those with more than one label
    assert dev.recording.nunique() == 47
    n = lab.groupby('recording').label.nunique()
    assert len(n) == 46 and (n > 1).sum() == 3

def test_recording_ids_rules():
    t = pd.to_datetime
    df = pd.DataFrame({'location': ['A', 'A', 'A', 'A', 'B', 'B', 'A'],
                       'record_time': [t('2023-01-01 10:00:00'), t('2023-01-01 10:30:00'),   # exactly 30 min: chained
                                       t('2023-01-01 11:01:00'),                             # 31 min after 10:30: new recording
                                       t('2023-01-01 11:31:00'),                             # 30 min after 11:01: chained to it
                                       t('2023-01-01 10:10:00'), t('2023-01-01 10:40:00'),   # another location never chains with A
                                       pd.NaT]}, index=[10, 11, 12, 13, 14, 15, 16])
    r = recording_ids(df)
    assert list(r.index) == list(df.index) and r.name == 'recording'
    assert list(r) == ['A|2023-01-01 10:00:00'] * 2 + ['A|2023-01-01 11:01:00'] * 2 + ['B|2023-01-01 10:10:00'] * 2 + ['A|NaT']
    assert recording_ids(df, gap=31).nunique() == 3 and recording_ids(df, gap=29).nunique() == 7
    # the order of the rows does not matter; string times work too
    shuffled = df.sample(frac=1, random_state=0).assign(record_time=lambda d: d.record_time.dt.strftime('%Y-%m-%d %H:%M:%S'))
    assert recording_ids(shuffled).to_dict() == r.to_dict()
    with pytest.raises(ValueError, match='gap'): recording_ids(df, gap=-5)

def test_read_meta_adds_recording(tmp_path):
    p = tmp_path/'m.csv'
    p.write_text(HDR + 'a,Beijing,2023-06-18 18:44:34,Bus\nb,Beijing,2023-06-18 18:54:34,Bus\nc,Beijing,soon,\n')
    m = read_meta(p, on_bad_time='mask')
    assert list(m.recording) == ['Beijing|2023-06-18 18:44:34'] * 2 + ['Beijing|NaT']

def test_split_recording_disjoint_reproducible(lab):
    a, b = split_recording(lab), make_split(lab)
    assert a.strategy == b.strategy == 'recording' and np.array_equal(a.valid, b.valid) and np.array_equal(a.train, b.train)
    assert not set(lab.recording[a.train]) & set(lab.recording[a.valid])
    assert len(a.train) + len(a.valid) == len(lab) and 0.12 < len(a.valid) / len(lab) < 0.3
    assert set(lab.label[a.train]) == set(range(len(CLASSES)))    # every class keeps training clips
    c = split_recording(lab, seed=1)
    assert not np.array_equal(c.valid, a.valid) and not set(lab.recording[c.train]) & set(lab.recording[c.valid])
    # without a `recording` column (or with another gap) the recordings are computed
    d = split_recording(lab.drop(columns='recording'))
    assert np.array_equal(d.valid, a.valid)
    e = split_recording(lab, gap=720)
    r720 = recording_ids(lab, 720)
    assert not set(r720[e.train]) & set(r720[e.valid])

def test_split_recording_small_frames():
    t = pd.to_datetime
    two = pd.DataFrame({'location': ['A', 'A', 'B'], 'label': [0, 0, 1],
                        'record_time': [t('2023-01-01 10:00'), t('2023-01-01 10:10'), t('2023-01-01 10:00')]})
    s = split_recording(two)
    assert list(s.valid) == [0, 1] and 'fallback' in s.info and 'missing from training' in s.info['fallback']
    assert np.array_equal(split_recording(two, seed=7).valid, s.valid)
    # one class, three recordings: validation gets some, training keeps one
    three = pd.DataFrame({'location': ['A'] * 3, 'label': [2] * 3,
                          'record_time': [t('2023-01-01'), t('2023-01-02'), t('2023-01-03')]})
    for seed in range(5):
        s = split_recording(three, seed=seed)
        assert len(s.valid) >= 1 and len(s.train) >= 1 and 'fallback' not in s.info
    with pytest.raises(ValueError, match='at least 2 recordings'): split_recording(three.head(1))
    # unlabeled rows are kept (their recordings drawn like a class of their own)
    mixed = pd.concat([three, three.assign(label=-1, record_time=lambda d: d.record_time + pd.Timedelta('5h'))], ignore_index=True)
    s = split_recording(mixed)
    assert len(s.train) + len(s.valid) == 6 and len(s.valid) >= 1

def test_leakage_real(dev):
    lt = leakage_table(dev)
    assert list(lt.index) == list(SPLITS) and {'session', 'nearest', 'day', 'best', 'n_valid'} <= set(lt.columns)
    assert lt.best['random'] > 0.95 and lt.nearest['session'] > 0.7 and lt.best['recording'] < 0.6
    assert (lt.best == lt[list(LOOKUPS)].max(axis=1)).all()
    lt2 = leakage_table(dev, strategies=('session', 'recording'), seeds=(1, 2))
    assert list(lt2.index) == ['session', 'recording'] and 'best_sd' in lt2.columns
    assert lt2.nearest['session'] - lt2.nearest['recording'] > 0.2
    assert leakage_table(dev, strategies=('session',), seed=1).equals(leakage_table(dev, strategies=('session',), seeds=(1,)))

def test_splits_reproducible_and_disjoint(lab):
    for s in SPLITS:
        a, b = make_split(lab, s), make_split(lab, s)
        assert a.strategy == s and np.array_equal(a.valid, b.valid)
        assert not set(a.train) & set(a.valid)
    c = make_split(lab, 'session', seed=1)
    assert not np.array_equal(c.valid, make_split(lab, 'session').valid)
    ses = make_split(lab, 'session')
    assert not set(lab.session[ses.train]) & set(lab.session[ses.valid])

def test_dev_eval_overlap_real(dev):
    o = dev_eval_overlap(dev, read_meta(EVAL_CSV))
    assert (o['eval_sessions'], o['eval_clips'], o['same_session'], o['near_labeled']) == (160, 1100, 59, 68)
    assert (len(o['unseen_cities']), o['unseen_city_sessions'], o['unseen_city_clips']) == (6, 52, 400)

@pytest.mark.parametrize('text,msg', [
    ('', 'is empty'),
    (HDR, 'no rows'),
    ('filename,location,scene_label\na,Beijing,Bus\n', "missing column(s) ['record_time']"),
    (HDR + 'a,Beijing,2023-06-18 18:44:34,Bus\na,Beijing,2023-06-18 18:44:34,\n', "duplicate filename(s) ['a'] on lines 2, 3"),
    (HDR + 'a,Beijing,2023-06-18 18:44:34,Bus\nb,Beijing,2023-06-18 18:44:34,Beach\n', "line 3 ('Beach')"),
    (HDR + 'a,Beijing,2023-06-18 18:44:34,Bus\nb,Beijing,yesterday,Bus\n', 'unparseable record_time on line 3'),
    (HDR + 'a,,2023-06-18 18:44:34,Bus\n', 'empty location on line 2'),
])
def test_bad_csv_errors(tmp_path, text, msg):
    p = tmp_path/'m.csv'; p.write_text(text)
    with pytest.raises(MetadataError, match=None) as e: read_meta(p)
    assert msg in str(e.value) and str(p) in str(e.value)
    r = run_cli('asc-meta', p, check=False)
    assert r.returncode == 2 and msg in r.stderr

def test_unknown_city_and_bom(tmp_path):
    p = tmp_path/'m.csv'
    p.write_bytes(('\ufeff' + HDR + 'a,Atlantis,2023-06-18 18:44:34,Bus\nb,Beijing,2023-06-18 18:44,\n').encode('utf-8'))
    df = read_meta(p)
    assert list(df.city) == [UNKNOWN_CITY, CITIES.index('Beijing')] and list(df.label) == [0, -1]
    s = json.loads(run_cli('asc-meta', p, '--json').stdout)
    assert s['unknown_cities'] == ['Atlantis'] and s['rows'] == 2 and s['recordings'] == 2

def test_asc_meta_cli():
    s = json.loads(run_cli('asc-meta', DEV_CSV, '--json').stdout)
    assert {'rows', 'labeled', 'sessions', 'recordings', 'cities', 'unknown_cities', 'label_counts', 'leakage', 'leakage_detail'} <= set(s)
    assert (s['rows'], s['labeled'], s['sessions'], s['recordings']) == (8700, 1740, 328, 47)
    assert set(s['leakage']) == set(s['leakage_detail']) == set(SPLITS)
    for k, d in s['leakage_detail'].items():
        assert set(d) == set(LOOKUPS) and s['leakage'][k] == max(d.values())
    assert s['leakage']['random'] > 0.95 and s['leakage']['session'] > 0.7 and s['leakage']['recording'] < 0.6
    assert 'overlap' not in s
    txt = run_cli('asc-meta', DEV_CSV).stdout
    assert 'sessions: 328' in txt and 'recordings: 47' in txt and 'leakage' in txt and 'nearest' in txt

def test_asc_meta_eval_overlap():
    s = json.loads(run_cli('asc-meta', DEV_CSV, '--eval', EVAL_CSV, '--json').stdout)
    o = s['overlap']
    assert (o['eval_sessions'], o['same_session'], o['near_labeled'], o['unseen_city_sessions'], o['unseen_city_clips']) == (160, 59, 68, 52, 400)
    txt = run_cli('asc-meta', DEV_CSV, '--eval', EVAL_CSV).stdout
    assert 'eval vs dev: 160 eval sessions' in txt and 'never saw' in txt

def test_asc_meta_bad_eval(tmp_path):
    missing = tmp_path/'no_such_eval.csv'
    r = run_cli('asc-meta', DEV_CSV, '--eval', missing, check=False)
    assert r.returncode == 2 and '--eval' in r.stderr and str(missing) in r.stderr and 'Traceback' not in r.stderr
    bad = tmp_path/'bad_eval.csv'; bad.write_text('filename,location\na,Beijing\n')
    r = run_cli('asc-meta', DEV_CSV, '--eval', bad, check=False)
    assert r.returncode == 2 and str(bad) in r.stderr and "missing column(s) ['record_time', 'scene_label']" in r.stderr
