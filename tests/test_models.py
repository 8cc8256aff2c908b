"Models: the shared interface (shapes, metadata, unknown cities, gradients, head swap), the zoo, sizes and bad input."
import json, pytest, torch
from asc_nbdev.core import UNKNOWN_CITY, N_CITY_TOKENS
from asc_nbdev.models.fusion import check_asc_model, FusionHead, GatedFusion, ConcatFusion
from asc_nbdev.models.zoo import (MODELS, create_model, asc_splitter, replace_head, freeze_blocks, unfreeze,
                                  count_params, param_table)

NAMES = list(MODELS)

def _batch(bs=2, frames=37, n_mels=64, cities=(3, UNKNOWN_CITY)):
    return torch.randn(bs, 1, frames, n_mels), torch.tensor(cities[:bs]), torch.randn(bs, 8)

@pytest.fixture(autouse=True)
def _seed(): torch.manual_seed(0)

@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('frames', [100, 37, 3])
def test_shapes_short_clips(name, frames):
    m = create_model(name).train()
    x, city, time = _batch(frames=frames)
    out = m(x, city, time)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert m.embedding(x, city, time).shape == (2, m.head.emb_dim)

@pytest.mark.parametrize('name', NAMES)
def test_full_clip_and_interface(name):
    "500 frames, unknown cities, gradients into city and time, audio only, head swap: via the shared checker"
    r = check_asc_model(lambda **kw: create_model(name, **kw), frames=(40,), full=500)
    assert r['out_500'] == (1, 10) and r['out_40'] == (2, 10)

@pytest.mark.parametrize('name', NAMES)
def test_metadata_off_and_all_unknown(name):
    x, _, time = _batch(frames=50)
    off = create_model(name, metadata=False).eval()
    assert off(x).shape == (2, 10) and off(x, None, None).shape == (2, 10)
    assert off.head.context is None
    on = create_model(name).eval()
    unk = torch.full((2,), UNKNOWN_CITY)
    assert torch.isfinite(on(x, unk, time)).all()
    # the city matters: a known city gives other logits than the unknown one
    assert not torch.allclose(on(x, unk, time), on(x, torch.tensor([0, 0]), time))

@pytest.mark.parametrize('name', NAMES)
def test_gradients_reach_city_and_time(name):
    m = create_model(name).train()
    x, city, time = _batch(frames=40)
    m(x, city, time).logsumexp(1).sum().backward()
    emb = m.head.context.city.weight.grad
    assert emb[city].abs().sum() > 0 and emb[0].abs().sum() == 0
    assert m.head.context.time[0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.body.parameters())

@pytest.mark.parametrize('name', NAMES)
def test_head_swap_keeps_body(name):
    m = create_model(name)
    body = {k: v.clone() for k, v in m.body.state_dict().items()}
    old_fc = m.head.fc.weight.detach().clone()
    replace_head(m, 7, metadata=False)
    new = m.body.state_dict()
    assert body.keys() == new.keys() and all(torch.equal(v, new[k]) for k, v in body.items())
    assert m.head.fc.out_features == 7 and m.head.fc.weight.shape[0] != old_fc.shape[0]
    x, city, time = _batch(frames=30)
    assert m.eval()(x).shape == (2, 7)
    replace_head(m, 10, metadata=True)
    assert m.eval()(x, city, time).shape == (2, 10)

def test_replace_fc_only_keeps_fusion():
    m = create_model('resnet_attention')
    keep = {k: v.clone() for k, v in m.state_dict().items() if not k.startswith('head.fc.')}
    replace_head(m, 3, fc_only=True)
    sd = m.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in keep.items())
    x, city, time = _batch(frames=30)
    assert m.eval()(x, city, time).shape == (2, 3) and m.n_classes == 3
    with pytest.raises(ValueError, match='cannot switch metadata'):
        replace_head(m, 3, metadata=False, fc_only=True)

@pytest.mark.parametrize('name', NAMES)
def test_rebuild_from_hparams(name):
    m = create_model(name, n_classes=4).eval()
    hp = json.loads(json.dumps(m.hparams))   # as a saved model file keeps them: tuples become lists
    m2 = create_model(m.arch, **hp).eval()
    m2.load_state_dict(m.state_dict())
    x, city, time = _batch(frames=30)
    torch.testing.assert_close(m(x, city, time), m2(x, city, time))

