"""The docs site as far as it can be built without Quarto: `nbdev-proc-nbs` processes every notebook (in a copy of the
project), each exported function and class and each public method (those added with @patch, and the others where shown) gets its docs entry (signature and parameter table, the
renderer of nbs/24_showdoc), and those pages rendered to HTML by `jupyter nbconvert` (the stand-in for Quarto) show
them in a real browser (headless Chromium; skipped, saying why, where none can be had)."""
import importlib, inspect, json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from browser import ROOT, wait_for

NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))

@pytest.fixture(scope='module')
def proc(tmp_path_factory):
    "nbdev-proc-nbs over a copy of nbs/ and pyproject.toml; returns the _proc folder"
    t = tmp_path_factory.mktemp('docs')
    shutil.copytree(ROOT/'nbs', t/'nbs'); shutil.copy(ROOT/'pyproject.toml', t)
    stub = t/'bin'; stub.mkdir()      # nbdev installs Quarto (sudo + download) where `quarto` is not on PATH: a stub says it is not needed
    (stub/'quarto').write_text('#!/bin/sh\necho "quarto is not used by the tests" >&2\nexit 1\n'); (stub/'quarto').chmod(0o755)
    env = {**os.environ, 'PATH': f"{stub}{os.pathsep}{os.environ['PATH']}"}
    nbdev_proc = Path(sys.executable).parent/'nbdev-proc-nbs'
    r = subprocess.run([str(nbdev_proc) if nbdev_proc.exists() else 'nbdev-proc-nbs', '--n-workers', '2'], cwd=t, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f'nbdev-proc-nbs failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}'
    return t/'_proc'

def _page(nb:dict) -> str|None:
    "The page a processed notebook becomes (its front matter's output-file)"
    raw = next((''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'raw'), '')
    m = re.search(r'^output-file:\s*(\S+)', raw, re.M)
    return m.group(1) if m else None

def _params(obj) -> list:
    "The parameters a docs table must list: those with a docment (an inherited third-party `__init__` has none)"
    from fastcore.docments import docments
    try: d = docments(obj, full=True)
    except Exception: return []
    return [k for k, v in d.items() if k not in ('self', 'cls', 'return') and v.get('docment')]

def expected_entries(page:str) -> dict:
    """name shown on `page` -> (parameters its table must list, whether the entry must be there): every callable in a
    module's `__all__` whose docs page it is (required), and the public methods of those classes (required where added
    with fastcore's `@patch`, which nbdev documents on their own; checked where shown when defined in the class body)"""
    from asc_nbdev._modidx import d
    out = {}
    for modname, syms in d['syms'].items():
        for sym, (url, _) in syms.items():
            rest = sym[len(modname) + 1:]
            if url.split('#')[0] != page or rest.count('.') > 1: continue
            mod = importlib.import_module(modname)
            if '.' not in rest:
                obj = getattr(mod, rest, None)
                if rest in getattr(mod, '__all__', []) and getattr(obj, '__module__', None) == modname and callable(obj):
                    out[rest] = (_params(obj), True)
                continue
            cname, meth = rest.split('.')
            cls = getattr(mod, cname, None)
            if meth.startswith('_') or cname not in getattr(mod, '__all__', []) or not isinstance(cls, type) or meth not in vars(cls): continue
            f = vars(cls)[meth]
            f = f.fget if isinstance(f, property) else getattr(f, '__func__', f)
            try: in_body = bool(re.search(rf'^\s+def {meth}\(', inspect.getsource(cls), re.M))
            except (OSError, TypeError): in_body = True
            out[rest] = (_params(f), not in_body)
    return out

def markdown_entries(nb:dict) -> dict:
    "name -> (signature, table rows) of each show_doc entry in a processed notebook's markdown outputs"
    out = {}
    for c in nb['cells']:
        for o in c.get('outputs', []):
            md = ''.join(o.get('data', {}).get('text/markdown', ''))
            m = re.search(r'^#{2,4} (\S+)\s*$', md, re.M)
            if not m or not md.startswith('---'): continue
            sig = re.search(r'```python\n(.*?)\n```', md, re.S)
            rows = re.findall(r'^\| (\w+) \|', md, re.M)
            out[m.group(1)] = (sig.group(1) if sig else '', rows)
    return out

def check_entries(page, found:dict, want:dict):
    "Each wanted name has an entry (where required) with its signature and a table row per documented parameter"
    assert want or not found, page
    for name, (params, required) in want.items():
        if name not in found:
            assert not required, f'{page}: no docs entry for {name} (entries: {sorted(found)[:12]}...)'
            continue
        sig, rows = found[name]
        short = name.split('.')[-1]
        assert re.match(rf'(def|class) {re.escape(name)}\(|(def|class) {re.escape(short)}\(', sig.strip()), \
            f'{page}: {name} shows no signature: {sig[:120]!r}'
        for p in params: assert re.search(rf'\b{re.escape(p)}\b', sig), f'{page}: the signature of {name} lacks {p}'
        miss = [p for p in params if p not in rows]
        assert not miss, f'{page}: the parameter table of {name} lacks {miss} (rows: {rows})'

def test_every_notebook_processed(proc):
    got = {p.name for p in proc.glob('*.ipynb')}
    assert got == {p.name for p in NBS}, sorted({p.name for p in NBS} ^ got)

def test_processed_entries(proc):
    "In the processed notebooks (what Quarto renders) every exported callable has a signature and a parameter table"
    n = methods = 0
    for p in sorted(proc.glob('*.ipynb')):
        nb = json.loads(p.read_text())
        page = _page(nb)
        want = expected_entries(page)
        check_entries(page, markdown_entries(nb), want); n += len(want)
        methods += sum(1 for k in want if '.' in k and k in markdown_entries(nb))
    assert n > 250 and methods >= 10, (n, methods)   # every module's __all__ and the methods shown (435 and 11 when written)

def _html_pages(proc, out):
    "The processed notebooks as HTML pages (nbconvert's basic template: no script from the internet), name -> path"
    import nbformat
    from nbconvert import HTMLExporter
    ex, pages = HTMLExporter(template_name='basic'), {}
    out.mkdir(exist_ok=True)
    for p in sorted(proc.glob('*.ipynb')):
        nb = nbformat.read(p, as_version=4)
        page = _page(nb)
        for c in nb.cells:
            for k in [k for k in c if k not in ('cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments')]:
                del c[k]          # nbdev's own keys (has_sd) and execution timings fail nbformat's validation
            c.metadata = {}
            if re.search(r'^#\|\s*echo:\s*false', c.source, re.M): c.source = ''   # as Quarto hides them
        body, _ = ex.from_notebook_node(nb)
        f = out/page
        f.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{page}</title></head><body>{body}</body></html>')
        pages[page] = f
    return pages

_ENTRIES_JS = """
return [...document.querySelectorAll('.output_markdown h3, .output_markdown h2, .output_markdown h4')].map(h => {
  const box = h.parentElement, pre = box.querySelector('pre'), t = box.querySelector('table');
  return {name: h.textContent.replace('¶', '').trim(), sig: pre ? pre.innerText : '', visible: !!(pre && pre.offsetWidth),
          rows: t ? [...t.querySelectorAll('tbody tr td:first-child')].map(td => td.innerText.trim()) : []};
});"""

def browser_entries(d, path) -> dict:
    d.get(path.resolve().as_uri())
    wait_for(lambda: d.execute_script('return document.readyState') == 'complete', 30, f'{path} loaded')
    es = d.execute_script(_ENTRIES_JS)
    hidden = [e['name'] for e in es if e['sig'] and not e['visible']]
    assert not hidden, f'{path.name}: signatures not shown: {hidden}'
    return {e['name']: (e['sig'], e['rows']) for e in es}

def test_pages_in_a_browser(proc, driver, tmp_path):
    "The HTML pages (nbconvert standing in for Quarto), opened in Chromium, show each entry's signature and parameter table"
    pages = _html_pages(proc, tmp_path/'html')
    n = 0
    for page, f in pages.items():
        want = expected_entries(page)
        check_entries(page, browser_entries(driver, f), want); n += len(want)
    assert n > 250, n
    # the check fails on a broken page: one entry's table removed, another's signature removed
    page = 'report.explorer.html'
    html = pages[page].read_text()
    i = html.index('id="clip_table"'); j = html.index('<table>', i); k = html.index('</table>', j) + len('</table>')
    (tmp_path/'no-table.html').write_text(html[:j] + html[k:])
    with pytest.raises(AssertionError, match='parameter table of clip_table lacks'):
        check_entries(page, browser_entries(driver, tmp_path/'no-table.html'), expected_entries(page))
    i = html.index('id="resynthesize"'); j = html.index('<pre>', i); k = html.index('</pre>', j) + len('</pre>')
    (tmp_path/'no-signature.html').write_text(html[:j] + html[k:])
    with pytest.raises(AssertionError, match='resynthesize shows no signature'):
        check_entries(page, browser_entries(driver, tmp_path/'no-signature.html'), expected_entries(page))
    i = html.index('id="ClipExplorer.figure"'); j = html.index('<table>', i); k = html.index('</table>', j) + len('</table>')
    (tmp_path/'no-method-table.html').write_text(html[:j] + html[k:])
    with pytest.raises(AssertionError, match='parameter table of ClipExplorer.figure lacks'):
        check_entries(page, browser_entries(driver, tmp_path/'no-method-table.html'), expected_entries(page))
