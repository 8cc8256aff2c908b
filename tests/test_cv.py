"End to end with fold models: `asc-train --cv K` (out-of-fold figures, the ensemble as teacher and model file), `--distill`, hard samples out of fold, bad combinations."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from conftest import run_cli
from asc_nbdev.all import *

ARGS = ['--demo', '--recipe', 'li2025', '--epochs', '2', '--n-clips', '240', '--cv', '3']

@pytest.fixture(scope='module')
def cv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('cv')/'run'
    r = run_cli('asc-train', *ARGS, '--out', out)
    return out, r, json.loads((out/'report.json').read_text())

def _labeled(out):
    m = read_meta(out/'data'/'dev_metadata.csv'); return m[m.label >= 0]

def test_out_of_fold_figures(cv_run):
    "Every trained stage: K models, figures out of fold over every labeled clip exactly once, each fold's figures"
    out, r, rep = cv_run
    lab = _labeled(out)
    trained = [s for s in rep['stages'] if s.get('role') is None]
    assert [s['name'] for s in trained] == ['stage1_train', 'stage3_retrain_r1']
    for s in trained:
        o = s['oof']
        assert (s['models'], o['n'], len(o['per_fold'])) == (3, len(lab), 3)
        assert sum(f['n_valid'] for f in o['per_fold']) == len(lab)
        assert s['accuracy'] == o['accuracy'] and 0 <= o['balanced_accuracy'] <= 1
        oof = pd.read_csv(out/s['name']/'oof_probs.csv', dtype={'filename': str})
        assert sorted(oof.filename) == sorted(lab.filename)                 # each labeled clip once
        np.testing.assert_allclose((oof[CLASSES].to_numpy().argmax(1) == oof.label).mean(), o['accuracy'])
        for i in range(3): assert (out/s['name']/f'fold{i}'/'model.pt').is_file()
        assert (out/s['name']/'folds.png').stat().st_size > 0
    assert rep['cv']['folds'] == 3 and sum(rep['cv']['valid']) == len(lab)
    assert '--cv 3' in r.stdout and 'out-of-fold' in r.stdout

def test_folds_group_recordings(cv_run):
    "No recording is in two folds' validation: each fold's validation clips come from recordings its training never saw"
    out, _, _ = cv_run
    oof = pd.read_csv(out/'stage1_train'/'oof_probs.csv', dtype={'filename': str})
    rec = _labeled(out).set_index('filename')['recording']
    assert oof.assign(rec=oof.filename.map(rec)).groupby('rec').fold.nunique().max() == 1

def test_pseudo_labels_stay_out_of_their_fold(cv_run):
    "A retrain fold trains on no pseudo-labeled clip that shares a recording with that fold's validation clips"
    out, _, rep = cv_run
    s3 = next(s for s in rep['stages'] if s['name'] == 'stage3_retrain_r1')
    pf = s3['oof']['per_fold']
    assert all('n_pseudo' in f for f in pf) and sum(f['pseudo_dropped'] for f in pf) > 0

def test_kept_on_out_of_fold_and_ensemble_model(cv_run, tmp_path):
    "The kept stage has the best out-of-fold figure; OUT/model.pt is its 3-model ensemble; asc-predict averages it to the run's submission"
    out, _, rep = cv_run
    monitor = json.loads((out/'recipe.json').read_text())['monitor']
    trained = [s for s in rep['stages'] if s.get('role') is None]
    assert rep['kept'] == max(reversed(trained), key=lambda s: s[monitor])['name']
    m, info = load_asc_model(out/'model.pt')
    assert isinstance(m, FoldEnsemble) and len(m) == 3 and info['extra']['cv'] == 3
    assert rep['final_model'] == dict(stage=rep['kept'], models=3, kind='fold ensemble', params=count_params(m))   # the three members' weights
    assert rep['estimate']['accuracy'] == next(s for s in trained if s['name'] == rep['kept'])['oof']['accuracy']
    run_cli('asc-predict', '--model', out/'model.pt', '--meta', out/'data'/'eval_metadata.csv', '--audio', out/'data'/'audio', '--out', tmp_path/'sub.csv')
    assert pd.read_csv(tmp_path/'sub.csv').equals(pd.read_csv(out/'submission.csv'))

