"--teacher end to end: a user's factory from the current directory, the teacher stage, its student, --submit teacher, errors; out-of-fold honesty of the heads"
import json, textwrap
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pandas as pd, pytest
from conftest import run_cli
from asc_nbdev.all import *
from asc_nbdev.pipeline.teacher import teach

FACTORY = '''
import torch, torch.nn as nn, torchaudio
class MelStats(nn.Module):
    def __init__(self):
        super().__init__(); self.mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, hop_length=256, n_mels=32)
    def forward(self, x): m = torch.log(self.mel(x) + 1e-6); return torch.cat([m.mean(-1), m.std(-1)], 1)
def make(): return MelStats(), 16000
def wrong(): return MelStats()
'''
ARGS = ['--demo', '--n-clips', '200', '--epochs', '1', '--aggregate', 'none']

@pytest.fixture(scope='module')
def cwd(tmp_path_factory):
    d = tmp_path_factory.mktemp('teacher'); (d/'my_teacher.py').write_text(FACTORY); return d

def test_teacher_run_from_a_factory_in_the_current_directory(cwd):
    r = run_cli('asc-train', *ARGS, '--teacher', 'my_teacher:make', '--submit', 'teacher', '--out', 'run', cwd=cwd)
    out = cwd/'run'; rep = json.loads((out/'report.json').read_text())
    assert [s['name'] for s in rep['stages']] == ['teacher', 'stage1_train', 'stage2_student'] and rep['kept'] != 'teacher'
    t = rep['teacher']
    assert t['dim'] == 64 and t['head'] == 'logreg' and 0 <= t['accuracy'] <= 1 and 'test_accuracy' in t and 'unlabeled_accuracy' in t
    assert 'teacher my_teacher:make' in r.stdout and rep['submission']['source'] == 'teacher'
    probs = pd.read_csv(out/'teacher'/'probs.csv', dtype={'filename': str}).set_index('filename')
    ev = pd.read_csv(out/'eval_probs.csv', dtype={'filename': str}).set_index('filename')
    np.testing.assert_allclose(ev[CLASSES].to_numpy(), probs.loc[ev.index, CLASSES].to_numpy(), atol=1e-4)   # the teacher's own
    m, info = load_asc_model(out/'model.pt')
    assert info['arch'] == 'mobileascnet' and rep['final_model']['params'] < 1e6   # the deployed model: the recipe's small one
    assert (cwd/'run'/'embeddings_my_teacher-make'/'embeddings.npy').exists()
    r2 = run_cli('asc-train', *ARGS, '--teacher', 'my_teacher:make', '--submit', 'teacher', '--out', 'run', cwd=cwd)   # resumed
    assert '[teacher] done before, skipped' in r2.stdout and '[stage2_student] done before, skipped' in r2.stdout

@pytest.mark.parametrize('spec,msg', [('my_teacher:wrong', 'must return (module, sample_rate)'),
                                      ('no_such_teacher:make', "cannot import 'no_such_teacher'"),
                                      ('beats=missing.pt', 'checkpoint file not found: missing.pt')])
def test_bad_teachers_say_what_is_wrong(cwd, spec, msg):
    r = run_cli('asc-train', *ARGS, '--teacher', spec, '--out', f'bad-{spec[:5]}', cwd=cwd, check=False)
    assert r.returncode == 2 and msg in r.stderr, r.stderr[-1500:]

def test_bad_teacher_options(tmp_path):
    for args, msg in [(['--teacher', 'nope'], '--teacher takes NAME=CHECKPOINT'), (['--submit', 'teacher'], '--submit teacher needs --teacher'),
                      (['--teacher', 'm:f', '--rounds', '1'], 'its student replaces the pseudo-label rounds')]:
        r = run_cli('asc-train', '--demo', *args, '--out', tmp_path/'o', check=False)
        assert r.returncode == 2 and msg in r.stderr, r.stderr

def _ctx(labels, folds):
    n = len(labels)
    dev = pd.DataFrame(dict(filename=[f'c{i}' for i in range(n)], label=labels, city=np.arange(n) % 3, location='Beijing',
                            record_time='2023-05-01 10:00:00', recording=[f'r{i // 4}' for i in range(n)]))
    return SimpleNamespace(dev=dev, ev=None, folds=folds, split=folds[0], recipe=SimpleNamespace(seed=0), test_meta=None, truth=None,
                           seen=['Beijing'], cfg=SimpleNamespace(aggregate='none'), cache=None)

def test_fold_heads_never_see_their_validation_labels(tmp_path):
    "Fold i's teacher probabilities (what fold i's student learns from) do not change when fold i's validation labels do"
    rng = np.random.default_rng(0); y = np.repeat(np.arange(4), 12)
    emb = np.eye(4)[y] @ rng.normal(0, 1, (4, 16)) + rng.normal(0, 1, (48, 16))
    folds = [Split(np.flatnonzero(np.arange(48) % 3 != k), np.flatnonzero(np.arange(48) % 3 == k), 'recording', 0, {}) for k in range(3)]
    y2 = y.copy(); y2[folds[0].valid] = (y2[folds[0].valid] + 1) % 4   # fold 0's validation labels changed
    for name, lab in (('a', y), ('b', y2)):
        (tmp_path/name).mkdir(); teach(_ctx(lab, folds), tmp_path/name, emb)
    read = lambda n, i: pd.read_csv(tmp_path/n/f'fold{i}_probs.csv')[CLASSES].to_numpy()
    np.testing.assert_array_equal(read('a', 0), read('b', 0))          # fold 0's head: trained without them
    assert np.abs(read('a', 1) - read('b', 1)).max() > 1e-3            # the others trained on them
