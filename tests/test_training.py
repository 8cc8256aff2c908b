"Recipes, losses, hard samples and pseudo-labels on small inputs; external readers and stage 0 on folders in the real layouts."
import numpy as np, pandas as pd, pytest, torch, torch.nn.functional as F
from conftest import run_cli
from asc_nbdev.all import *

def test_recipes():
    assert list(RECIPES) == ['baseline', 'yang2025', 'li2025', 'atmaja2025']
    assert (get_recipe('yang2025').lr, get_recipe('yang2025').patience, get_recipe('yang2025').mixup_alpha) == (5e-4, 20, 1.0)
    a = get_recipe('atmaja2025'); assert (a.smoothing, a.hard_samples, a.hard_threshold, a.model) == (0.1, True, 0.7, 'fcnn')
    with pytest.raises(KeyError, match='valid recipes'): get_recipe('x')
    q = get_recipe('yang2025', quick=True); assert q.epochs < get_recipe('yang2025').epochs and q.bs < 64 and q.name == 'yang2025-quick'
    assert 'lr' in str(q) and Recipe.from_dict(q.to_dict()) == q

def test_loss_by_hand():
    pred = torch.tensor([[1., 2., 0.5]]); y = torch.tensor([1])
    logp = F.log_softmax(pred, 1)[0]
    assert torch.isclose(ASCLoss(0.1)(pred, y), -(0.9 * logp[1] + 0.1 * logp.mean()))
    assert torch.isclose(ASCLoss()(pred, y, torch.tensor([3.])), -3 * logp[1])
    assert torch.isclose(ASCLoss()(pred, torch.tensor([[0.2, 0.8, 0.]])), -(0.2 * logp[0] + 0.8 * logp[1]))

def test_step_decay_and_metrics_reset():
    from asc_nbdev.train.learner import balanced_accuracy
    assert balanced_accuracy([0, 1, 1, 1], [0, 0, 1, 1]) == pytest.approx((1 + 2 / 3) / 2)   # (targ, pred), as sklearn's
    class O:
        def __init__(s): s.hypers = [{'lr': 1.0}]
    cb = StepDecay(2, 0.9); cb.learn = type('L', (), {'opt': O(), 'epoch': 0})()
    cb.before_fit()
    lrs = []
    for e in range(6): cb.learn.epoch = e; cb.before_epoch(); lrs.append(cb.learn.opt.hypers[0]['lr'])
    np.testing.assert_allclose(lrs, [1, 1, .9, .9, .81, .81])

def test_hard_sample_weights():
    w = hard_sample_weights([0.5, 1.0])
    np.testing.assert_allclose(w, [4 / 3, 2 / 3], rtol=1e-6)
    assert list(hard_mask([0.69, 0.7])) == [True, False]

def test_pseudo_label_errors():
    m = pd.DataFrame({'filename': ['a'], 'session': ['s']})
    with pytest.raises(ValueError, match='1 predictions for 2 clips'): pseudo_label(np.ones((1, 10)) / 10, pd.concat([m, m]))
    with pytest.raises(ValueError, match='unknown pseudo-label mode'): pseudo_label(np.ones((1, 10)) / 10, m, 'sometimes')

def test_external_readers_real_layouts(tmp_path):
    tau = read_tau2020(fake_tau2020(tmp_path/'TAU-urban-acoustic-scenes-2020-mobile-development', n_per_class=2))
    assert set(tau.columns) >= {'filename', 'scene_label', 'label', 'source_label', 'dataset', 'fold'}
    assert tau.attrs['dropped'] == {'street_pedestrian': 2, 'tram': 2} and len(tau) == 16
    assert set(tau.source_label[tau.scene_label == 'Metro']) == {'metro', 'metro_station'}
    c = read_cochlscene(fake_cochlscene(tmp_path/'CochlScene', n_per_class=1))
    cb = read_cochlscene(tmp_path/'CochlScene', cafe_as_bar=True)
    assert 'Bar' not in set(c.scene_label) and (cb.scene_label == 'Bar').sum() == 3
    assert c.attrs['dropped'] == {k: 3 for k in ['Cafe', 'Car', 'CrowdedIndoor', 'Elevator', 'Kitchen', 'ResidentialArea', 'Restroom']}
    assert set(c.source_label[c.scene_label == 'Metro']) == {'Subway', 'SubwayStation'}

