"""The house rules of DESIGN.md, counted: export cells by size and by definitions, module sizes, lines over 120
characters, private names imported across modules, public definitions without a sentence and a check.
`python tools/layout_counts.py [ROOT]` prints them; tests/test_layout.py enforces them."""
import ast, json, re, sys
from pathlib import Path

def export_cells(root):
    "(notebook, cell id, lines, top-level definitions) of every export cell"
    out = []
    for p in sorted((Path(root)/'nbs').glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] != 'code' or not s.lstrip().startswith('#| export'): continue
            try: defs = sum(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                            for n in ast.parse(s).body)
            except SyntaxError: defs = -1
            out.append((p.name, c.get('id'), len(s.splitlines()), defs))
    return out

def settings_dataclass(root, nb, cid) -> bool:
    """Whether export cell `cid` of notebook `nb` is a dataclass of settings (`RunConfig`, `Recipe`): fields with their
    docments, and at most 12 other lines. Its fields cannot be split over cells (docments reads the class's own source),
    so it is the one kind of export cell allowed over 60 lines."""
    c = next(c for c in json.loads((Path(root)/'nbs'/nb).read_text())['cells'] if c.get('id') == cid)
    t = ast.parse(''.join(c['source']))
    cls = [n for n in t.body if isinstance(n, ast.ClassDef)]
    if len(cls) != 1 or not any('dataclass' in ast.unparse(d) for d in cls[0].decorator_list): return False
    other = sum(n.end_lineno - n.lineno + 1 for n in cls[0].body if not isinstance(n, ast.AnnAssign))
    return other <= 12

def long_lines(root):
    """(module, line number, length) of every line over 120 characters; nbdev's generated `__all__` list is left out
    (nbdev wraps it at 120 characters without counting `__all__ = `)"""
    out = []
    for p, s in modules(root).items():
        lines, in_all = s.splitlines(), False
        for i, l in enumerate(lines, 1):
            if l.startswith('__all__ = ['): in_all = True
            if len(l) > 120 and not in_all: out.append((str(p.relative_to(root)), i, len(l)))
            if in_all and l.rstrip().endswith(']'): in_all = False
    return out

def unexplained(root):
    """(notebook, public names) of every export cell whose public definition is not followed, before the next export
    cell, by a markdown cell and a code cell with a check (`test_*`, `assert` or `expect(`)"""
    out = []
    for p in sorted((Path(root)/'nbs').glob('*.ipynb')):
        cells = json.loads(p.read_text())['cells']
        for i, c in enumerate(cells):
            s = ''.join(c['source'])
            if c['cell_type'] != 'code' or not s.lstrip().startswith('#| export'): continue
            try: pub = [n.name for n in ast.parse(s).body
                        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith('_')]
            except SyntaxError: pub = []
            if not pub: continue
            fol = []
            for x in cells[i + 1:]:
                xs = ''.join(x['source'])
                if x['cell_type'] == 'code' and xs.lstrip().startswith('#| export'): break
                fol.append((x['cell_type'], xs))
            md = any(t == 'markdown' for t, _ in fol)
            chk = any(t == 'code' and ('test_' in f or 'assert' in f or 'expect(' in f) for t, f in fol)
            if not (md and chk): out.append((p.name, pub))
    return out

def modules(root):
    "path -> source of every exported module but the generated index"
    return {p: p.read_text() for p in sorted((Path(root)/'asc_nbdev').rglob('*.py')) if p.name != '_modidx.py'}

def private_imports(root):
    "(module, name, from) of every private name imported from another module of the package"
    out = []
    for p, s in modules(root).items():
        for n in ast.walk(ast.parse(s)):
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or '').startswith('asc_nbdev')):
                out += [(str(p.relative_to(root)), a.name, ('.' * n.level) + (n.module or '')) for a in n.names
                        if a.name.startswith('_') and a.name != '__version__']
    return out

if __name__ == '__main__':
    root = Path(sys.argv[1] if len(sys.argv) > 1 else '.')
    ec = export_cells(root); sizes = [n for *_, n, _ in ec]
    mods = modules(root)
    n_lines = {str(p.relative_to(root)): len(s.splitlines()) for p, s in mods.items()}
    print(f"export cells: {len(ec)}; over 60 lines: {sum(s > 60 for s in sizes)}; over 100: {sum(s > 100 for s in sizes)}; "
          f"largest {max(sizes)}; median {sorted(sizes)[len(sizes) // 2]} lines; "
          f"with more than one definition: {sum(d > 1 for *_, d in ec)}")
    print(f"modules: {len(mods)}; over 600 lines: {[m for m, n in n_lines.items() if n > 600]}; "
          f"largest {max(n_lines.values())} lines; package lines {sum(n_lines.values())}")
    print(f"lines over 120 characters: {sum(len(l) > 120 for s in mods.values() for l in s.splitlines())}, "
          f"{len(long_lines(root))} without nbdev's generated `__all__` lists")
    big = [(nb, i, n) for nb, i, n, _ in ec if n > 60]
    print(f"export cells over 60 lines: {big}; of them settings dataclasses: "
          f"{[(nb, i, n) for nb, i, n in big if settings_dataclass(root, nb, i)]}")
    pi = private_imports(root)
    print(f"private names imported across modules: {len(pi)} {pi[:10]}")
    un = unexplained(root)
    print(f"public definitions not followed by a sentence and a check: {len(un)} {un[:10]}")