def test_report_names_the_ensemble_and_its_cost(cv_run, tmp_path):
    "Before --distill replaces it (tests run in file order): model.pt is the 3-model ensemble, and asc-report gives its cost"
    out, _, _ = cv_run
    run_cli('asc-report', out, '--out', tmp_path/'rep', '--no-siblings')
    s = json.loads((tmp_path/'rep'/'summary.json').read_text())
    m = load_asc_model(out/'model.pt')[0]
    want = model_complexity(m, seconds=2.0)                                    # the demo's 2 s clips
    row = s['model']['fold ensemble of 3 mobileascnet']
    assert (row['params_M'], row['macs_M']) == (want['params_M'], want['macs_M'])
    one = model_complexity(m.members[0], seconds=2.0)
    assert abs(row['params_M'] - 3 * one['params_M']) <= 0.002                  # three members' weights

def test_pseudo_labels_from_the_ensemble(cv_run):
    "Round 1's teacher is the stage-1 ensemble: its saved probabilities are those of the 3 fold models averaged (then per session)"
    out, _, rep = cv_run
    tp = pd.read_csv(out/'stage2_pseudo_r1'/'teacher_probs.csv', dtype={'filename': str})
    dev = read_meta(out/'data'/'dev_metadata.csv'); unl = dev[dev.label < 0].reset_index(drop=True)
    cache = FeatureCache(out/'features')
    ps = []
    for i in range(3):
        m, info = load_asc_model(out/'stage1_train'/f'fold{i}'/'model.pt')
        ps.append(predict_probs(m, model_loader(cache, unl, info), device='cpu'))
    want = aggregate_probs(np.mean(ps, 0), unl, rep['aggregate'])
    np.testing.assert_allclose(tp[CLASSES].to_numpy(), want, atol=2e-4)
    assert rep['pseudo_rounds'][0]['teacher'] == 'stage1_train'

def test_distill_reuses_the_folds_and_gives_one_model(cv_run, tmp_path):
    "--distill on the same run: the fold stages resume, one student is trained and is OUT/model.pt (a single model), predicting with asc-predict"
    out, _, rep = cv_run
    r = run_cli('asc-train', *ARGS, '--distill', '--out', out)
    assert r.stdout.count('done before, skipped') >= 3
    rep2 = json.loads((out/'report.json').read_text())
    st = next(s for s in rep2['stages'] if s.get('role') == 'student')
    assert st['teacher'] == rep['kept'] and st['n_train'] == len(read_meta(out/'data'/'dev_metadata.csv'))
    m, info = load_asc_model(out/'model.pt')
    assert not isinstance(m, FoldEnsemble) and info['extra']['stage'] == 'stage4_distill'
    assert rep2['final_model']['kind'] == 'distilled student' and rep2['kept'] == rep['kept']
    assert 'distilled:' in r.stdout
    run_cli('asc-predict', '--model', out/'model.pt', '--meta', out/'data'/'eval_metadata.csv', '--audio', out/'data'/'audio', '--out', tmp_path/'sub.csv')
    assert pd.read_csv(tmp_path/'sub.csv').equals(pd.read_csv(out/'submission.csv'))

def test_distill_targets():
    "The student's targets: softened teacher probabilities; on labeled clips mixed with the true label"
    p = np.array([[.8, .2], [.5, .5], [.9, .1]])
    t = distill_targets(p, np.array([-1, 1, -1]), temperature=1.0, hard_weight=0.5)
    np.testing.assert_allclose(t, [[.8, .2], [.25, .75], [.9, .1]], atol=1e-6)
    soft = distill_targets(p, np.array([-1, -1, -1]), temperature=2.0, hard_weight=0.5)
    assert soft[0, 0] < .8 and np.allclose(soft.sum(1), 1)                 # a higher temperature flattens

