"ONNX export: each architecture's saved model (quick sizes) against PyTorch with onnxruntime, dynamic batch and frames, bad paths, asc-export."
import numpy as np, pytest, torch
from conftest import run_cli
from asc_nbdev.core import CLASSES, UNKNOWN_CITY, N_CITY_TOKENS
from asc_nbdev.train.recipes import get_recipe, make_model
from asc_nbdev.models.files import save_asc_model, load_asc_model
from asc_nbdev.models.export import export_onnx, onnx_metadata, check_onnx, ONNX_INPUTS

ort = pytest.importorskip('onnxruntime')
RECIPES = {'baseline': 'dynamo', 'yang2025': 'dynamo', 'li2025': 'torchscript', 'atmaja2025': 'dynamo'}

def _save(d, name, metadata=True):
    r = get_recipe(name, quick=True); torch.manual_seed(0)
    m = make_model(r, metadata=metadata)
    with torch.no_grad():   # non-trivial batch-norm statistics, so the export must carry them
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm): mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 2)
    return save_asc_model(m, d/f'{name}.pt', r, (np.zeros(64), np.ones(64)))

@pytest.fixture(scope='module', params=list(RECIPES))
def exported(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    mf = _save(d, request.param)
    p = export_onnx(mf, d/'model.onnx', frames=40, check=False)   # checked here, by the test
    return request.param, mf, p

@pytest.mark.parametrize('batch', [1, 3])
@pytest.mark.parametrize('frames', [23, 90])
def test_onnx_matches_pytorch(exported, batch, frames):
    name, mf, p = exported
    model, _ = load_asc_model(mf)
    sess = ort.InferenceSession(str(p), providers=['CPUExecutionProvider'])
    assert [i.name for i in sess.get_inputs()] == list(ONNX_INPUTS)
    assert sess.get_inputs()[0].type == 'tensor(float)' and sess.get_inputs()[1].type == 'tensor(int64)'
    g = torch.Generator().manual_seed(batch * 1000 + frames)
    x, city, time = torch.randn(batch, 1, frames, 64, generator=g), torch.randint(0, N_CITY_TOKENS, (batch,), generator=g), torch.randn(batch, 8, generator=g)
    city[0] = UNKNOWN_CITY
    with torch.no_grad(): ref = model(x, city, time).numpy()
    out = sess.run(['logits'], {'spectrogram': x.numpy(), 'city': city.numpy(), 'time': time.numpy()})[0]
    assert out.shape == (batch, len(CLASSES))
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)

def test_onnx_metadata(exported):
    name, mf, p = exported
    md = onnx_metadata(p)
    assert md['exporter'] == RECIPES[name] and md['arch'] == get_recipe(name).model and md['format'] == 'asc_nbdev.onnx/1'
    assert md['classes'] == CLASSES and md['unknown_city'] == UNKNOWN_CITY and len(md['stats']['mean']) == 64
    assert md['inputs'] == list(ONNX_INPUTS) and md['metadata'] is True

def test_audio_only_and_check(tmp_path):
    mf = _save(tmp_path, 'li2025', metadata=False)
    p = export_onnx(mf, tmp_path/'a.onnx', frames=30)          # check=True: onnxruntime against PyTorch inside
    assert onnx_metadata(p)['inputs'] == ['spectrogram']       # the TorchScript exporter drops unused inputs
    assert check_onnx(p, load_asc_model(mf)[0], batches=(2,), frames=(5, 64)) < 1e-4
    with pytest.raises(ValueError, match=r"logits differ from PyTorch's by .* at batch 1"):   # a model other than the file's
        check_onnx(p, make_model(get_recipe('li2025', quick=True), metadata=False).eval())

def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='model file not found: .*nothere.pt'):
        export_onnx(tmp_path/'nothere.pt', tmp_path/'x.onnx')
    (tmp_path/'junk.pt').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='is not a loadable asc_nbdev model file'):
        export_onnx(tmp_path/'junk.pt', tmp_path/'x.onnx')
    mf = _save(tmp_path, 'li2025')
    with pytest.raises(IsADirectoryError, match='is a directory; give the .onnx file to write'):
        export_onnx(mf, tmp_path)
    with pytest.raises(ValueError, match='exporter must be one of'):
        export_onnx(mf, tmp_path/'x.onnx', exporter='tflite')
    assert not (tmp_path/'x.onnx').exists() and not [f for f in tmp_path.iterdir() if '.tmp' in f.name]

def test_asc_export_cli(tmp_path):
    mf = _save(tmp_path, 'li2025')
    r = run_cli('asc-export', mf, tmp_path/'out'/'m.onnx', '--frames', '30')
    assert 'wrote' in r.stdout and 'torchscript exporter' in r.stdout and (tmp_path/'out'/'m.onnx').is_file()
    bad = run_cli('asc-export', tmp_path/'nothere.pt', tmp_path/'m2.onnx', check=False)
    assert bad.returncode == 2 and 'asc-export: error: model file not found' in bad.stderr and 'Traceback' not in bad.stderr
    bad = run_cli('asc-export', mf, tmp_path, check=False)
    assert bad.returncode == 2 and 'is a directory' in bad.stderr
