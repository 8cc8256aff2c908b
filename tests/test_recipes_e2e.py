"""Every recipe (quick variants) through `run_pipeline` on tiny synthetic data, with values checked: training-set sizes
against the split and the pseudo-labels, the threshold path, the hard-sample branch with its reference model, figures
against the saved predictions; repeated runs (`--seeds`, `--folds`) and their summary."""
import json, os
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from conftest import run_cli
from asc_nbdev.all import *
from asc_nbdev.data.synthetic import make_synthetic
from sklearn.metrics import balanced_accuracy_score

EPOCHS = 1

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('e2e')/'data'
    make_synthetic(d, preset='tiny', n_clips=240, progress=False)
    return d

def _run(data, out, recipe, cbs=None, log_to='none', **kw):
    cfg = RunConfig(out=out, audio=data/'audio', meta=data/'dev_metadata.csv', recipe=recipe, **dict(dict(eval_meta=data/'eval_metadata.csv',
                    truth=data/'truth.csv', epochs=EPOCHS, log=log_to), **kw))
    return run_pipeline(cfg, cbs=cbs, progress=False, log=lambda *a: None)

def _dev(out, data):
    "The dev metadata as the run saw it (clips with features)"
    f = out/'features' if (out/'features').exists() else out.parent/'features'   # a repeated run's runs share one cache
    dev = read_meta(data/'dev_metadata.csv'); cache = FeatureCache(f)
    return dev[dev.filename.isin(set(cache.index.index))].reset_index(drop=True), cache

def _check_stage_figures(out, rep):
    "Every figure in [0, 1]; validation accuracy and balanced accuracy recomputed from the stage's valid_probs.csv"
    for s in rep['stages']:
        for k in ('accuracy', 'balanced_accuracy'): assert 0 <= s[k] <= 1, (s['name'], k, s[k])
        for k in ('accuracy', 'balanced_accuracy', 'seen_cities_accuracy', 'unseen_cities_accuracy'):
            if k in s.get('test', {}): assert 0 <= s['test'][k] <= 1
        vp = pd.read_csv(out/s['name']/'valid_probs.csv')
        pred, lab = vp[CLASSES].to_numpy().argmax(1), vp['label'].to_numpy()
        assert len(vp) == s['n_valid']
        assert s['accuracy'] == pytest.approx((pred == lab).mean(), abs=1e-6), s['name']
        assert s['balanced_accuracy'] == pytest.approx(balanced_accuracy_score(lab, pred), abs=1e-6), s['name']
    kept = next(s for s in rep['stages'] if s['name'] == rep['kept'])
    trained = [s for s in rep['stages'] if s['name'] not in ('stage0_pretrain', REFERENCE_STAGE)]
    assert rep['kept'] in [s['name'] for s in trained] and kept[get_recipe(rep['recipe'].split('-')[0]).monitor] == max(
        s[get_recipe(rep['recipe'].split('-')[0]).monitor] for s in trained)
    if 'test' in rep: assert rep['test']['accuracy'] == kept['test']['accuracy']

def _check_sizes(out, data, rep):
    "n_train: labeled training clips of the split; after pseudo-labeling, + accepted pseudo-labels - those sharing a validation recording"
    dev, _ = _dev(out, data)
    lab = dev[dev.label >= 0]
    s1 = next(s for s in rep['stages'] if s['name'] == 'stage1_train')
    assert s1['n_train'] + s1['n_valid'] == len(lab)
    valid = set(pd.read_csv(out/'stage1_train'/'valid_probs.csv', dtype={'filename': str}).filename)
    held = set(dev.recording[dev.filename.isin(valid)])
    for pr in rep.get('pseudo_rounds', []):
        r = pr['round']
        pl = pd.read_csv(out/f'stage2_pseudo_r{r}'/'pseudo_labels.csv', dtype={'filename': str})
        assert pr['total'] == len(pl) == int((dev.label < 0).sum()) and pr['accepted'] == int(pl.accepted.sum())
        if not pr['retrained']:
            assert pr['accepted'] == 0 and f'stage3_retrain_r{r}' not in [s['name'] for s in rep['stages']]
            continue
        acc = pl[pl.accepted].merge(dev[['filename', 'recording']], on='filename')
        dropped = int(acc.recording.isin(held).sum())
        s3 = next(s for s in rep['stages'] if s['name'] == f'stage3_retrain_r{r}')
        assert (s3['n_labeled'], s3['n_pseudo'], s3['pseudo_dropped']) == (s1['n_train'], pr['accepted'] - dropped, dropped)
        assert s3['n_train'] == s1['n_train'] + pr['accepted'] - dropped and s3['n_valid'] == s1['n_valid']

