import json
import numpy as np, pandas as pd, pytest
from conftest import run_cli, DEV_CSV, EVAL_CSV
from asc_nbdev.all import *

HDR = 'filename,location,record_time,scene_label\n'

def test_real_csvs_read(shared_data):
    dev, ev = read_meta(DEV_CSV), read_meta(EVAL_CSV)
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

def test_leakage_real(shared_data):
    lt = leakage_table(read_meta(DEV_CSV))
    assert lt.accuracy['random'] > 0.95
    assert lt.accuracy['session'] < 0.6

def test_splits_reproducible_and_disjoint(shared_data):
    lab = read_meta(DEV_CSV).query('label >= 0').reset_index(drop=True)
    for s in SPLITS:
        a, b = make_split(lab, s), make_split(lab, s)
        assert a.strategy == s and np.array_equal(a.valid, b.valid)
        assert not set(a.train) & set(a.valid)
    c = make_split(lab, 'session', seed=1)
    assert not np.array_equal(c.valid, make_split(lab, 'session').valid)
    ses = make_split(lab, 'session')
    assert not set(lab.session[ses.train]) & set(lab.session[ses.valid])

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
    assert s['unknown_cities'] == ['Atlantis'] and s['rows'] == 2

def test_asc_meta_cli(shared_data):
    s = json.loads(run_cli('asc-meta', DEV_CSV, '--json').stdout)
    assert {'rows', 'labeled', 'sessions', 'cities', 'unknown_cities', 'label_counts', 'leakage'} <= set(s)
    assert (s['rows'], s['labeled'], s['sessions']) == (8700, 1740, 328)
    assert s['leakage']['random'] > 0.95 and s['leakage']['session'] < 0.6
    txt = run_cli('asc-meta', DEV_CSV).stdout
    assert 'sessions: 328' in txt and 'leakage' in txt