def test_external_bad_layouts(tmp_path):
    (tmp_path/'e').mkdir()
    with pytest.raises(ExternalDataError, match='no meta.csv'): read_tau2020(tmp_path/'e')
    with pytest.raises(ExternalDataError, match='folder not found'): read_cochlscene(tmp_path/'nothere')
    t = fake_tau2020(tmp_path/'t', n_per_class=1)
    pd.read_csv(t/'meta.csv', sep='\t').drop(columns='identifier').to_csv(t/'meta.csv', sep='\t', index=False)
    with pytest.raises(ExternalDataError, match=r"missing column\(s\) \['identifier'\]"): read_tau2020(t)
    t2 = fake_tau2020(tmp_path/'t2', n_per_class=1)
    for w in (t2/'audio').glob('*.wav'): w.unlink()
    with pytest.raises(ExternalDataError, match='none of the 10 audio files'): read_tau2020(t2)
    c = fake_cochlscene(tmp_path/'c', n_per_class=1); (c/'Val'/'Beach').mkdir()
    with pytest.raises(ExternalDataError, match="unknown class folder 'Beach'"): read_cochlscene(c)

def test_asc_train_with_pretraining(tmp_path):
    tau = fake_tau2020(tmp_path/'tau', n_per_class=2, seconds=1.0, sr=48000)
    coc = fake_cochlscene(tmp_path/'coc', n_per_class=1, seconds=1.0)
    out = tmp_path/'run'
    r = run_cli('asc-train', '--demo', '--recipe', 'li2025', '--epochs', '2', '--n-clips', '120', '--rounds', '0',
                '--pretrain', f'tau2020={tau}', '--pretrain', f'cochlscene={coc}', '--out', out)
    import json
    rep = json.loads((out/'report.json').read_text())
    assert [s['name'] for s in rep['stages']] == ['stage0_pretrain', 'stage1_train']
    s0 = rep['stages'][0]
    assert s0['split'] == 'random' and s0['datasets'] == ['tau2020', 'cochlscene'] and s0['n_train'] + s0['n_valid'] == 29   # li2025: no stations (li2025, Table 1)
    m, info = load_asc_model(out/'stage0_pretrain'/'model.pt')
    assert info['hparams']['metadata'] is False           # pre-trained on audio only; the head is replaced for stage 1
    m1, _ = load_asc_model(out/'model.pt'); assert m1.metadata is True

def _toy_dls(n=12, seed=0):
    "Labeled DataLoaders over a small in-memory feature array (no audio): a cache-like object and metadata"
    rng = np.random.default_rng(seed)
    feats = rng.normal(3, 2, (n, 20, 64)).astype(np.float32)
    class C:
        features = feats; index = pd.Series(np.arange(n), index=[f'c{i}' for i in range(n)])
        def __contains__(self, k): return k in self.index.index
        def rows(self, names): return self.index.loc[list(names)].to_numpy()
    meta = pd.DataFrame({'filename': [f'c{i}' for i in range(n)], 'location': 'Beijing', 'city': CITIES.index('Beijing'),
                         'record_time': '2020-01-01 10:00:00', 'time_ok': True, 'label': np.arange(n) % 3,
                         'session': [f's{i}' for i in range(n)], 'recording': [f'r{i}' for i in range(n)]})
    return asc_dataloaders(meta, C(), 'random', bs=4, valid_pct=0.25, city_dropout=0.9, time_dropout=0.9), meta, C()

