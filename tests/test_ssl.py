"Learning from the unlabeled audio, end to end: BYOL-A pre-training, FixMatch, labels that sessions carry, test-time adaptation; bad combinations"
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import run_cli
from asc_nbdev.all import *

TINY = ['--demo', '--n-clips', '200', '--epochs', '2']

@pytest.fixture(scope='module')
def ssl_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('ssl')/'run'
    r = run_cli('asc-train', *TINY, '--ssl-pretrain', '--ssl-transductive', '--set', 'ssl_epochs=2', '--ssl', 'fixmatch', '--tta', 'bn', '--out', out)
    return out, r, json.loads((out/'report.json').read_text())

def test_byol_then_fixmatch_then_tta(ssl_run):
    out, r, rep = ssl_run
    assert [s['name'] for s in rep['stages']] == ['stage0_ssl', 'stage1_train', 'stage2_fixmatch']
    pre = rep['ssl_pretrain']
    assert pre['method'] == 'BYOL-A' and pre['transductive'] and pre['clips'] == rep['data']['dev_clips'] + rep['data']['eval_clips']
    assert pre['epochs'] == 2 and (out/'stage0_ssl'/'history.csv').exists()
    fm = pd.read_csv(out/'stage2_fixmatch'/'fixmatch.csv')
    assert list(fm.columns[:4]) == ['epoch', 'unlabeled', 'passed', 'share'] and (fm.unlabeled > 0).all() and fm.accuracy.notna().any()
    assert rep['tta']['mode'] == 'bn' and 0 <= rep['tta']['test']['accuracy'] <= 1 and 'test-time adaptation (bn)' in r.stdout
    assert rep['kept'] in ('stage1_train', 'stage2_fixmatch') and 'pseudo_rounds' not in rep

def test_predict_with_tta(ssl_run, tmp_path):
    out, _, rep = ssl_run
    D = out/'data'
    r = run_cli('asc-predict', '--model', out/'model.pt', '--meta', D/'eval_metadata.csv', '--audio', D/'audio', '--out', tmp_path/'s.csv',
                '--probs', tmp_path/'p.csv', '--tta', 'bn')
    assert '[tta] batch norm adapted' in r.stdout and len(pd.read_csv(tmp_path/'s.csv')) == rep['submission']['rows']
    bad = run_cli('asc-predict', '--model', out/'model.pt', '--tta', 'bn', next((D/'audio').glob('*.wav')), check=False)
    assert bad.returncode == 2 and '--tta adapts to the clips of a metadata CSV' in bad.stderr

def test_carried_labels_in_the_round(tmp_path):
    "carry_labels=session: the labels sessions carry replace the model's where they exist (off by default: bench/demo_carried.md)"
    assert get_recipe('li2025').carry_labels == 'off'
    run_cli('asc-train', *TINY, '--set', 'carry_labels=session', '--out', tmp_path/'c')
    rep = json.loads((tmp_path/'c'/'report.json').read_text())
    pr = rep['pseudo_rounds'][0]
    assert pr['carried'] > 0 and pr['accuracy_carried'] == 1.0   # synthetic sessions hold one scene: the labels they carry are right
    pl = pd.read_csv(tmp_path/'c'/'stage2_pseudo_r1'/'pseudo_labels.csv')
    assert (pl.source == 'carried').sum() == pr['carried'] and pl[pl.source == 'carried'].accepted.all()

@pytest.mark.parametrize('args,msg', [(['--ssl', 'fixmatch', '--rounds', '1'], '--ssl fixmatch replaces the pseudo-label rounds'),
                                      (['--ssl-transductive'], '--ssl-transductive goes with --ssl-pretrain'),
                                      (['--ssl', 'fixmatch', '--teacher', 'm:f'], 'both replace the pseudo-label rounds'),
                                      (['--set', 'pseudo=carried'], "pseudo 'carried' keeps the labels sessions carry")])
def test_bad_combinations(tmp_path, args, msg):
    r = run_cli('asc-train', '--demo', *args, '--out', tmp_path/'o', check=False)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
