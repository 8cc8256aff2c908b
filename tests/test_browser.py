"""The clip explorer in JupyterLab and the `asc-report --html` page, opened in a real browser (headless Chromium driven
by Selenium). Skipped, saying why, only where no Chromium can be had (.ci/run installs Debian's chromium and
chromium-driver where they are missing). Screenshots land in _artifacts/ (ASC_ARTIFACTS to change it)."""
import json, re, shutil
from pathlib import Path
import pandas as pd, pytest
from browser import (ROOT, ARTIFACTS, jupyter_lab, lab_log, run_all, notebook_errors, explorer_roots, wait_for,
                     explorer_state, save_screenshot,
                     check_explorer_rendered, check_explorer_responds, check_report_page)

# The cell added to the end of the copy of notebook 20: a second explorer whose picture never updates after it is first
# drawn, the broken widget the check must catch.
BROKEN_CELL = '''# added by tests/test_browser.py: an explorer whose picture is drawn once and never again
broken = ClipExplorer(data_dir=D)
_draw = broken._render
def _draw_once():
    _draw(); broken._render = lambda: None
broken._render = _draw_once
broken'''

def _explorer_copy(dst:Path) -> str:
    "A copy of the explorer notebook (its own small synthetic data and run) with the broken explorer's cell at the end"
    nb = json.loads((ROOT/'nbs'/'53_report.explorer.ipynb').read_text())
    nb['cells'].append({'cell_type': 'code', 'execution_count': None, 'id': 'brokenexplorer', 'metadata': {}, 'outputs': [],
                        'source': BROKEN_CELL.splitlines(keepends=True)})
    nb['metadata']['kernelspec'] = {'display_name': 'Python 3 (ipykernel)', 'language': 'python', 'name': 'python3'}
    (dst/'explorer.ipynb').write_text(json.dumps(nb))
    return 'explorer.ipynb'

def test_explorer_in_jupyterlab(driver, tmp_path):
    "JupyterLab runs the explorer notebook; the widget renders, answers a changed control, and a broken one is caught"
    nbdir, work = tmp_path/'nb', tmp_path/'work'; nbdir.mkdir(); work.mkdir()
    name = _explorer_copy(nbdir)
    with jupyter_lab(nbdir, work) as (url, token):
        try:
            run_all(driver, url, token, name, timeout=400)
            assert not notebook_errors(driver)
            roots = explorer_roots(driver)
            assert len(roots) == 2, f'{len(roots)} explorers in the page, expected the run\'s and the broken one'
            ex, broken = roots
            ex.location_once_scrolled_into_view
            before, after = check_explorer_responds(ex)
            driver.set_window_size(1400, 1900)                  # the whole widget inside JupyterLab's scrolled panel
            driver.execute_script('arguments[0].scrollIntoView(true)', ex)
            wait_for(lambda: explorer_state(ex)['natural_widths'][0] > 0, 10, 'the picture after resizing the window')
            save_screenshot(ex.screenshot_as_png, ARTIFACTS/'explorer.png')
            driver.set_window_size(1400, 1000)
            print(f"explorer: {before['count']!r} -> {after['count']!r}; clip {before['clip']} -> {after['clip']}; "
                  f"screenshot {ARTIFACTS/'explorer.png'}")
            # the check fails on a widget whose picture never updates: its text changes, its picture does not
            broken.location_once_scrolled_into_view
            wait_for(lambda: check_explorer_rendered(broken), 30, 'the broken explorer rendered', retry=(AssertionError,))
            with pytest.raises(AssertionError, match='a new spectrogram picture'):
                check_explorer_responds(broken, timeout=60, picture_timeout=8)
        except Exception:
            driver.save_screenshot(str(tmp_path/'failure.png'))
            print(f'screenshot of the failure: {tmp_path/"failure.png"}\nJupyterLab log:\n{lab_log(work)}')
            raise

