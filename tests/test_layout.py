"""The house rules of the notebooks and the package (DESIGN.md, issue 38), counted by `tools/layout_counts.py`:
export cells of at most 60 lines (a dataclass of settings excepted: one line per field) and one definition each, each
public definition followed by a sentence and a check, modules of at most 600 lines, lines of at most 120 characters,
no private name imported from another module."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location('layout_counts', ROOT/'tools'/'layout_counts.py')
lc = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(lc)


def test_export_cells_hold_one_definition_of_at_most_60_lines():
    cells = lc.export_cells(ROOT)
    assert len(cells) > 300, 'the notebooks were not found'
    long = [(nb, i, n) for nb, i, n, _ in cells if n > 60 and not lc.settings_dataclass(ROOT, nb, i)]
    many = [(nb, i, d) for nb, i, _, d in cells if d > 1]
    assert not long, f'export cells over 60 lines (notebook, cell id, lines): {long}'
    assert not many, f'export cells with more than one definition (notebook, cell id, definitions): {many}'


def test_public_definitions_are_explained_and_checked():
    left = lc.unexplained(ROOT)
    assert not left, f'public definitions not followed by a markdown sentence and a check: {left}'


def test_modules_are_small_and_lines_short():
    mods = lc.modules(ROOT)
    assert len(mods) > 40
    big = {str(p.relative_to(ROOT)): len(s.splitlines()) for p, s in mods.items() if len(s.splitlines()) > 600}
    assert not big, f'modules over 600 lines: {big}'
    long = [f'{p}:{i}: {n} characters' for p, i, n in lc.long_lines(ROOT)]
    assert not long, 'lines over 120 characters (wrap them in the notebook):\n' + '\n'.join(long[:30])


def test_no_private_name_crosses_modules():
    assert not lc.private_imports(ROOT)