def test_weight_hard_samples_uses_the_reference_statistics():
    "The reference predicts in order, with its own normalisation and no city/time dropout; weights mean 1, hard below the threshold"
    dls, meta, cache = _toy_dls()
    seen = []
    class Ref(torch.nn.Module):   # a 'model' whose confidence is a known function of its inputs
        def forward(self, x, city, t):
            seen.append((x.clone(), city.clone(), t.clone()))
            z = torch.zeros(len(x), N_CLASSES); z[:, 0] = x.mean((1, 2, 3)) * 4; return z
    mean, std = np.full(64, 1., np.float32), np.full(64, 2., np.float32)
    res = weight_hard_samples(dls, Ref(), 0.7, device='cpu', stats=(mean, std))
    x = torch.cat([s[0] for s in seen]); city = torch.cat([s[1] for s in seen]); t = torch.cat([s[2] for s in seen])
    raw = torch.from_numpy(cache.features[cache.rows(dls.train.items.names)])
    torch.testing.assert_close(x[:, 0], (raw - 1) / 2)                                  # the reference's statistics, not the loader's
    assert (city.numpy() == dls.train.items.city).all() and (t.numpy() == dls.train.items.time).all()   # no dropout
    z = np.zeros((len(x), N_CLASSES)); z[:, 0] = ((raw - 1) / 2).mean((1, 2)).numpy() * 4
    p = np.exp(z - z.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(res['confidence'], p.max(1), rtol=1e-5)
    np.testing.assert_allclose(dls.train.items.w, hard_sample_weights(p.max(1)), rtol=1e-5)
    assert dls.train.items.w.mean() == pytest.approx(1, abs=1e-6) and (dls.valid.items.w == 1).all()
    assert list(res['names']) == list(dls.train.items.names)
    s = hard_sample_summary(res)
    assert (s['n'], s['hard']) == (len(x), int((p.max(1) < 0.7).sum())) and s['weight_max'] == pytest.approx(dls.train.items.w.max())
    assert len(dls.one_batch()) == 5                                                    # batches carry the weights

def test_grouped_folds_real_metadata():
    "5 folds over the 47 recordings of the real dev metadata: disjoint, covering, whole recordings, every fold with several classes"
    dev = read_meta(cas2023_metadata('dev')); lab = dev[dev.label >= 0].reset_index(drop=True)
    folds = grouped_folds(dev, 5, seed=1234)
    assert len(folds) == 5 and all(f.strategy == 'recording' and f.info['folds'] == 5 for f in folds)
    allv = np.concatenate([f.valid for f in folds])
    assert sorted(allv) == list(range(len(lab)))
    for f in folds:
        assert not set(lab.recording.iloc[f.valid]) & set(lab.recording.iloc[f.train])
        assert f.info['valid_groups'] == lab.recording.iloc[f.valid].nunique() and lab.label.iloc[f.valid].nunique() >= 3
    assert [list(f.valid) for f in grouped_folds(dev, 5, seed=1234)] == [list(f.valid) for f in folds]   # repeatable
    assert [list(f.valid) for f in grouped_folds(dev, 5, seed=1)] != [list(f.valid) for f in folds]
    s = grouped_folds(dev, 3, 'session')
    assert all(not set(lab.session.iloc[f.valid]) & set(lab.session.iloc[f.train]) for f in s)
    with pytest.raises(ValueError, match='at least 2'): grouped_folds(dev, 1)
    with pytest.raises(ValueError, match='need at least 60 recordings'): grouped_folds(dev, 60)

def test_summarize_runs_by_hand():
    st = lambda n, a, t=None: dict(name=n, accuracy=a, balanced_accuracy=a / 2, seconds=1.0, **({'test': {'accuracy': t, 'n': 9}} if t is not None else {}))
    reps = [dict(kept='stage1_train', stages=[st('stage1_train', .5, .4)], test={'accuracy': .4, 'n': 9}),
            dict(kept='stage3_retrain_r1', stages=[st('stage1_train', .7, .2), st('stage3_retrain_r1', .9, .6)], test={'accuracy': .6, 'n': 9},
                 pseudo_rounds=[dict(round=1, accepted=5, accuracy=float('nan'))])]
    s = summarize_runs(reps)
    assert s['accuracy'] == dict(mean=pytest.approx(.7), std=pytest.approx(np.std([.5, .9], ddof=1)), n=2)
    assert s['stage1_train.test.accuracy']['mean'] == pytest.approx(.3) and s['stage3_retrain_r1.accuracy'] == dict(mean=.9, std=None, n=1)
    assert s['pseudo_r1.accepted']['n'] == 1 and 'pseudo_r1.accuracy' not in s         # NaN is no figure
    assert 'test.n' not in s and 'stage1_train.test.n' not in s
    txt = format_report(dict(recipe='x', split='recording', metadata=True, seeds=[1, 2], folds=None, split_seed=1, runs=dict(a=reps[0], b=reps[1]),
                             summary=s, kept={'stage1_train': 1, 'stage3_retrain_r1': 1}))
    assert '0.700 ± 0.283' in txt and 'stage1_train in 1 of 2 runs' in txt
