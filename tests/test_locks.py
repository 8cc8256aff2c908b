"A run folder belongs to one process (group) at a time: a second run on it refuses at once and names the owner (asc_nbdev.files)."
import json, os, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest
from conftest import run_cli
from asc_nbdev.files import lock_folder, folder_owner, OWNER_FILE

ARGS = ['--demo', '--recipe', 'li2025', '--epochs', '1', '--n-clips', '240', '--rounds', '1']

def _wait(cond, timeout=120, what='condition'):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond(): return
        time.sleep(0.05)
    raise AssertionError(f'{what} did not happen in {timeout} s')

def test_second_run_on_one_folder_refuses_and_the_first_finishes_unchanged(tmp_path):
    out = tmp_path/'same'
    first = subprocess.Popen(['asc-train', *ARGS, '--seed', '3', '--out', str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait(lambda: (folder_owner(out) or {}).get('pid') is not None or first.poll() is not None, what='the first run taking its folder')
    t0 = time.time()
    second = run_cli('asc-train', *ARGS, '--seed', '5', '--out', out, check=False, timeout=120)   # other settings, same folder
    took = time.time() - t0
    assert first.poll() is None, 'the first run ended before the second started: the test proves nothing'
    assert second.returncode == 2, second.stdout + second.stderr
    owner = folder_owner(out)
    err = second.stderr.strip()
    assert err.startswith('asc-train: error: the run folder') and f"in use by process {owner['pid']} on {owner['host']}, started " in err, err
    assert 'asc-train' in err and '--seed 3' in err, err   # the owner's command
    assert took < 60, took   # refused at once, not after waiting for the folder
    so, se = first.communicate(timeout=900)
    assert first.returncode == 0, so[-2000:] + se[-2000:]
    # the first run's results are complete and its own: settings, data and report untouched by the second
    cfg = json.loads((out/'run.json').read_text()); rep = json.loads((out/'report.json').read_text())
    assert cfg['seed'] == 3 and rep['stages'][0]['name'] == 'stage1_train' and rep['kept']
    assert len(pd.read_csv(out/'submission.csv')) == rep['submission']['rows'] > 0
    assert not (out/OWNER_FILE).exists()   # released at the end

def _hold(folder):
    "A process that holds `folder` until killed"
    p = subprocess.Popen([sys.executable, '-c', f"from asc_nbdev.files import *\nimport time\nwith lock_folder({str(folder)!r}):\n"
                          "    print('held', flush=True); time.sleep(300)"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'held'
    return p

def test_predict_into_a_held_run_folder_and_a_held_cache_refuse(tmp_path):
    run = tmp_path/'run'; run.mkdir(); (run/'run.json').write_text('{}')
    holder = _hold(run)
    try:
        r = run_cli('asc-predict', '--model', tmp_path/'none.pt', tmp_path/'x.wav', '--out', run/'more.csv', check=False)
        assert r.returncode == 2 and f'the run folder {run} is in use by process {holder.pid}' in r.stderr, r.stderr
        fc = tmp_path/'fc'; h2 = _hold(fc)
        try:
            import numpy as np, soundfile as sf
            (tmp_path/'audio').mkdir()
            for i in range(3): sf.write(tmp_path/'audio'/f'c{i}.wav', np.random.default_rng(i).normal(0, .1, 8000), 16000)
            pd.DataFrame(dict(filename=[f'c{i}' for i in range(3)], location='Beijing', record_time='2023-01-01 10:00:00',
                              scene_label='Bus')).to_csv(tmp_path/'m.csv', index=False)
            r = run_cli('asc-features', tmp_path/'audio', tmp_path/'m.csv', fc, check=False)
            assert r.returncode != 0 and f'the feature cache folder {fc} is in use by process {h2.pid}' in r.stderr + r.stdout, r.stderr
        finally: h2.kill(); h2.wait()
    finally: holder.kill(); holder.wait()
    # the holders are gone: the next user takes their locks over and says so
    lines = []
    with lock_folder(run, log=lines.append): assert folder_owner(run)['pid'] == os.getpid()
    assert f'taking over from process {holder.pid}' in lines[0]
