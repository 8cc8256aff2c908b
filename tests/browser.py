"""Helpers for the browser tests: headless Chromium through Selenium, a JupyterLab server, and the page checks.

Each check is a plain function that raises AssertionError saying what it found, so a test can also show that it
fails on a broken page (tests/test_browser.py does, for each one).
"""
import contextlib, json, os, re, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get('ASC_ARTIFACTS', ROOT/'_artifacts'))   # screenshots of the browser tests

def find_chromium():
    "(chromium, chromedriver) paths, or a string saying why there are none"
    names = dict(chromium=['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'], chromedriver=['chromedriver'])
    found = {k: next((p for p in map(shutil.which, v) if p), None) for k, v in names.items()}
    missing = [k for k, v in found.items() if v is None]
    if missing: return (f"no {' and no '.join(missing)} on PATH (Debian: apt-get install chromium chromium-driver; "
                        ".ci/run installs them where it can)")
    try: import selenium  # noqa: F401
    except ImportError: return 'selenium is not installed (pip install -e ".[dev]")'
    def major(exe):
        try: out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError): return None
        m = re.search(r'(\d+)\.\d+\.\d+', out)
        return m and int(m.group(1))
    b, d = major(found['chromium']), major(found['chromedriver'])
    if b and d and b != d: return f"{found['chromium']} is version {b} but {found['chromedriver']} is for {d}: install a matching pair"
    return found['chromium'], found['chromedriver']

def chrome(chromium, chromedriver, width=1400, height=1000):
    "A headless Chromium driven by Selenium"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = chromium
    for a in ['--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', f'--window-size={width},{height}',
              '--allow-file-access-from-files', '--no-first-run']:
        o.add_argument(a)
    return webdriver.Chrome(service=Service(chromedriver), options=o)

def save_screenshot(png:bytes, path:Path, colors:int=128):
    "Write a screenshot as a palette PNG (a third of the size, for the docs); returns the path"
    import io
    from PIL import Image
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(png)).convert('RGB').quantize(colors).save(path, optimize=True)
    return path

def wait_for(cond, timeout, what, every=0.25, retry=()):
    """Call `cond()` until it returns something true (returned); AssertionError naming `what` after `timeout` seconds.
    An AssertionError from `cond` ends the wait at once, unless `retry` holds it (then it is tried again)"""
    end, last = time.monotonic() + timeout, None
    while True:
        try:
            v = cond()
            if v: return v
        except retry as e: last = e
        except AssertionError: raise
        except Exception as e: last = e    # a page still building: stale elements and the like
        if time.monotonic() > end:
            raise AssertionError(f'{what}: not seen within {timeout} s' + (f' (last error: {type(last).__name__}: {last})' if last else ''))
        time.sleep(every)

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

# JupyterLab's user settings for a test: no news popup, every cell in the page (no windowing), no autosave races
_LAB_SETTINGS = {
    '@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
    '@jupyterlab/notebook-extension/tracker.jupyterlab-settings': {'windowingMode': 'none'},
    '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': {'autosave': False},
}

def _die_with_parent():
    "Linux: the server gets SIGTERM when the test process dies, even by SIGKILL (a CI timeout), instead of living on"
    try:
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError): pass

@contextlib.contextmanager
def jupyter_lab(root_dir:Path, work:Path, timeout=90):
    "A JupyterLab server on a free localhost port with a random token, serving `root_dir`; stopped in every outcome"
    port, token = free_port(), secrets.token_hex(16)
    settings = work/'lab-settings'
    for k, v in _LAB_SETTINGS.items():
        p = settings/k; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(v))
    env = {**os.environ, 'JUPYTERLAB_SETTINGS_DIR': str(settings), 'JUPYTERLAB_WORKSPACES_DIR': str(work/'lab-workspaces'),
           'JUPYTER_RUNTIME_DIR': str(work/'jupyter-runtime'), 'JUPYTER_CONFIG_DIR': str(work/'jupyter-config'),
           'JUPYTER_DATA_DIR': str(work/'jupyter-data')}     # no user kernelspec: the kernel is this Python's (ipykernel's own spec)
    env.pop('MPLBACKEND', None)      # the tests' Agg would reach the kernel: a user's kernel draws inline
    log = open(work/'jupyterlab.log', 'w')
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ip=127.0.0.1', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={root_dir}', '--ServerApp.port_retries=0', '--LabApp.news_url=', '--ServerApp.allow_root=True']
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    url = f'http://127.0.0.1:{port}'
    try:
        def up():
            if proc.poll() is not None:
                raise AssertionError(f'JupyterLab exited {proc.returncode}:\n' + (work/'jupyterlab.log').read_text()[-3000:])
            with urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2) as r: return r.status == 200
        wait_for(up, timeout, f'JupyterLab answering on {url}')
        yield url, token
    finally:
        with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGTERM)
        try: proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError): os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(15)
        log.close()

