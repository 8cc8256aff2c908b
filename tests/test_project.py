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

def test_notebook_cells_keep_imports_apart():
    "nbdev-proc-nbs (the docs build) runs every cell that holds an import: such a cell must hold imports only, or be exported"
    import ast, json
    bad = []
    for p in sorted((ROOT/'nbs').glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            src = ''.join(c['source']); dirs = [l.replace(' ', '') for l in src.splitlines() if l.startswith('#|')]
            if any(d.startswith(('#|export', '#|exec_doc')) or 'eval:false' in d.lower() for d in dirs): continue
            try: tree = ast.parse(src)
            except SyntaxError: continue
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            other = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
            nested = any(isinstance(n, (ast.Import, ast.ImportFrom)) for o in other for n in ast.walk(o))
            if top and other: bad.append(f"{p.name} cell {c.get('id')}")
            elif nested and not top and c.get('id') not in ('4bb764b2',): bad.append(f"{p.name} cell {c.get('id')} (import inside code)")
    assert not bad, f"cells mixing imports and other code (move the imports to a cell of their own): {bad}"

def test_no_name_clashes_with_fastai_or_sklearn():
    "`from asc_nbdev.all import *` after fastai's and sklearn's stars hides none of their names with another meaning"
    import asc_nbdev.all as a, fastai.vision.all as fv, sklearn.metrics as skm
    ours = set(getattr(a, '__all__', None) or [n for n in dir(a) if not n.startswith('_')])
    clash = sorted(n for n in ours for mod in (fv, skm) if hasattr(mod, n) and getattr(mod, n) is not getattr(a, n)
                   and not n.startswith('__'))
    assert clash == [], f"asc_nbdev.all hides these names of fastai.vision.all / sklearn.metrics: {clash}"