# ---------------------------------------------------------------- the report page
CITY = 'Gotham <span id="injected">&</span>'    # a city name holding HTML, as a metadata file may

@pytest.fixture(scope='module')
def report(tmp_path_factory):
    "A tiny run whose eval part has a city named with HTML, and its asc-report --html"
    from asc_nbdev.data.synthetic import make_synthetic
    from asc_nbdev.pipeline.run import run_pipeline
    from asc_nbdev.pipeline.config import RunConfig
    from asc_nbdev.train.recipes import get_recipe
    from conftest import run_cli
    run = tmp_path_factory.mktemp('report')/'run'; D = run/'data'
    make_synthetic(D, preset='tiny', n_clips=160, labeled_frac=0.5, progress=False)
    ev = pd.read_csv(D/'eval_metadata.csv', dtype=str, keep_default_na=False)
    city = ev['location'].iloc[0]
    ev.loc[ev['location'] == city, 'location'] = CITY
    ev.to_csv(D/'eval_metadata.csv', index=False)
    run_pipeline(RunConfig(out=run, audio=D/'audio', meta=D/'dev_metadata.csv', recipe=get_recipe('li2025', quick=True, epochs=2), eval_meta=D/'eval_metadata.csv', truth=D/'truth.csv'), progress=False, log=lambda *a: None)
    run_cli('asc-report', run, '--html', timeout=300)
    return run/'report'

def _md_counts(md:str):
    "Tables and figures of the report's index.md (the HTML page is written from the same blocks)"
    return len(re.findall(r'^\|( ?:?-+:? ?\|)+\s*$', md, re.M)), len(re.findall(r'!\[', md))

def test_report_page(driver, report, tmp_path):
    "Every figure of asc-report --html loads, every table is there, and a city named with HTML is shown as text"
    tables, figures = _md_counts((report/'index.md').read_text())
    assert tables >= 5 and figures >= 5, (tables, figures)
    s = check_report_page(driver, report/'index.html', tables=tables, text_shown=[CITY], ids_absent=['injected'])
    assert len(s['images']) == figures, (len(s['images']), figures)
    driver.set_window_size(1100, 1400); save_screenshot(driver.get_screenshot_as_png(), ARTIFACTS/'report.png'); driver.set_window_size(1400, 1000)
    print(f"report: {figures} figures loaded, {tables} tables; screenshot {ARTIFACTS/'report.png'}")

def test_report_check_fails_on_broken_pages(driver, report, tmp_path):
    "The page check catches a missing figure, a missing table and a city name written as HTML"
    tables, _ = _md_counts((report/'index.md').read_text())
    html = (report/'index.html').read_text()
    def broken(name, text, drop_png=None):
        d = tmp_path/name; shutil.copytree(report, d)
        (d/'index.html').write_text(text)
        if drop_png: (d/drop_png).unlink()
        return d/'index.html'
    png = re.search(r'<img src="([^"]+\.png)"', html).group(1)
    with pytest.raises(AssertionError, match='did not load'):
        check_report_page(driver, broken('no-figure', html, drop_png=png), tables=tables, text_shown=[CITY])
    i = html.index('<table>'); j = html.index('</table>', i) + len('</table>')
    with pytest.raises(AssertionError, match=f'{tables - 1} tables, expected {tables}'):
        check_report_page(driver, broken('no-table', html[:i] + html[j:]), tables=tables, text_shown=[CITY])
    escaped = 'Gotham &lt;span id=&quot;injected&quot;&gt;&amp;&lt;/span&gt;'
    assert escaped in html, 'the city name is not in the page as escaped text'
    with pytest.raises(AssertionError, match='came from the data as HTML: #injected'):
        check_report_page(driver, broken('raw-city', html.replace(escaped, CITY)), tables=tables, ids_absent=['injected'])
    with pytest.raises(AssertionError, match='is not shown as text'):
        check_report_page(driver, broken('raw-city2', html.replace(escaped, CITY)), tables=tables, text_shown=[CITY])
