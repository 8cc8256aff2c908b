"The `asc-report` command on a tiny finished run: files, numbers against report.json and by hand, comparison, no truth, bad folders"
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest
from asc_nbdev.core import *
from asc_nbdev.processes import *
from asc_nbdev.files import *
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.pipeline.config import RunConfig


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "A tiny run laid out as `asc-train --demo` does (data in RUN/data), and a metadata-off sibling; a few seconds"
    from asc_nbdev.data.synthetic import make_synthetic
    from asc_nbdev.pipeline.run import run_pipeline
    from asc_nbdev.train.recipes import get_recipe
    root = tmp_path_factory.mktemp('eval'); run, off = root/'run', root/'run-off'
    D = run/'data'
    make_synthetic(D, preset='tiny', n_clips=160, labeled_frac=0.5, progress=False)
    run_pipeline(RunConfig(out=run, audio=D/'audio', meta=D/'dev_metadata.csv', recipe=get_recipe('li2025', quick=True, epochs=2), eval_meta=D/'eval_metadata.csv', truth=D/'truth.csv'), progress=False, log=lambda *a: None)
    # the sibling: only its report.json is read, so a copy with metadata off and other numbers stands in for a second training
    rj = json.loads((run/'report.json').read_text())
    rj['metadata'] = False
    for st in rj['stages']: st['accuracy'] = st['accuracy'] / 2; st['test']['accuracy'] = 0.125
    rj['test']['accuracy'] = 0.125
    off.mkdir(); (off/'report.json').write_text(json.dumps(rj))
    other = root/'run-other-split'; other.mkdir()          # differs in more than metadata: not a sibling
    (other/'report.json').write_text(json.dumps({**rj, 'split': 'random'}))
    return run, off


@pytest.fixture(scope='module')
def cli():
    "Run asc-report (installed by the test command) in a fresh process"
    from conftest import cli_runner
    return cli_runner('asc-report', timeout=300)


@pytest.fixture(scope='module')
def report(runs, cli):
    run, _ = runs
    r = cli(run, '--html')
    assert r.returncode == 0, r.stderr
    return run, r, json.loads((run/'report'/'summary.json').read_text())


VALID, TEST = 'validation (recording split)', 'test (eval part, truth)'
_kept = lambda rj: next(s for s in rj['stages'] if s['name'] == rj['kept'])   # the stage model.pt holds

def test_files(report):
    run, r, s = report
    d = run/'report'
    for f in ['index.md', 'index.html', 'summary.json', 'stages.png', 'confusion_valid.png', 'confusion_test.png',
              'confidence_valid.png', 'confidence_test.png', 'city_hour_valid.png', 'city_hour_test.png', 'pseudo_r1.png']:
        assert (d/f).is_file() and (d/f).stat().st_size > 0, f
    assert not list(d.glob('*.tmp*')) and not list(d.glob('.*'))              # atomic writes leave nothing behind
    md = (d/'index.md').read_text()
    for img in pd.Series(md.split('](')[1:]).str.split(')').str[0]: assert (d/img).is_file(), img
    for split in (VALID, TEST, 'unlabeled dev clips (truth)'): assert split in md, split
    assert '<table>' in (d/'index.html').read_text()
    assert str(d/'index.md') in r.stdout and VALID in r.stdout and TEST in r.stdout


def test_stage_numbers_equal_report_json(report):
    run, _, s = report
    rj = json.loads((run/'report.json').read_text())
    rows = pd.DataFrame(s['stages'])
    v, t = rows[rows.split == VALID], rows[rows.split == TEST]
    assert list(v.stage) == [x['name'] for x in rj['stages']]
    np.testing.assert_allclose(v.accuracy, [x['accuracy'] for x in rj['stages']])
    np.testing.assert_allclose(v.balanced_accuracy, [x['balanced_accuracy'] for x in rj['stages']])
    np.testing.assert_allclose(t.accuracy, [x['test']['accuracy'] for x in rj['stages']])
    np.testing.assert_allclose(t.unseen_cities_accuracy, [x['test']['unseen_cities_accuracy'] for x in rj['stages']])
    # the final stage's validation predictions give back its accuracy
    assert s['splits'][VALID]['accuracy'] == pytest.approx(_kept(rj)['accuracy'], abs=1e-6)
    assert s['splits'][VALID]['balanced_accuracy'] == pytest.approx(_kept(rj)['balanced_accuracy'], abs=1e-6)