def test_fold_training_targets_ignore_their_validation_labels(tmp_path, monkeypatch):
    "With --cv, what fold 0 trains on (pseudo-labels, the labels its sessions carry, hard-sample weights) does not change when fold 0's validation labels do"
    import asc_nbdev.pipeline.run as P   # where the run calls grouped_folds
    make_synthetic(tmp_path/'data', preset='tiny', n_clips=120, seed=0, progress=False)
    real, fixed = P.grouped_folds, {}
    def same_folds(df, k, split, seed):   # the folds depend on the labels (stratified): the same folds for both runs
        if 'f' not in fixed: fixed['f'] = real(df, k, split, seed)
        return fixed['f']
    monkeypatch.setattr(P, 'grouped_folds', same_folds)
    D = tmp_path/'data'
    cfg = RunConfig(recipe='atmaja2025', quick=True, audio=str(D/'audio'), meta=str(D/'dev_metadata.csv'), eval_meta=str(D/'eval_metadata.csv'),
                    truth=str(D/'truth.csv'), epochs=1, cv=3, set=['carry_labels=session'])   # one epoch: no epoch is chosen on validation
    run_pipeline(cfg.replace(out=str(tmp_path/'a')), progress=False, log=lambda *a: None)
    dev = pd.read_csv(D/'dev_metadata.csv', dtype=str, keep_default_na=False)
    rows = dev.index[dev.scene_label != ''][fixed['f'][0].valid]   # fold 0's validation clips (positions among the labeled rows)
    dev.loc[rows, 'scene_label'] = [CLASSES[(CLASSES.index(c) + 3) % len(CLASSES)] for c in dev.loc[rows, 'scene_label']]
    dev.to_csv(tmp_path/'dev2.csv', index=False)
    run_pipeline(cfg.replace(out=str(tmp_path/'b'), meta=str(tmp_path/'dev2.csv')), progress=False, log=lambda *a: None)
    same = lambda f: (tmp_path/'a'/f).read_bytes() == (tmp_path/'b'/f).read_bytes()
    for f in ['stage2_pseudo_r1/pseudo_labels_fold0.csv', 'stage1_train/fold0/hard_samples.csv', 'stage3_retrain_r1/fold0/hard_samples.csv']:
        assert same(f), f
    pl = pd.read_csv(tmp_path/'a'/'stage2_pseudo_r1'/'pseudo_labels_fold0.csv')
    assert (pl.source == 'carried').sum() > 0 and pl.accepted.sum() > 0
    assert not same('stage2_pseudo_r1/pseudo_labels_fold1.csv') and not same('stage1_train/fold1/hard_samples.csv')   # the others saw them

@pytest.mark.parametrize('args,msg', [
    (['--distill'], '--distill distils the fold ensemble of --cv K'),
    (['--cv', '3', '--folds', '3'], 'give one of them'),
    (['--cv', '1'], '--cv must be at least 2'),
    (['--cv', '3', '--student', 'baseline'], '--student is the recipe of the --distill student'),
])
def test_bad_combinations(tmp_path, args, msg):
    r = run_cli('asc-train', '--demo', *args, '--out', tmp_path/'o', check=False)
    assert r.returncode != 0 and msg in r.stderr, r.stderr[-2000:]

def test_report_of_a_cv_run(cv_run, tmp_path):
    "asc-report reads the out-of-fold predictions of a --cv run (no single validation split exists)"
    out, _, _ = cv_run
    r = run_cli('asc-report', out, '--out', tmp_path/'rep', '--no-siblings')
    assert 'out of fold (3 folds)' in r.stdout
    md = (tmp_path/'rep'/'index.md').read_text()
    assert 'validation (recording split), out of fold (3 folds)' in md