def test_wrong_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet'; valid names: se_trans, resnet_attention, mobileascnet, fcnn"):
        create_model('resnet')
    with pytest.raises(TypeError, match=r"mobileascnet: unknown setting\(s\) \['gru_size'\]"):
        create_model('mobileascnet', gru_size=64)

def test_bad_inputs_are_clear_errors():
    m = create_model('se_trans')
    x, city, time = _batch()
    with pytest.raises(ValueError, match=r'expected a spectrogram batch of shape \(batch, 1, frames, 64\), got \(2, 1, 37, 128\)'):
        m(torch.randn(2, 1, 37, 128), city, time)
    with pytest.raises(ValueError, match=r'city index out of range \[23\]'):
        m(x, torch.tensor([0, N_CITY_TOKENS]), time)
    with pytest.raises(ValueError, match=r'city index out of range \[-1\]'):
        m(x, torch.tensor([-1, 0]), time)
    with pytest.raises(ValueError, match='needs `city`'):
        m(x)
    with pytest.raises(ValueError, match=r'expected time of shape \(2, 8\)'):
        m(x, city, torch.zeros(2, 7))
    with pytest.raises(ValueError, match='NaN'):
        m(x, city, torch.full((2, 8), float('nan')))
    with pytest.raises(TypeError, match='integer indices'):
        m(x, city.float(), time)
    with pytest.raises(ValueError, match="fusion must be 'gated' or 'early'"):
        create_model('mobileascnet', fusion='late')

def test_mobileascnet_size_and_fusions():
    for fusion, kind in [('gated', GatedFusion), ('early', ConcatFusion)]:
        m = create_model('mobileascnet', fusion=fusion)
        assert isinstance(m.head.fusion, kind)
        assert abs(count_params(m) / 0.37e6 - 1) < 0.10, count_params(m)

def test_se_trans_matches_published_baseline_size():
    # the published code's layer sizes give exactly this count (with 23 city rows instead of 22: +16)
    assert count_params(create_model('se_trans')) == 361_962
    assert abs(count_params(create_model('se_trans', n_layers=2)) / 0.44e6 - 1) < 0.01

def test_splitter_freeze_unfreeze():
    m = create_model('mobileascnet')
    body, rest = asc_splitter(m)
    assert sum(p.numel() for p in body) == count_params(m.body)
    assert sum(p.numel() for p in body + rest) == count_params(m)
    n = count_params(m)
    freeze_blocks(m, 2)
    assert count_params(m, trainable=True) == n - count_params(m.blocks[0]) - count_params(m.blocks[1])
    freeze_blocks(unfreeze(m), 1, train_bn=True)
    frozen_bn = m.blocks[0][1]
    assert frozen_bn.weight.requires_grad and not m.blocks[0][0].weight.requires_grad
    assert count_params(unfreeze(m), trainable=True) == n
    with pytest.raises(ValueError, match='has 4 blocks; cannot freeze 9'):
        freeze_blocks(m, 9)

def test_blocks_are_body_conv_stages():
    expect = {'se_trans': 2, 'resnet_attention': 5, 'mobileascnet': 4, 'fcnn': 3}
    for name, n in expect.items():
        m = create_model(name)
        assert len(m.blocks) == n
        body_ids = {id(p) for p in m.body.parameters()}
        assert all(id(p) in body_ids for b in m.blocks for p in b.parameters())

def test_param_table():
    t = param_table().set_index('model')
    assert list(t.index) == NAMES
    assert t.loc['mobileascnet', 'paper'].startswith('0.37 M') and t.loc['se_trans', 'paper'].startswith('0.44 M')
    assert t.loc['resnet_attention', 'paper'] == 'not given'
    assert (t.body_M + t.head_M - t.params_M).abs().max() < 2e-3

def test_fusion_head_audio_only_ignores_metadata():
    h = FusionHead(32, 5, metadata=False)
    a = torch.randn(3, 32)
    torch.testing.assert_close(h(a, None, None), h(a, torch.tensor([1, 2, 3]), torch.randn(3, 8)))