@pytest.mark.parametrize('name', ['baseline', 'li2025'])
def test_recipe_end_to_end(data, tmp_path, name):
    "baseline (argmax pseudo-labels of every clip) and li2025 (soft pseudo-labels): two stages, sizes and figures checked"
    out = tmp_path/name
    rep = _run(data, out, get_recipe(name, quick=True))
    assert rep['recipe'] == f'{name}-quick' and [s['name'] for s in rep['stages']] == ['stage1_train', 'stage3_retrain_r1']
    pr = rep['pseudo_rounds'][0]
    assert pr['accepted'] == pr['total'] and pr['retrained']       # argmax and soft (threshold 0) accept every clip
    pl = pd.read_csv(out/'stage2_pseudo_r1'/'pseudo_labels.csv')
    assert (name == 'li2025') == (set(CLASSES) <= set(pl.columns))     # soft labels carry the class probabilities
    _check_sizes(out, data, rep); _check_stage_figures(out, rep)
    m, info = load_asc_model(out/'model.pt')
    assert m.arch == get_recipe(name).model and info['extra']['stage'] == rep['kept']
    sub = pd.read_csv(out/'submission.csv'); assert len(sub) == rep['data']['eval_clips'] and sub.scene_label.isin(CLASSES).all()
    assert 'hard_samples' not in rep['stages'][0] and 'reference' not in rep

def test_yang2025_threshold_path(data, tmp_path):
    "yang2025: hard labels above a confidence threshold. The paper's 0.9 accepts nothing after one epoch (no retrain); a threshold "
    "at the median confidence accepts exactly the clips at or above it, and the retrain trains on them"
    r = get_recipe('yang2025', quick=True)
    assert r.pseudo == 'threshold' and r.pseudo_threshold == 0.9
    rep = _run(data, tmp_path/'a', r)
    pl = pd.read_csv(tmp_path/'a'/'stage2_pseudo_r1'/'pseudo_labels.csv', dtype={'filename': str})
    assert (pl.accepted == (pl.confidence >= 0.9)).all()
    if pl.accepted.any(): pytest.skip('one epoch already gave confident predictions: the no-accepted path is not reached here')
    assert [s['name'] for s in rep['stages']] == ['stage1_train'] and rep['kept'] == 'stage1_train'
    assert rep['pseudo_rounds'][0]['retrained'] is False and rep['pseudo_rounds'][0]['accepted'] == 0
    # the confidences are the teacher's, averaged per session: recomputed here from its model file
    dev, cache = _dev(tmp_path/'a', data); unl = dev[dev.label < 0].reset_index(drop=True)
    m, info = load_asc_model(tmp_path/'a'/'stage1_train'/'model.pt')
    probs = aggregate_probs(predict_probs(m, model_loader(cache, unl, info)), unl, 'session')
    np.testing.assert_allclose(pl.set_index('filename').loc[unl.filename, 'confidence'].to_numpy(), probs.max(1), atol=1e-5)
    thr = float(np.median(pl.confidence))
    rep2 = _run(data, tmp_path/'b', r.replace(pseudo_threshold=thr))
    pl2 = pd.read_csv(tmp_path/'b'/'stage2_pseudo_r1'/'pseudo_labels.csv')
    assert (pl2.accepted == (pl2.confidence >= thr)).all() and (pl2.reason[~pl2.accepted] == 'below threshold').all()
    assert 0 < rep2['pseudo_rounds'][0]['accepted'] == int((pl2.confidence >= thr).sum()) < len(pl2)
    assert [s['name'] for s in rep2['stages']] == ['stage1_train', 'stage3_retrain_r1']
    _check_sizes(tmp_path/'b', data, rep2); _check_stage_figures(tmp_path/'b', rep2)