def test_per_class_by_hand(report):
    "Precision/recall/F1 from a confusion matrix counted here with a loop"
    run, _, s = report
    vp = pd.read_csv(run/'stage3_retrain_r1'/'valid_probs.csv')
    pred, true = vp[CLASSES].to_numpy().argmax(1), vp['label'].to_numpy()
    cm = np.zeros((N_CLASSES, N_CLASSES), int)
    for a, b in zip(true, pred): cm[a, b] += 1
    pc = s['splits'][VALID]['per_class']
    for k, c in enumerate(CLASSES):
        assert pc[c]['support'] == cm[k].sum()
        if cm[k].sum(): assert pc[c]['recall'] == pytest.approx(cm[k, k] / cm[k].sum())
        else: assert pc[c]['recall'] is None
        if cm[:, k].sum(): assert pc[c]['precision'] == pytest.approx(cm[k, k] / cm[:, k].sum())
        else: assert pc[c]['precision'] is None
        if cm[k].sum() and cm[k, k]:
            p, r = cm[k, k] / cm[:, k].sum(), cm[k, k] / cm[k].sum()
            assert pc[c]['f1'] == pytest.approx(2 * p * r / (p + r))
    present = cm.sum(1) > 0
    assert s['splits'][VALID]['balanced_accuracy'] == pytest.approx(np.mean(np.diag(cm)[present] / cm.sum(1)[present]))


def test_test_split_by_hand(report):
    "Test numbers from eval_probs.csv against truth.csv; per city with seen/unseen from the dev metadata; per hour"
    run, _, s = report
    ep = pd.read_csv(run/'eval_probs.csv', dtype={'filename': str})
    truth = pd.read_csv(run/'data'/'truth.csv', dtype=str).set_index('filename').scene_label
    ev = read_meta(run/'data'/'eval_metadata.csv').set_index('filename').loc[ep.filename]
    dev = read_meta(run/'data'/'dev_metadata.csv')
    ok = np.array([CLASSES[i] for i in ep[CLASSES].to_numpy().argmax(1)]) == truth.loc[ep.filename].to_numpy()
    t = s['splits'][TEST]
    assert t['n'] == len(ep) and t['accuracy'] == pytest.approx(ok.mean())
    seen = ev.location.isin(set(dev.location)).to_numpy()
    assert (~seen).any(), 'the tiny synthetic eval part should hold unseen cities'
    assert t['unseen_cities_accuracy'] == pytest.approx(ok[~seen].mean()) and t['unseen_cities_n'] == (~seen).sum()
    for city, row in t['per_city'].items():
        m = (ev.location == city).to_numpy()
        assert row['n'] == m.sum() and row['accuracy'] == pytest.approx(ok[m].mean()) and row['seen'] == (city in set(dev.location))
    hours = ev.record_time.dt.hour.to_numpy()
    for h, row in t['per_hour'].items(): assert row['accuracy'] == pytest.approx(ok[hours == int(h)].mean())


def test_pseudo_and_compare(report, runs):
    run, off = runs
    _, _, s = report
    rj, rj_off = (json.loads((p/'report.json').read_text()) for p in (run, off))
    ps = s['pseudo_labels, unlabeled dev clips (truth)']['1']
    assert ps['accepted'] == rj['pseudo_labels']['accepted'] and ps['clips'] == rj['pseudo_labels']['total']
    assert ps['accuracy_accepted'] == pytest.approx(rj['pseudo_labels']['accuracy'])
    cmp = pd.DataFrame.from_dict(s['compare'], orient='index')          # the sibling run-off was found on its own
    assert list(cmp.columns) == ['run (metadata on)', 'run-off (metadata off)', 'difference']
    row = f'stage1_train accuracy, {VALID}'
    assert cmp.loc[row, 'run (metadata on)'] == pytest.approx(rj['stages'][0]['accuracy'])
    assert cmp.loc[row, 'run-off (metadata off)'] == pytest.approx(rj_off['stages'][0]['accuracy'])
    assert cmp.loc[f'final accuracy, {TEST}', 'difference'] == pytest.approx(rj['test']['accuracy'] - rj_off['test']['accuracy'])
    lk = s['leakage']
    assert set(lk) == {'validation (random split)', 'validation (session split)', 'validation (recording split) (used by this run)',
                       'validation (city split)'}


