"""The teacher adapters (asc_nbdev.teachers.panns, .efficientat, .beats, .passt): random weights in each official
checkpoint format through `load_teacher('NAME=PATH')`; what a broken checkpoint or a missing file says.
PaSST's checks need the optional package hear21passt (`pip install -e ".[passt]"`) and skip, saying so, without it."""
import importlib.util, warnings
import pytest, torch
from asc_nbdev.teachers.core import load_teacher, TeacherError, TEACHERS
from asc_nbdev.teachers.panns import Cnn14, random_cnn14_checkpoint, read_checkpoint
from asc_nbdev.teachers.efficientat import EfficientATMN, random_mn10_checkpoint
from asc_nbdev.teachers.beats import BEATs, BEATS_ITER3, random_beats_checkpoint
from asc_nbdev.teachers import passt

HAS_PASST = importlib.util.find_spec('hear21passt') is not None
SMALL_BEATS = dict(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4,
                   embed_dim=32, conv_pos=16, conv_pos_groups=4)

def _direct_passt(sd):
    m = passt.passt_model(); m.net.load_state_dict(sd); return m

# name -> (write a random checkpoint, the entry holding the state dict (None: the file), build + load the module
#          directly, sample rate, dim, keys to break: (remove, add, reshape))
ADAPTERS = {
    'panns_cnn14': (random_cnn14_checkpoint, 'model', lambda sd: Cnn14().requires_grad_(False).eval(), 32_000, 2048,
                    ('conv_block3.bn2.running_mean', 'fc_extra.weight', 'fc1.bias')),
    'efficientat_mn10': (random_mn10_checkpoint, None, lambda sd: EfficientATMN().eval(), 32_000, 960,
                         ('classifier.2.bias', 'features.17.0.weight', 'features.0.1.weight')),
    'beats': (lambda p: random_beats_checkpoint(p, cfg=SMALL_BEATS), 'model',
              lambda sd: BEATs({**BEATS_ITER3, **SMALL_BEATS}).eval(), 16_000, 64,
              ('encoder.layers.1.fc2.weight', 'encoder.extra.weight', 'patch_embedding.weight')),
    'passt': (lambda p: passt.random_passt_checkpoint(p), None, None, 32_000, 768,
              ('blocks.3.attn.qkv.bias', 'head_extra.weight', 'cls_token')),
}
NAMES = list(ADAPTERS)

def _needs(name):
    if name == 'passt' and not HAS_PASST: pytest.skip('hear21passt is not installed (the optional extra passt)')

@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    "name -> a random checkpoint in the official format, written once (CNN14's and PaSST's are about 330 MB)"
    d, made = tmp_path_factory.mktemp('teachers'), {}
    def get(name):
        if name not in made: made[name] = ADAPTERS[name][0](d/TEACHERS[name]['file'])
        return made[name]
    return get

@pytest.fixture(scope='module')
def teachers(checkpoints):
    made = {}
    def get(name):
        if name not in made: made[name] = load_teacher(f'{name}={checkpoints(name)}')
        return made[name]
    return get

def _clip(sr, n=2, seconds=1.0, seed=1):
    return torch.randn(n, int(sr * seconds), generator=torch.Generator().manual_seed(seed)) * 0.1

def _state(path, key):
    ck = torch.load(path, weights_only=True, mmap=True)
    return dict(ck[key]) if key else dict(ck), ck

@pytest.mark.parametrize('name', NAMES)
def test_embedding_shape_and_dim(name, teachers):
    _needs(name)
    t, (_, _, _, sr, dim, _) = teachers(name), ADAPTERS[name]
    assert (t.sample_rate, t.dim, t.name) == (sr, dim, name)
    assert t.window_seconds == (10.0 if name == 'passt' else None)
    with torch.inference_mode(): e = t.module(_clip(sr, n=3))
    assert e.shape == (3, dim) and torch.isfinite(e).all() and e.abs().max() > 0

@pytest.mark.parametrize('name', NAMES)
def test_deterministic(name, teachers, checkpoints):
    _needs(name)
    t, sr = teachers(name), ADAPTERS[name][3]
    x = _clip(sr)
    with torch.inference_mode(): a, b = t.module(x), t.module(x)
    again = load_teacher(f'{name}={checkpoints(name)}')
    with torch.inference_mode(): c = again.module(x)
    assert torch.equal(a, b) and torch.equal(a, c)

@pytest.mark.parametrize('name', NAMES)
def test_adapter_equals_the_module_run_directly(name, teachers, checkpoints):
    _needs(name)
    _, key, build, sr, _, _ = ADAPTERS[name]
    sd, _ = _state(checkpoints(name), key)
    if name == 'passt': m = _direct_passt(sd)
    else: m = build(sd); m.load_state_dict(sd, strict=True)
    x = _clip(sr, seed=2)
    with torch.inference_mode(): assert torch.equal(teachers(name).module(x), m.eval()(x))

