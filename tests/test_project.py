"README, CI and the notebooks stay in step."
import os, re, subprocess, sys
from pathlib import Path
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

def _declared() -> set:
    "Distribution names pyproject.toml declares: the dependencies and every extra, normalised"
    import tomllib
    from packaging.requirements import Requirement
    p = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']
    reqs = p['dependencies'] + [r for v in p.get('optional-dependencies', {}).values() for r in v]
    return {Requirement(r).name.lower().replace('_', '-') for r in reqs}

def _imports() -> dict:
    "Top-level module -> the package files that import it (absolute imports of other packages only)"
    import ast
    out = {}
    for f in sorted((ROOT/'asc_nbdev').rglob('*.py')):
        for n in ast.walk(ast.parse(f.read_text())):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module] if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module else []
            for m in mods:
                top = m.split('.')[0]
                if top != 'asc_nbdev' and top not in sys.stdlib_module_names and top != '__future__':
                    out.setdefault(top, set()).add(f.relative_to(ROOT).as_posix())
    return out

def test_every_import_is_declared():
    "Each package the library imports is a declared dependency (core or an extra), not one that arrives only through another"
    from importlib.metadata import packages_distributions
    dists, declared = packages_distributions(), _declared()
    missing = {}
    for mod, files in _imports().items():
        names = {d.lower().replace('_', '-') for d in dists.get(mod, [mod])}   # not installed (an optional extra): its own name
        if not names & declared: missing[mod] = (sorted(names), sorted(files)[:3])
    assert not missing, f"imported but not declared in pyproject.toml (module: distributions, files): {missing}"

def test_help_says_each_default_once():
    r = subprocess.run(['asc-train', '--help'], capture_output=True, text=True, env=dict(os.environ, COLUMNS='400'))
    assert r.returncode == 0, r.stderr
    opts = [l for l in r.stdout.splitlines() if l.strip().startswith('--')]
    assert len(opts) > 30
    twice = [l.strip() for l in opts if l.count('(default:') > 1 or ("default" in l.split('(default:')[0] and '(default:' in l)]
    assert not twice and '(default: None)' not in r.stdout, twice
    assert "--rounds ROUNDS" in r.stdout and "rounds (default: the recipe's)" in r.stdout

def test_cpu_notebook_output_has_no_error_lines(tmp_path):
    "The profiling notebook on a CPU-only machine prints no kineto ERROR/USDT lines (they are not errors), also when torch was loaded by an earlier notebook in another thread"
    import torch, pytest
    if torch.cuda.is_available(): pytest.skip('on a GPU machine the profiler keeps its own lines')
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('*_models.*.ipynb'))
    two = [n for n in nbs if 'resnet' in n or 'mobileascnet' in n]   # one worker: torch comes in with the first, the profiler runs in the second
    env = {k: v for k, v in os.environ.items() if k != 'KINETO_LOG_LEVEL'}
    r = subprocess.run(['nbdev-test', '--n-workers', '1', '--file-re', '|'.join(re.escape(n) for n in two)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0 and len(two) == 2, r.stdout[-2000:] + r.stderr[-2000:]
    bad = [l for l in (r.stdout + r.stderr).splitlines() if re.match(r'^(ERROR|USDT|STAGE|WARNING):', l)]
    assert not bad, bad


def test_no_script_hides_a_standard_module():
    "A script in bench/ or tools/ named like a standard module (bench/ssl.py once) hides it from every script beside it: `import ssl` found the script"
    import sys
    clash = [str(p.relative_to(ROOT)) for d in ('bench', 'tools') for p in (ROOT/d).glob('*.py') if p.stem in sys.stdlib_module_names]
    assert clash == [], f"these scripts hide the standard module of their name from the scripts beside them; rename them: {clash}"

def test_readme_python_calls_fit_the_api():
    """Every call in README's Python examples to a name of `asc_nbdev.all` binds to that name's signature (issue 38 removed
    `run_pipeline`'s older positional form, which README still showed)"""
    import ast, inspect
    import asc_nbdev.all as A
    blocks = re.findall(r'```python\n(.*?)\n```', (ROOT/'README.md').read_text(), flags=re.S)
    assert blocks
    checked, bad = 0, []
    for b in blocks:
        for n in ast.walk(ast.parse(b)):
            if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in A.__all__): continue
            f = getattr(A, n.func.id)
            if not callable(f): continue
            try: sig = inspect.signature(f)
            except (TypeError, ValueError): continue
            try: sig.bind(*[None] * len(n.args), **{k.arg: None for k in n.keywords if k.arg})
            except TypeError as e: bad.append(f'{ast.unparse(n)[:100]}: {e}')
            checked += 1
    assert checked >= 3 and not bad, bad

def test_notebooks_make_scratch_folders_that_go_away():
    "A notebook's example folders come from `scratch_dir` (removed when the process ends), never from `tempfile.mkdtemp`"
    import json
    bad = [f"{p.name} cell {c.get('id')}" for p in sorted((ROOT/'nbs').glob('*.ipynb'))
           for c in json.loads(p.read_text())['cells']
           if c['cell_type'] == 'code' and 'mkdtemp(' in ''.join(c['source'])
           and not ''.join(c['source']).startswith('#| export')]
    assert not bad, f"cells that leave a temporary folder behind (use asc_nbdev.files.scratch_dir): {bad}"

def test_nbdev_test_leaves_no_temporary_folders():
    "Notebooks run by nbdev-test in worker processes (as CI runs them) leave nothing in the temporary folder"
    import shutil, tempfile
    # a short TMPDIR, not tmp_path: nbdev-test's process pool puts a socket there, and a socket's path has a 107-byte limit
    tmp = Path(tempfile.mkdtemp(prefix='asc-nbt-'))
    try:
        env = dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS='1', MPLBACKEND='Agg')
        r = subprocess.run(['nbdev-test', '--n-workers', '2', '--file-re', r'^0[01]_'], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        left = sorted(p.name for p in tmp.iterdir() if p.name != 'torchinductor_root')   # torch's own compile cache
        assert left == [], f"left in TMPDIR: {left}"
    finally: shutil.rmtree(tmp, ignore_errors=True)
