"Models: the shared interface (shapes, metadata, unknown cities, gradients, head swap), the zoo, sizes and bad input."
import json, pytest, torch
from asc_nbdev.core import UNKNOWN_CITY, N_CITY_TOKENS
from asc_nbdev.models.fusion import FusionHead, GatedFusion, ConcatFusion
from asc_nbdev.models.testing import check_asc_model
from asc_nbdev.models.zoo import MODELS, create_model, asc_splitter, replace_head, freeze_blocks, unfreeze, count_params, param_table

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

# --- the official baseline's SE-Trans checkpoint (models/baseline.py of JishengBai/APSIPA2025GC-ASC) ---
import torch.nn as nn, torch.nn.functional as F
from asc_nbdev.models.se_trans import SETrans, load_official_se_trans, official_se_trans_keys, official_model_kwargs, OfficialCheckpointError

class _OfficialSEBlock(nn.Module):
    "The official SqueezeExcitation's layout (conv1, conv2, bn1, bn2, se1.fc, se2.fc) and computation (floor-mode average pooling)"
    def __init__(self, ci, co):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.Conv2d(co, co, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(co), nn.BatchNorm2d(co)
        self.se1, self.se2 = nn.Module(), nn.Module()
        for s in (self.se1, self.se2):
            s.fc = nn.Sequential(nn.Linear(co, co // 16, bias=False), nn.ReLU(), nn.Linear(co // 16, co, bias=False), nn.Sigmoid())
    def forward(self, x):
        for conv, bn, se in ((self.conv1, self.bn1, self.se1), (self.conv2, self.bn2, self.se2)):
            y = bn(conv(x)); x = F.relu(y * se.fc(y.mean((2, 3)))[:, :, None, None])
        return F.avg_pool2d(x, 2)

class _OfficialSETrans(nn.Module):
    "The official SE_Trans's attribute names and computation: bn0 over mels, sequence-first Transformer, template encoder_layer"
    def __init__(self, n_classes=10, n_layers=1, metadata=True, n_cities=22):
        super().__init__()
        self.metadata = metadata
        self.SE_block1, self.SE_block2 = _OfficialSEBlock(1, 64), _OfficialSEBlock(64, 128)
        self.global_pool = nn.AdaptiveAvgPool2d((16, 1))
        self.encoder_layer = nn.TransformerEncoderLayer(128, 8, 32, 0.1)
        self.encoder = nn.TransformerEncoder(self.encoder_layer, n_layers, enable_nested_tensor=False)
        if metadata:
            self.location_embedding, self.time_mapping = nn.Embedding(n_cities, 16), nn.Linear(8, 16)
            self.fusion_layer = nn.Linear(160, 128)
        self.fc = nn.Linear(128, n_classes)
        self.bn0 = nn.BatchNorm2d(64)
    def forward(self, x, city=None, time=None):
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.global_pool(self.SE_block2(self.SE_block1(x)))
        x = self.encoder(x.flatten(2).permute(2, 0, 1)).amax(0)
        if self.metadata and city is not None:
            x = F.relu(self.fusion_layer(torch.cat([x, self.location_embedding(city), F.relu(self.time_mapping(time))], 1)))
        return self.fc(x)

def _official(**kw):
    m = _OfficialSETrans(**kw)
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if 'running_var' in k: v.uniform_(0.5, 2)
            elif v.is_floating_point(): v.normal_(0, 0.3)
    return m.eval()

@pytest.mark.parametrize('n_layers', [1, 2])
def test_official_key_table_matches_module(n_layers):
    ref = {k: tuple(v.shape) for k, v in _OfficialSETrans(n_layers=n_layers).state_dict().items()}
    assert list(ref.items()) == list(official_se_trans_keys(n_layers=n_layers).items())
    audio = {k: tuple(v.shape) for k, v in _OfficialSETrans(n_classes=8, metadata=False).state_dict().items()}
    assert audio == official_se_trans_keys(n_classes=8, metadata=False)

@pytest.mark.parametrize('n_layers', [1, 2])
def test_official_checkpoint_gives_same_outputs(tmp_path, n_layers):
    off = _official(n_layers=n_layers)
    p = tmp_path/'SE-Trans_pretrained_model.pth'
    torch.save({'epoch': 3, 'model_state_dict': off.state_dict(), 'optimizer_state_dict': {}}, p)
    assert official_model_kwargs(p) == dict(n_classes=10, n_mels=64, channels=(64, 128), n_layers=n_layers, dim_feedforward=32,
                                            reduction=16, metadata=True, fusion='concat', city_dim=16, time_dim=16, fusion_dim=128)
    m = load_official_se_trans(p).eval()
    assert m.hparams['n_layers'] == n_layers and m.official_init['kept'] == ['head.context.city_map']
    assert len(m.official_init['skipped']) == 12 and all(k.startswith('encoder_layer.') for k in m.official_init['skipped'])
    x, city, time = torch.randn(3, 1, 200, 64), torch.tensor([0, 7, 21]), torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x, city, time), off(x, city, time), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(m.features(x), off.encoder(off.global_pool(off.SE_block2(off.SE_block1(
            off.bn0(x.transpose(1, 3)).transpose(1, 3)))).flatten(2).permute(2, 0, 1)).amax(0), atol=1e-4, rtol=1e-4)
        w, ow = m.head.context.city.weight, off.location_embedding.weight
        assert torch.equal(w[:22], ow) and torch.allclose(w[UNKNOWN_CITY], ow.mean(0))
        assert torch.isfinite(m(x, torch.full((3,), UNKNOWN_CITY), time)).all()
    z = load_official_se_trans(off.state_dict(), unknown_city='zeros')
    assert z.head.context.city.weight[UNKNOWN_CITY].abs().sum() == 0
    own = SETrans(n_layers=n_layers); before = own.head.context.city.weight[UNKNOWN_CITY].detach().clone()
    assert torch.equal(load_official_se_trans(off.state_dict(), own, unknown_city='keep').head.context.city.weight[UNKNOWN_CITY], before)

def test_official_into_recipe_model_without_fc():
    "The baseline's remove_fc=True / strict=False: an audio-only 8-class checkpoint into the recipe's 10-class model"
    from asc_nbdev.train.recipes import get_recipe, make_model
    off = _official(n_classes=8, metadata=False)
    m = make_model(get_recipe('baseline'))
    fc, ctx = m.head.fc.weight.detach().clone(), m.head.fusion.linear.weight.detach().clone()
    load_official_se_trans({'model_state_dict': off.state_dict()}, m, fc=False, context=None)
    assert torch.equal(m.head.fc.weight, fc) and torch.equal(m.head.fusion.linear.weight, ctx)
    assert torch.equal(m.body.blocks[0][0].bn.running_var, off.bn0.running_var)
    x = torch.randn(2, 1, 100, 64)
    with torch.no_grad(): torch.testing.assert_close(m.eval().features(x), _features(off, x), atol=1e-4, rtol=1e-4)
    # fc=None loads the classifier only where it fits
    m10 = load_official_se_trans(_official().state_dict(), SETrans(), fc=None)
    assert 'head.fc.weight' not in m10.official_init['kept']

def _features(off, x):
    x = off.global_pool(off.SE_block2(off.SE_block1(off.bn0(x.transpose(1, 3)).transpose(1, 3))))
    return off.encoder(x.flatten(2).permute(2, 0, 1)).amax(0)

def test_official_checkpoint_errors(tmp_path):
    sd = _official().state_dict()
    with pytest.raises(OfficialCheckpointError, match=r'shape mismatches \(checkpoint -> model\): SE_block1.conv1.weight \(64, 1, 3, 3\) -> '
                                                      r'body.blocks.0.1.conv1.weight \(32, 1, 3, 3\)') as e:
        load_official_se_trans(sd, SETrans(channels=(32, 64)))
    assert 'official_model_kwargs' in str(e.value)
    with pytest.raises(OfficialCheckpointError, match='fc=False keeps'):
        load_official_se_trans(sd, SETrans(n_classes=7))
    audio = _official(metadata=False).state_dict()
    with pytest.raises(OfficialCheckpointError, match=r'missing keys .*head.context.city.weight.*\n.*context=None keeps'):
        load_official_se_trans(audio, SETrans())
    with pytest.raises(OfficialCheckpointError, match=r'unexpected keys: location_embedding.weight \(-> head.context.city.weight, not in the model\)'):
        load_official_se_trans(sd, SETrans(metadata=False))
    with pytest.raises(OfficialCheckpointError, match=r'unexpected keys: encoder.layers.1.self_attn.in_proj_weight(.|\n)*n_layers=2'):
        load_official_se_trans(_official(n_layers=2).state_dict(), SETrans())
    with pytest.raises(OfficialCheckpointError, match=r'missing keys .*: body.encoder.layers.1.self_attn.in_proj_weight'):
        load_official_se_trans(sd, SETrans(n_layers=2))
    with pytest.raises(OfficialCheckpointError, match=r'unexpected keys: junk'):
        load_official_se_trans({**sd, 'junk': torch.zeros(1)})
    with pytest.raises(OfficialCheckpointError, match=r'location_embedding.weight \(10, 16\) -> head.context.city.weight \(23, 16\)'):
        load_official_se_trans({**sd, 'location_embedding.weight': torch.zeros(10, 16)}, SETrans())
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_official_se_trans(tmp_path/'nope.pth')
    (tmp_path/'bad.pth').write_text('not a checkpoint')
    with pytest.raises(OfficialCheckpointError, match='not a loadable PyTorch checkpoint'):
        load_official_se_trans(tmp_path/'bad.pth')
    with pytest.raises(OfficialCheckpointError, match="expected a state dict of tensors"):
        load_official_se_trans({'epoch': 1, 'optimizer_state_dict': {}})
    with pytest.raises(TypeError, match='loads into an SETrans'):
        load_official_se_trans(sd, create_model('fcnn'))
    # saved from DataParallel: the 'module.' prefix is dropped
    assert load_official_se_trans({'module.' + k: v for k, v in sd.items()}).official_init['loaded'] == 56

def test_asc_train_init_official(tmp_path):
    "`asc-train --recipe baseline --init official=PATH`: stage 1 starts from the official checkpoint's body (its sizes, not the quick ones)"
    import json
    from conftest import run_cli
    from asc_nbdev.models.files import load_asc_model
    off = _official(); p = tmp_path/'SE-Trans_pretrained_model.pth'
    torch.save({'epoch': 3, 'model_state_dict': off.state_dict()}, p)
    out = tmp_path/'run'
    run_cli('asc-train', '--demo', '--recipe', 'baseline', '--epochs', '1', '--n-clips', '240', '--rounds', '0',
            '--init', f'official={p}', '--out', out)
    m, info = load_asc_model(out/'model.pt')
    assert info['recipe']['model_kwargs']['channels'] == [64, 128]            # the checkpoint's sizes, not the quick (32, 64)
    assert json.loads((out/'report.json').read_text())['stages'][0]['fingerprint']['init']['name'] == p.name
    r = run_cli('asc-train', '--demo', '--recipe', 'li2025', '--init', f'official={p}', '--out', tmp_path/'r2', check=False)
    assert r.returncode == 2 and 'starts an SE-Trans' in r.stderr
    r = run_cli('asc-train', '--demo', '--init', 'mine=x', '--out', tmp_path/'r3', check=False)
    assert r.returncode == 2 and '--init takes official=PATH' in r.stderr

def test_audio_head_reset_and_audio_model():
    "A model made for audio-first training: its audio classifier is an audio-only head; reset_head keeps it one; audio_model shares its modules"
    from asc_nbdev.train.recipes import get_recipe, make_model
    from asc_nbdev.train.fit import audio_model
    m = make_model(get_recipe('li2025', quick=True))
    assert type(m.head.audio_fc).__name__ == 'FusionHead'
    m.reset_head(7, fc_only=True).eval().set_known_cities([0])
    x, c, t = torch.randn(2, 1, 100, 64), torch.tensor([0, UNKNOWN_CITY]), torch.zeros(2, 8)
    assert tuple(m(x, c, t).shape) == (2, 7) and m.head.audio_fc.n_classes == 7
    am = audio_model(m)
    assert am.body is m.body and am.head is m.head.audio_fc and not am.metadata
    with torch.no_grad(): assert torch.equal(am(x)[1], m(x, c, t)[1])   # the unknown city: the audio-only model's logits
    with pytest.raises(ValueError, match='audio_first needs a model'): audio_model(make_model(get_recipe('baseline', quick=True, audio_first=False)))
