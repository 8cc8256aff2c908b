"README, CI and the notebooks stay in step."
import re, subprocess, sys
from conftest import ROOT

def test_readme_in_step_with_index():
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_readme_starts_with_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT/'README.md').read_text()
    cmds = re.findall(r'```sh\n(.*?)\n```', readme, flags=re.S)
    assert len(cmds) >= 2 and cmds[0].startswith('pip install') and cmds[1].startswith('pip install -e ".[dev]"')
    ci = (ROOT/'.ci'/'run').read_text()
    assert 'grep -m1 -E \'^pip install -e "\\.\\[dev\\]" && \' README.md' in ci and 'eval "$TEST_CMD"' in ci
    assert 'nbdev-test' in cmds[1] and 'pytest' in cmds[1]

def test_all_reexports_public_api():
    import asc_nbdev.all as A
    assert len(A.__all__) == len(set(A.__all__)) and {'read_meta', 'CLASSES', 'make_split'} <= set(A.__all__)
