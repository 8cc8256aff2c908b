"GitHub workflows: test.yaml runs .ci/run (the CI here), deploy.yaml renders into the folder nbs/nbdev.yml names and publishes it."
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
W = ROOT/'.github'/'workflows'

def _steps(name): return yaml.safe_load((W/name).read_text())['jobs'][next(iter(yaml.safe_load((W/name).read_text())['jobs']))]['steps']

def test_test_workflow_runs_the_ci_script():
    runs = [s.get('run', '') for s in _steps('test.yaml')]
    assert 'bash .ci/run' in runs
    py = next(s for s in _steps('test.yaml') if 'setup-python' in s.get('uses', ''))
    assert py['with']['python-version'] == '3.11'

def test_deploy_publishes_what_quarto_renders():
    out = yaml.safe_load((ROOT/'nbs'/'nbdev.yml').read_text())['project']['output-dir']
    steps = _steps('deploy.yaml')
    assert any(s.get('run') == 'nbdev-docs' for s in steps)                     # nbdev 3's command (hyphenated)
    assert any('quarto-actions/setup' in s.get('uses', '') for s in steps)
    pub = next(s for s in steps if 'gh-pages' in s.get('uses', ''))
    assert pub['with']['publish_dir'].strip('./') == out.strip('./')
    assert 'pip install -e ".[dev]"' in [s.get('run', '') for s in steps]

def test_readme_says_where_the_docs_live():
    url = yaml.safe_load((ROOT/'nbs'/'nbdev.yml').read_text())['website']['site-url']
    assert url in (ROOT/'README.md').read_text()

def test_oldest_dependencies_are_pinned_at_the_lower_bounds():
    "constraints/oldest.txt pins every core dependency at pyproject.toml's lower bound, and a workflow installs it and tests"
    import tomllib
    from packaging.requirements import Requirement
    deps = [Requirement(r) for r in tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']]
    lower = {r.name.lower(): next(s.version for s in r.specifier if s.operator == '>=') for r in deps}
    pins = dict(l.strip().split('==') for l in (ROOT/'constraints'/'oldest.txt').read_text().splitlines() if '==' in l and not l.startswith('#'))
    pins = {k.lower(): v for k, v in pins.items()}
    assert set(lower) <= set(pins), f"not pinned: {sorted(set(lower) - set(pins))}"
    assert {k: pins[k] for k in lower if pins[k].split('.')[:len(lower[k].split('.'))] != lower[k].split('.')} == {}
    assert any('tools/oldest_deps.sh' in s.get('run', '') for s in _steps('oldest.yaml'))