def lab_log(work:Path) -> str:
    p = work/'jupyterlab.log'
    return p.read_text()[-4000:] if p.exists() else ''

# ---------------------------------------------------------------- JupyterLab: open a notebook and run it
def _accept_dialogs(d) -> bool:
    "Accept JupyterLab's dialogs (the 'Select Kernel' one on a first open); True if there was one"
    from selenium.webdriver.common.by import By
    bs = d.find_elements(By.CSS_SELECTOR, '.jp-Dialog .jp-Dialog-button.jp-mod-accept')
    for b in bs: b.click()
    return bool(bs)

def _kernel_idle(d) -> bool:
    from selenium.webdriver.common.by import By
    st = d.find_elements(By.CSS_SELECTOR, '.jp-Notebook-ExecutionIndicator, .jp-Toolbar-kernelStatus')
    return any((e.get_attribute('data-status') or '') == 'idle' or 'idle' in (e.get_attribute('title') or '').lower() for e in st)

def _settled(d, quiet=2.0, timeout=120):
    "Accept dialogs until none has shown for `quiet` seconds with the kernel idle"
    last = time.monotonic()
    def calm():
        nonlocal last
        if _accept_dialogs(d): last = time.monotonic(); return False
        return time.monotonic() - last > quiet and _kernel_idle(d)
    wait_for(calm, timeout, f'the notebook settled (no dialog for {quiet} s and the kernel idle)')

def _run_all_cells(d):
    from selenium.webdriver.common.by import By
    menu = wait_for(lambda: [e for e in d.find_elements(By.CSS_SELECTOR, '.lm-MenuBar-itemLabel') if e.text == 'Run'], 30, 'the Run menu')
    menu[0].click()
    wait_for(lambda: [e for e in d.find_elements(By.CSS_SELECTOR, '.lm-Menu-itemLabel') if e.text == 'Run All Cells'], 30,
             'Run > Run All Cells')[0].click()

