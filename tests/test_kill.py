"""Killed anywhere, finished the same: `asc-train --demo` (tiny) killed with SIGKILL in the middle of a training
stage and in the middle of pseudo-labeling, then re-run, ends with the same report figures, pseudo-labels,
model and submission as an uninterrupted run.

Each stage writes its result last, as `done.json` (with a fingerprint of its inputs); a stage killed before
that is recomputed whole on the next run (`run_stage`), and the feature cache resumes its own way
(tests/test_features.py). A real kill: the process gets SIGKILL, so no `finally`, no atexit, no flush runs.
"""
import json, os, shutil, signal, subprocess, sys, threading, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from conftest import run_cli

ARGS = ['--demo', '--recipe', 'li2025', '--epochs', '3', '--n-clips', '240', '--rounds', '1']

def _exe(name):
    "The console script itself (not a pyenv shim that would put another process in between)"
    p = Path(sys.executable).parent/name
    return str(p) if p.exists() else shutil.which(name)

class Run:
    "`asc-train ARGS --out OUT` in its own process group, its stdout read line by line on a thread"
    def __init__(self, out):
        env = dict(os.environ, PYTHONUNBUFFERED='1')
        self.p = subprocess.Popen([_exe('asc-train'), *ARGS, '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, start_new_session=True)
        self.lines, self.t = [], threading.Thread(target=self._read, daemon=True); self.t.start()
    def _read(self):
        for line in self.p.stdout: self.lines.append(line)
    def kill_when(self, cond, timeout=600, poll=0.002):
        "SIGKILL the run (its whole process group) as soon as `cond()` holds; returns what held"
        t0 = time.time()
        while time.time() - t0 < timeout:
            got = cond()
            if got:
                os.killpg(self.p.pid, signal.SIGKILL); self.p.wait(); self.t.join(10)
                return got
            if self.p.poll() is not None: break
            time.sleep(poll)
        out = ''.join(self.lines)[-3000:]
        self.p.kill(); self.p.wait()
        raise AssertionError(f'the moment to kill never came (rc {self.p.returncode}):\n{out}')

def _line(run, text):
    return lambda: any(text in l for l in run.lines)

def _stage_running(out, stage, need=()):
    "A stage has begun (its folder exists, with the files `need`) and not finished (no done.json): the listing"
    def cond():
        d = out/stage
        try:
            names = sorted(p.name for p in d.iterdir())
        except FileNotFoundError: return None
        if 'done.json' in names: raise AssertionError(f'{stage} finished before it could be killed')
        return names if all(n in names for n in need) else None
    return cond

def _strip(o):
    "A report without timings and paths"
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if k not in ('seconds', 'fingerprint', 'path', 'audio', 'meta', 'eval_meta', 'truth')}
    if isinstance(o, list): return [_strip(v) for v in o]
    return o

def _same_result(a:Path, b:Path):
    ra, rb = (json.loads((o/'report.json').read_text()) for o in (a, b))
    assert _strip(ra) == _strip(rb)
    for f in ['submission.csv', 'eval_probs.csv', 'stage2_pseudo_r1/pseudo_labels.csv', 'stage1_train/valid_probs.csv',
              'stage3_retrain_r1/valid_probs.csv']:
        assert (a/f).read_bytes() == (b/f).read_bytes(), f
    for st in ['stage1_train', 'stage3_retrain_r1']:   # each epoch's figures (the time column aside)
        ha, hb = (pd.read_csv(o/st/'history.csv') for o in (a, b))
        pd.testing.assert_frame_equal(ha.drop(columns=[c for c in ha if 'time' in c]), hb.drop(columns=[c for c in hb if 'time' in c]))
    ma, mb = (torch.load(o/'model.pt', weights_only=True) for o in (a, b))
    assert ma['state_dict'].keys() == mb['state_dict'].keys()
    for k in ma['state_dict']: assert torch.equal(ma['state_dict'][k], mb['state_dict'][k]), k
    assert _strip(ma['stats']) == _strip(mb['stats'])


@pytest.mark.slow
def test_killed_in_training_and_pseudo_labeling_finishes_the_same(tmp_path):
    ref = tmp_path/'straight'
    run_cli('asc-train', *ARGS, '--out', ref, timeout=900)
    out = tmp_path/'killed'
    shutil.copytree(ref/'data', out/'data')   # the same synthetic data (files and times), made once

    # 1. killed in the middle of stage 1, after its first epoch (features done, fastai's checkpoint there)
    r = Run(out)
    r.kill_when(_line(r, '[stage1_train] epoch 1/3'))
    assert r.p.returncode == -signal.SIGKILL
    killed = r.p.pid
    assert (out/'stage1_train').is_dir() and not (out/'stage1_train'/'done.json').exists() and not (out/'report.json').exists()

    # 2. re-run: stage 1 again from the start; killed in the middle of pseudo-labeling
    r = Run(out)
    seen = r.kill_when(_stage_running(out, 'stage2_pseudo_r1'))
    assert r.p.returncode == -signal.SIGKILL and (out/'stage1_train'/'done.json').exists()
    log = ''.join(r.lines)
    assert 'up to date, nothing to compute' in log   # the feature cache was finished in run 1: nothing recomputed
    assert f'taking over from process {killed} on' in log   # the killed run's lock (asc_nbdev.files): taken over, said

    # 3. re-run: stage 1 skipped, pseudo-labeling again from the start; killed in the middle of retraining
    r = Run(out)
    r.kill_when(_line(r, '[stage3_retrain_r1] epoch 2/3'))
    log = ''.join(r.lines)
    assert '[stage1_train] done before, skipped' in log and '[stage2_pseudo_r1] done before' not in log
    assert (out/'stage2_pseudo_r1'/'done.json').exists() and not (out/'stage3_retrain_r1'/'done.json').exists()

    # 4. re-run to the end: the same as the run never killed
    p = run_cli('asc-train', *ARGS, '--out', out, timeout=900)
    assert '[stage2_pseudo_r1] done before, skipped' in p.stdout and '[stage3_retrain_r1] done before' not in p.stdout
    _same_result(ref, out)
    print(f'killed in stage2_pseudo_r1 with {seen} in its folder')
