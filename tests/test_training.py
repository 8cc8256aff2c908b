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
    assert balanced_accuracy_score([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((1 + 2 / 3) / 2)
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
    assert s0['split'] == 'random' and s0['datasets'] == ['tau2020', 'cochlscene'] and s0['n_train'] + s0['n_valid'] == 29   # li2025: no stations (seed 002, Table 1)
    m, info = load_model(out/'stage0_pretrain'/'model.pt')
    assert info['hparams']['metadata'] is False           # pre-trained on audio only; the head is replaced for stage 1
    m1, _ = load_model(out/'model.pt'); assert m1.metadata is True