def test_atmaja2025_hard_samples_from_the_reference(data, tmp_path):
    "atmaja2025: the baseline SE-Trans trains first (stage1_reference); its confidence on the FCNN's training clips gives the weights"
    out = tmp_path/'a'
    rep = _run(data, out, get_recipe('atmaja2025', quick=True))
    assert [s['name'] for s in rep['stages']] == [REFERENCE_STAGE, 'stage1_train', 'stage3_retrain_r1']
    ref = rep['stages'][0]
    assert ref['role'] == 'reference' and rep['kept'] != REFERENCE_STAGE
    assert rep['reference'] == dict(name=REFERENCE_STAGE, path=str(out/REFERENCE_STAGE/'model.pt'), trained=True,
                                    accuracy=ref['accuracy'], balanced_accuracy=ref['balanced_accuracy'])
    rr = load_json(out/REFERENCE_STAGE/'recipe.json')
    assert (rr['name'], rr['model'], rr['seed'], rr['epochs']) == ('baseline-quick-reference', 'se_trans', 1234, EPOCHS)
    assert load_asc_model(out/'stage1_train'/'model.pt')[0].arch == 'fcnn'
    dev, cache = _dev(out, data)
    rm, rinfo = load_asc_model(out/REFERENCE_STAGE/'model.pt')
    for s in rep['stages'][1:]:
        hs = pd.read_csv(out/s['name']/'hard_samples.csv', dtype={'filename': str})
        h = s['hard_samples']
        assert len(hs) == h['n'] == s['n_train'] and h['reference'] == REFERENCE_STAGE and h['hard'] == int(hs.hard.sum())
        assert hs.weight.mean() == pytest.approx(1, abs=1e-4) and h['weight_mean'] == pytest.approx(1, abs=1e-4)
        np.testing.assert_allclose(hs.weight, hard_sample_weights(hs.confidence.to_numpy()), rtol=1e-4)   # 1/(c + 1e-8), mean 1
        assert (hs.hard == (hs.confidence < 0.7)).all()
        assert (h['weight_min'], h['weight_max']) == pytest.approx((hs.weight.min(), hs.weight.max()), rel=1e-4)
        assert int(hs.pseudo.sum()) == s.get('n_pseudo', 0)
        # the confidence is the reference's (its own normalisation, no city/time dropout), not the FCNN's; audio first
        # (atmaja2025's default): its audio-only model's, so the audio step weighs its clips as a metadata-off run does
        clips = dev.set_index('filename').loc[hs.filename].reset_index()
        assert get_recipe('atmaja2025', quick=True).audio_first
        np.testing.assert_allclose(hs.confidence, predict_probs(audio_model(rm), model_loader(cache, clips, rinfo)).max(1), atol=1e-4)   # a GPU's kernels differ by ~2e-5
    _check_sizes(out, data, rep); _check_stage_figures(out, rep)
    assert 'training clips hard (confidence of stage1_reference < 0.7)' in format_report(rep)
    # a reference model file given by the user: no reference stage, the same confidences on the same clips
    rep2 = _run(data, tmp_path/'b', get_recipe('atmaja2025', quick=True), rounds=0, reference_model=out/REFERENCE_STAGE/'model.pt')
    assert [s['name'] for s in rep2['stages']] == ['stage1_train'] and rep2['reference']['trained'] is False
    assert rep2['stages'][0]['hard_samples']['reference'] == 'model.pt'
    a, b = (pd.read_csv(o/'stage1_train'/'hard_samples.csv') for o in (out, tmp_path/'b'))
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-6)
    with pytest.raises(ValueError, match='hard_samples off'):
        _run(data, tmp_path/'c', get_recipe('li2025', quick=True), reference_model=out/REFERENCE_STAGE/'model.pt')
    with pytest.raises(FileNotFoundError, match='reference model file not found'):
        _run(data, tmp_path/'c', get_recipe('atmaja2025', quick=True), reference_model=tmp_path/'nothere.pt')

def test_seeds_cli_and_report(data, tmp_path):
    "asc-train --seeds 2: two runs with training seeds 1234 and 1235 on the same validation clips; report.json keeps both and their mean and std"
    out = tmp_path/'rep'
    r = run_cli('asc-train', '--audio', data/'audio', '--meta', data/'dev_metadata.csv', '--eval-meta', data/'eval_metadata.csv',
                '--truth', data/'truth.csv', '--recipe', 'baseline', '--epochs', str(EPOCHS), '--rounds', '0', '--seeds', '2', '--out', out)
    rep = json.loads((out/'report.json').read_text())
    assert list(rep['runs']) == ['seed0', 'seed1'] and rep['seeds'] == [1234, 1235] and rep['folds'] is None
    assert [r_['seed'] for r_ in rep['runs'].values()] == [1234, 1235] and {r_['split_seed'] for r_ in rep['runs'].values()} == {1234}
    assert [load_json(out/n/'recipe.json')['seed'] for n in rep['runs']] == [1234, 1235]
    v = [set(pd.read_csv(out/n/'stage1_train'/'valid_probs.csv', dtype={'filename': str}).filename) for n in rep['runs']]
    assert v[0] == v[1]                                                     # same data, same validation split
    for fig, get in [('accuracy', lambda x: next(s for s in x['stages'] if s['name'] == x['kept'])['accuracy']),
                     ('balanced_accuracy', lambda x: next(s for s in x['stages'] if s['name'] == x['kept'])['balanced_accuracy']),
                     ('test.accuracy', lambda x: x['test']['accuracy']), ('stage1_train.test.balanced_accuracy', lambda x: x['stages'][0]['test']['balanced_accuracy'])]:
        vals = [get(x) for x in rep['runs'].values()]
        assert rep['summary'][fig]['n'] == 2 and rep['summary'][fig]['mean'] == pytest.approx(np.mean(vals))
        assert rep['summary'][fig]['std'] == pytest.approx(np.std(vals, ddof=1))
    assert rep['summary'] == summarize_runs(rep['runs'].values()) and sum(rep['kept'].values()) == 2
    assert 'mean ± std' in r.stdout and 'final (kept)' in r.stdout
    assert (out/'seed0'/'report.json').exists() and (out/'features'/'features.npy').exists() and not (out/'seed0'/'features').exists()
    r = run_cli('asc-report', out)
    assert 'stage1_train.accuracy' in r.stdout and (out/'report'/'index.md').exists()
    assert 'test.accuracy (test (eval part, truth))' in r.stdout