@pytest.mark.parametrize('fault', ['missing', 'unexpected', 'shape'])
@pytest.mark.parametrize('name', NAMES)
def test_broken_checkpoint_names_the_key(name, fault, checkpoints, tmp_path):
    _needs(name)
    _, key, _, _, _, (remove, add, reshape) = ADAPTERS[name]
    sd, ck = _state(checkpoints(name), key)
    if fault == 'missing': del sd[remove]; want = f'1 missing key: {remove}'
    elif fault == 'unexpected': sd[add] = torch.zeros(3); want = f'1 unexpected key: {add}'
    else:
        old = tuple(sd[reshape].shape); sd[reshape] = torch.zeros(7, 3)
        want = f"1 wrong shape: {reshape} (7, 3) (the model's: {old})"
    torch.save({**ck, key: sd} if key else sd, tmp_path/'broken.pt')
    with pytest.raises(TeacherError) as e: load_teacher(f'{name}={tmp_path}/broken.pt')
    assert want in str(e.value) and 'does not fit the model' in str(e.value), str(e.value)

@pytest.mark.parametrize('name', NAMES)
def test_missing_or_unreadable_file(name, tmp_path):
    with pytest.raises(TeacherError, match='checkpoint file not found'): load_teacher(f'{name}={tmp_path}/nothing.pt')
    with pytest.raises(TeacherError, match='checkpoint file not found'): load_teacher(f'{name}={tmp_path}')   # a folder
    with pytest.raises(TeacherError, match='give the checkpoint file'): load_teacher(f'{name}=')
    if name == 'passt' and not HAS_PASST: return   # said before the file is read: see test_passt_without_hear21passt
    (tmp_path/'junk.pt').write_bytes(b'\x00not a checkpoint')
    with pytest.raises(TeacherError, match='cannot read checkpoint'): load_teacher(f'{name}={tmp_path}/junk.pt')

def test_wrong_format_is_said(tmp_path):
    torch.save({'w': torch.zeros(1)}, tmp_path/'plain.pt')
    with pytest.raises(TeacherError, match="has no 'model' entry"): load_teacher(f'panns_cnn14={tmp_path}/plain.pt')
    with pytest.raises(TeacherError, match="not in the official format"): load_teacher(f'beats={tmp_path}/plain.pt')
    torch.save([torch.zeros(1)], tmp_path/'list.pt')
    with pytest.raises(TeacherError, match='holds list where a state dict'): read_checkpoint(tmp_path/'list.pt', 'x')

def test_beats_fine_tuned_classifier_is_set_aside_and_said(tmp_path):
    ck = random_beats_checkpoint(tmp_path/'ft.pt', cfg=SMALL_BEATS, predictor=True)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        t = load_teacher(f'beats={ck}')
    assert t.module.ignored_keys == ['predictor.bias', 'predictor.weight']
    assert any("fine-tuned classifier (predictor.weight (527, 64), predictor.bias (527,)), not used" in str(x.message)
               for x in w)
    d = torch.load(ck, weights_only=True)
    d['model']['classifier.weight'] = d['model'].pop('predictor.weight')   # not the known classifier: an error
    torch.save(d, tmp_path/'other_head.pt')
    with pytest.raises(TeacherError, match='1 unexpected key: classifier.weight'):
        load_teacher(f'beats={tmp_path}/other_head.pt')

def test_beats_cfg_decides_the_architecture(tmp_path):
    ck = random_beats_checkpoint(tmp_path/'b.pt', cfg={**SMALL_BEATS, 'encoder_embed_dim': 48, 'encoder_layers': 1})
    t = load_teacher(f'beats={ck}')
    assert t.dim == 48 and len(t.module.encoder.layers) == 1
    d = torch.load(ck, weights_only=True); d['cfg']['encoder_attention_heads'] = 5
    torch.save(d, tmp_path/'bad_cfg.pt')
    with pytest.raises(TeacherError, match='not divisible by encoder_attention_heads 5'):
        load_teacher(f'beats={tmp_path}/bad_cfg.pt')

def test_passt_without_hear21passt(tmp_path):
    if HAS_PASST: pytest.skip('hear21passt is installed')
    torch.save({'cls_token': torch.zeros(1, 1, 768)}, tmp_path/'p.pt')
    with pytest.raises(TeacherError, match=r"needs the optional package hear21passt .*'asc-nbdev\[passt\]'"):
        load_teacher(f'passt={tmp_path}/p.pt')

def test_passt_refuses_more_than_ten_seconds(teachers):
    _needs('passt')
    with pytest.raises(ValueError, match='PaSST takes at most 10 s'): teachers('passt').module(torch.zeros(1, 330_000))