def test_python_api(runs):
    from asc_nbdev.report.render import evaluate_run
    run, off = runs
    rep = evaluate_run(run, compare=[off], siblings=False)
    assert list(rep.splits) == [VALID, TEST] and rep.compare.shape[1] == 3 and rep.notes == []
    assert rep.stages.split.isin([VALID, TEST]).all()


def test_out_and_no_truth(runs, cli, tmp_path):
    "A copy of the run without its data: validation numbers only, and notes on what is missing; --out elsewhere"
    run, _ = runs
    cp = tmp_path/'copy'
    shutil.copytree(run, cp, ignore=shutil.ignore_patterns('data', 'report', 'features'))
    rj = json.loads((cp/'report.json').read_text())          # and without the data paths report.json records
    for k in ('audio', 'meta', 'eval_meta', 'truth'): rj['data'][k] = None
    (cp/'report.json').write_text(json.dumps(rj))
    r = cli(cp, '--out', tmp_path/'rep', '--no-siblings')
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path/'rep'/'summary.json').read_text())
    assert list(s['splits']) == [VALID] and 'leakage' not in s and 'compare' not in s
    assert 'no truth file' in r.stdout and 'no dev metadata' in r.stdout
    assert not (cp/'report').exists()
    # the metadata given: cities, hours and leakage come back; still no test numbers
    r = cli(cp, '--out', tmp_path/'rep2', '--meta', run/'data'/'dev_metadata.csv', '--eval-meta', run/'data'/'eval_metadata.csv')
    s = json.loads((tmp_path/'rep2'/'summary.json').read_text())
    assert r.returncode == 0 and 'per_city' in s['splits'][VALID] and 'leakage' in s and TEST not in s['splits']


def test_not_a_run(runs, cli, tmp_path):
    run, _ = runs
    r = cli(tmp_path/'nowhere')
    assert r.returncode == 2 and 'no such folder' in r.stderr
    (tmp_path/'empty').mkdir()
    r = cli(tmp_path/'empty')
    assert r.returncode == 2 and 'report.json is missing' in r.stderr and 'Traceback' not in r.stderr
    cp = tmp_path/'broken'
    shutil.copytree(run, cp, ignore=shutil.ignore_patterns('data', 'report', 'features'))
    rj = json.loads((cp/'report.json').read_text())          # and without the data paths report.json records
    for k in ('audio', 'meta', 'eval_meta', 'truth'): rj['data'][k] = None
    (cp/'report.json').write_text(json.dumps(rj))
    (cp/'stage1_train'/'valid_probs.csv').unlink()
    r = cli(cp)
    assert r.returncode == 2 and 'stage1_train/valid_probs.csv is missing' in r.stderr
    (cp/'report.json').unlink()
    r = cli(cp)
    assert r.returncode == 2 and 'stage folders found' in r.stderr
    r = cli(run, '--truth', tmp_path/'no-truth.csv')
    assert r.returncode == 2 and 'no-truth.csv' in r.stderr


def test_compare_option(runs, cli, tmp_path):
    "--compare puts any finished runs beside this one and says when they differ in more than metadata"
    run, off = runs
    r = cli(run, '--out', tmp_path/'r', '--compare', off, '--compare', run.parent/'run-other-split')
    assert r.returncode == 0, r.stderr
    cmp = pd.DataFrame.from_dict(json.loads((tmp_path/'r'/'summary.json').read_text())['compare'], orient='index')
    assert list(cmp.columns) == ['run (metadata on)', 'run-off (metadata off)', 'run-other-split (metadata off)']
    assert 'split differ' in (tmp_path/'r'/'index.md').read_text()
    r = cli(run, '--out', tmp_path/'r2', '--compare', tmp_path/'not-a-run')
    assert r.returncode == 2 and 'not-a-run is not a finished run: report.json is missing' in r.stderr