def test_grouped_folds(data, tmp_path):
    "run_repeats(folds=3): every labeled clip is validation exactly once, never in a recording that also trains"
    rep = run_repeats(RunConfig(out=tmp_path/'f', audio=data/'audio', meta=data/'dev_metadata.csv', recipe=get_recipe('li2025', quick=True), folds=3, rounds=0, epochs=EPOCHS), progress=False, log=lambda *a: None)
    assert list(rep['runs']) == ['fold0', 'fold1', 'fold2'] and rep['summary']['accuracy']['n'] == 3
    dev, _ = _dev(tmp_path/'f'/'fold0', data)
    lab = dev[dev.label >= 0]; seen = []
    for k, (n, r) in enumerate(rep['runs'].items()):
        assert r['fold'] == dict(fold=k, folds=3, valid_groups=r['fold']['valid_groups'])
        v = pd.read_csv(tmp_path/'f'/n/'stage1_train'/'valid_probs.csv', dtype={'filename': str}).filename
        vrec = set(lab.recording[lab.filename.isin(set(v))])
        assert not vrec & set(lab.recording[~lab.filename.isin(set(v))])    # whole recordings held out
        assert len(vrec) == r['fold']['valid_groups']
        seen += list(v)
    assert sorted(seen) == sorted(lab.filename)                              # each labeled clip validates exactly once
    assert 'fold' in format_report(rep['runs']['fold1']) and '3 grouped folds' in format_report(rep)

@pytest.mark.parametrize('args,msg', [
    (['--seeds', '0'], '--seeds must be at least 1'),
    (['--folds', '1'], '--folds must be at least 2'),
    (['--recipe', 'li2025', '--reference-model', 'x.pt'], '--reference-model weights hard samples'),
])
def test_repeat_bad_arguments(tmp_path, args, msg):
    r = run_cli('asc-train', '--demo', *args, '--out', tmp_path/'o', check=False)
    assert r.returncode == 2 and msg in r.stderr, r.stderr

def test_pipeline_callbacks_and_tensorboard(data, tmp_path):
    "run_pipeline(cbs=...) reaches every training stage; log_to='tensorboard' writes event files per stage; bad loggers fail early"
    from fastai.callback.core import Callback
    class Count(Callback):
        def __init__(self): self.fits, self.epochs = 0, 0
        def before_fit(self): self.fits += 1
        def after_epoch(self): self.epochs += 1
    cb = Count()
    rep = _run(data, tmp_path/'run', get_recipe('baseline', quick=True), epochs=2, cbs=[cb], log_to='tensorboard')
    assert len(rep['stages']) == 2   # baseline trains audio first: two fits per stage, the audio step's and the fusion's
    assert cb.fits == sum(2 if 'audio_epochs_run' in s else 1 for s in rep['stages']) == 4
    assert cb.epochs == sum(s['epochs_run'] + s.get('audio_epochs_run', 0) for s in rep['stages'])
    for s in rep['stages']:
        ev = list((tmp_path/'run'/s['name']/'tensorboard').glob('events.out.tfevents.*'))
        assert ev and ev[0].stat().st_size > 0, s['name']
    with pytest.raises(ValueError, match="unknown logger 'mlflow'"):
        _run(data, tmp_path/'bad', get_recipe('baseline', quick=True), log_to='mlflow')
