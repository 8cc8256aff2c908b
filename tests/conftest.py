import os, sys, subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / 'shared'
DEV_CSV = SHARED / 'data' / 'cas2023' / 'APSIPA2025_GC_ASC_dev_metadata.csv'
EVAL_CSV = SHARED / 'data' / 'cas2023' / 'APSIPA2025_GC_ASC_eval_metadata.csv'
REAL_WAV = SHARED / 'data' / 'audio' / 'acoustic_scene.wav'
os.environ.setdefault('MPLBACKEND', 'Agg')

def run_cli(*args, check=True, timeout=600, **kw):
    "Run a command-line tool of the package in a fresh process; returns the CompletedProcess"
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} exited {r.returncode}\nstdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    return r

@pytest.fixture
def shared_data():
    if not DEV_CSV.exists(): pytest.skip(f'real CAS metadata not found at {DEV_CSV}')
    return SHARED / 'data'

def cli_runner(name, timeout=300):
    "A function running console script `name` with arguments, unchecked (tests read returncode, stdout, stderr)"
    return lambda *args: run_cli(name, *args, check=False, timeout=timeout)

@pytest.fixture(scope='module')
def driver():
    "A headless Chromium driven by Selenium (tests/browser.py); the test skips, saying why, where none can be had"
    from browser import find_chromium, chrome
    found = find_chromium()
    if isinstance(found, str): pytest.skip(found)
    d = chrome(*found)
    yield d
    d.quit()