def run_all(d, url, token, name, timeout=300):
    "Open notebook `name` in JupyterLab, run all its cells, wait until each code cell has run; returns the cells' prompts"
    from selenium.webdriver.common.by import By
    d.get(f'{url}/lab/tree/{name}?token={token}')
    wait_for(lambda: d.find_elements(By.CSS_SELECTOR, '.jp-Notebook .jp-Cell'), 120, f'{name} opened in JupyterLab')
    _settled(d)
    _run_all_cells(d); clicked = time.monotonic()
    def done():
        nonlocal clicked
        if _accept_dialogs(d): time.sleep(1); _run_all_cells(d); clicked = time.monotonic()   # a dialog took the click: again
        errors = notebook_errors(d)
        if errors: raise AssertionError(f'{name}: a cell shows an error while running all cells:\n{errors[0][:3000]}')
        ps = [e.text.strip() for e in d.find_elements(By.CSS_SELECTOR, '.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
        if ps and all(p == '[ ]:' for p in ps) and time.monotonic() - clicked > 20: _run_all_cells(d); clicked = time.monotonic()
        return ps if ps and all(re.fullmatch(r'\[\d+\]:', p) for p in ps) else None
    return wait_for(done, timeout, f'every code cell of {name} run (an execution count in each prompt)', every=1)

_ERROR = re.compile(r'Traceback \(most recent call last\)|^\w*(Error|Exception)\b.*|Error in callback', re.M)

def notebook_errors(d) -> list:
    "Texts of the outputs that show an error: an error output, or stderr holding a traceback or an exception"
    from selenium.webdriver.common.by import By
    outs = d.find_elements(By.CSS_SELECTOR, '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    return [t for t in (o.text for o in outs) if _ERROR.search(t)]

# ---------------------------------------------------------------- the clip explorer
def explorer_roots(d) -> list:
    "Each clip explorer shown in the page: the output area holding a dropdown labelled 'class'"
    from selenium.webdriver.common.by import By
    return d.find_elements(By.XPATH, "//div[contains(@class,'jp-OutputArea-output')][.//div[contains(@class,'widget-dropdown')]"
                                     "[label[normalize-space()='class']]]")

def explorer_state(root) -> dict:
    "What an explorer shows: its filter controls, the count line, the chosen clip's label, and its pictures' sources"
    from selenium.webdriver.common.by import By
    labels = [e.text.strip() for e in root.find_elements(By.CSS_SELECTOR, '.widget-label')]
    html = [e.text.strip() for e in root.find_elements(By.CSS_SELECTOR, '.widget-html-content')]
    imgs = root.find_elements(By.CSS_SELECTOR, '.widget-output img')
    sel = {e.find_element(By.XPATH, '..').find_element(By.CSS_SELECTOR, 'label').text.strip(): e
           for e in root.find_elements(By.CSS_SELECTOR, '.widget-dropdown select')}
    clip = sel.get('clip')
    return dict(labels=labels, count=next((h for h in html if 'clips pass the filters' in h), None),
                clip=None if clip is None else clip.get_attribute('value'), images=[i.get_attribute('src') or '' for i in imgs],
                natural_widths=[i.get_property('naturalWidth') for i in imgs], selects=sel)

def check_explorer_rendered(root):
    "The explorer shows its controls, a count line, a chosen clip and a loaded spectrogram picture"
    s = explorer_state(root)
    want = {'class', 'city', 'part', 'hour', 'predicted', 'outcome', 'confidence', 'clip'}
    assert want <= set(s['labels']), f"explorer controls missing: {sorted(want - set(s['labels']))} (found {s['labels']})"
    assert s['count'] and re.search(r'\d+ of \d+ clips pass the filters', s['count']), f"no count line (found {s['count']!r})"
    assert s['clip'], 'no clip is chosen'
    assert s['images'] and all(w and w > 0 for w in s['natural_widths']), \
        f"no loaded spectrogram picture in the explorer's output ({len(s['images'])} images, natural widths {s['natural_widths']})"
    return s

def check_explorer_responds(root, control='class', choice=None, timeout=30, picture_timeout=None):
    """Choosing `choice` in the `control` dropdown (None: the first option that is not 'any' and not the shown clip's own
    class) changes the count line and the chosen clip (within `timeout` s) and the picture (within `picture_timeout` s,
    default `timeout`); returns (before, after)"""
    from selenium.webdriver.support.ui import Select
    before = wait_for(lambda: check_explorer_rendered(root), timeout, 'the explorer rendered', retry=(AssertionError,))
    sel = Select(before['selects'][control])
    if choice is None:
        shown = [p.strip() for p in Select(before['selects']['clip']).first_selected_option.text.split('|')]
        choice = next(o.text for o in sel.options if o.text not in ('any', *shown[1:2]))
    sel.select_by_visible_text(choice)
    def changed():
        s = explorer_state(root)
        return s if s['count'] != before['count'] and s['clip'] != before['clip'] else None
    after = wait_for(changed, timeout, f"the count line and the chosen clip after choosing {control} = {choice}")
    n, m = map(int, re.search(r'(\d+) of (\d+)', after['count']).groups())
    assert 0 < n < m, f'choosing {control} = {choice} should leave some but not all clips: {after["count"]!r}'
    def new_picture():
        s = explorer_state(root)
        return s if s['images'] and s['images'][0] != before['images'][0] and all(w and w > 0 for w in s['natural_widths']) else None
    after = wait_for(new_picture, picture_timeout or timeout, f'a new spectrogram picture after choosing {control} = {choice} (the text changed: '
                                           f'{before["count"]!r} -> {after["count"]!r})')
    return before, after

# ---------------------------------------------------------------- a static HTML page (the run report, the docs)
def page_state(d, ids=()) -> dict:
    "Every image (src, natural width) and table (header, rows), the page's text, and which of `ids` are elements of it"
    return d.execute_script("""
        return {images: [...document.images].map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})),
                tables: [...document.querySelectorAll('table')].map(t => ({head: [...t.querySelectorAll('th')].map(h => h.textContent.trim()),
                                                                          rows: t.querySelectorAll('tbody tr').length})),
                text: document.body.innerText, ids: arguments[0].filter(i => document.getElementById(i))};""", list(ids))

def check_report_page(d, path:Path, tables:int, text_shown=(), ids_absent=()):
    """`asc-report --html` page: every figure loaded (natural width > 0), `tables` tables with rows, each string of
    `text_shown` in the page's visible text (a city name holding HTML must be shown as text), no element with an id of `ids_absent`"""
    d.get(path.resolve().as_uri())
    wait_for(lambda: d.execute_script('return document.readyState') == 'complete', 30, f'{path} loaded')
    s = page_state(d, ids_absent)
    bad = [i['src'] for i in s['images'] if not i['width']]
    assert s['images'], f'{path}: no figures'
    assert not bad, f'{path}: {len(bad)} of {len(s["images"])} figures did not load: {bad}'
    empty = [t['head'] for t in s['tables'] if not t['rows']]
    assert len(s['tables']) == tables, f'{path}: {len(s["tables"])} tables, expected {tables}'
    assert not empty, f'{path}: tables without rows: {empty}'
    for t in text_shown: assert t in s['text'], f'{path}: {t!r} is not shown as text'
    assert not s['ids'], f'{path}: the page holds elements that came from the data as HTML: #{", #".join(s["ids"])}'
    return s
