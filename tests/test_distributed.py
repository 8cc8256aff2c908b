"""Data-parallel training in two CPU processes (torchrun, gloo) against one process with the same global batch, and
`asc-train --processes 2` end to end (notebook 23)."""
import os, sys, subprocess
from pathlib import Path
import numpy as np, pytest, torch
from conftest import run_cli
from asc_nbdev.all import *

def _eq(a, b): assert a == b, f'{a!r} != {b!r}'
from asc_nbdev.data.synthetic import make_synthetic

pytest.importorskip('accelerate')
HERE = Path(__file__).resolve().parent

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('dist')/'data'
    make_synthetic(d, preset='tiny', n_clips=160, progress=False)
    dev = read_meta(d/'dev_metadata.csv')
    build_feature_cache(d/'audio', list(dev.filename), d/'features', progress=False, verbose=False)
    return d

def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', ACCELERATE_USE_CPU='true', PYTHONWARNINGS='ignore')

def test_two_processes_train_like_one(data, tmp_path):
    script = HERE/'distributed_fit.py'
    run_cli(sys.executable, script, data, tmp_path, env=_env())
    run_cli(sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', script, data, tmp_path, env=_env())
    one, two = torch.load(tmp_path/'result1.pt', weights_only=False), torch.load(tmp_path/'result2.pt', weights_only=False)
    _eq((one['bs'], two['bs']), (16, 8))   # each process loads half of the global batch
    # one step, float64: DistributedDataParallel + batch norm over both processes = one process on the whole batch
    gd = max((g - two['grads'][k]).abs().max().item() for k, g in one['grads'].items())
    for k, g in one['grads'].items():
        d = (g - two['grads'][k]).abs().max().item()
        assert d <= 1e-9 * max(1., g.abs().max().item()), f"gradient of {k} differs by {d}"
    # two epochs, float32: the same losses and metrics per epoch, the same weights and validation probabilities
    np.testing.assert_allclose(two['history'], one['history'], atol=1e-3)
    _eq(two['summary']['epochs_run'], one['summary']['epochs_run']); _eq(two['summary']['best_epoch'], one['summary']['best_epoch'])
    def _w(k, v):   # the key third of an attention's in_proj_bias has a zero gradient in exact arithmetic (softmax shift
        # invariance): its float32 value is rounding noise that Adam scales up to full steps, so it is compared apart, loosely
        if not k.endswith('in_proj_bias'): return v.double()
        n = v.numel() // 3; return torch.cat([v[:n], v[2 * n:]]).double()
    wd = max((_w(k, one['state'][k]) - _w(k, two['state'][k])).abs().max().item() for k in one['state'])
    kd = max([(one['state'][k].double() - two['state'][k].double()).abs().max().item() for k in one['state'] if k.endswith('in_proj_bias')] or [0.])
    assert kd < 0.05, f"attention biases differ by {kd}"   # loose on purpose: on noise each Adam step may move it by up to the rate, 3e-3
    hd, pdiff = np.abs(two['history'] - one['history']).max(), np.abs(two['probs'] - one['probs']).max()
    print(f"2 processes vs 1: one float64 step's gradients differ by at most {gd:.1e}; after {len(one['history'])} float32 epochs "
          f"the history by {hd:.1e}, the weights by {wd:.1e} (the attention's key bias by {kd:.1e}), the validation probabilities by {pdiff:.1e}")
    assert wd < 1e-3, f"weights differ by {wd}"
    _eq(two['probs'].shape, one['probs'].shape)
    np.testing.assert_allclose(two['probs'], one['probs'], atol=1e-3)
    _eq(two['bn'], one['bn'])   # the model keeps its own batch-norm layers after training
    assert all(n.startswith('BatchNorm') for n in two['bn'])

def _files(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob('*') if 'data' not in p.relative_to(d).parts)

def test_asc_train_processes(data, tmp_path):
    args = ['--audio', data/'audio', '--meta', data/'dev_metadata.csv', '--eval-meta', data/'eval_metadata.csv', '--truth', data/'truth.csv',
            '--recipe', 'baseline', '--quick', '--epochs', '1', '--device', 'cpu']
    r1 = run_cli('asc-train', *args, '--out', tmp_path/'one', env=_env())
    r = run_cli('asc-train', *args, '--out', tmp_path/'two', '--processes', '2', env=_env())
    for line in ('[stage1_train]', '[stage2_pseudo_r1]', 'final model'):   # rank 0 alone prints
        _eq(r.stdout.count(line), r1.stdout.count(line))
    one, two = tmp_path/'one', tmp_path/'two'
    _eq(_files(two), _files(one))               # the same files, written once: no shares, temporary or per-rank files left
    rep = load_json(two/'report.json')
    _eq([s['name'] for s in rep['stages']], [s['name'] for s in load_json(one/'report.json')['stages']])
    _eq(len(FeatureCache(two/'features')), len(FeatureCache(one/'features')))
    some = list(FeatureCache(one/'features').index.index[:5])
    np.testing.assert_array_equal(FeatureCache(two/'features').read(some), FeatureCache(one/'features').read(some))
    import pandas as pd
    _eq(len(pd.read_csv(two/'submission.csv')), len(pd.read_csv(one/'submission.csv')))

@pytest.mark.parametrize('args,msg', [(['--processes', '0'], 'at least 1'), (['--processes', '3'], 'does not split into 3')])
def test_processes_bad_arguments(tmp_path, args, msg):
    r = run_cli('asc-train', '--demo', '--out', tmp_path, '--device', 'cpu', *args, check=False)
    _eq(r.returncode, 2); assert msg in r.stderr, r.stderr
