"""The house rules of DESIGN.md, counted: export cells by size and by definitions, module sizes, lines over 120 characters,
private names imported across modules. `python tools/layout_counts.py [ROOT]` prints them (tests/test_layout.py enforces them)."""
import ast, json, re, sys
from pathlib import Path

def export_cells(root):
    "(notebook, cell id, lines, top-level definitions) of every export cell"
    out = []
    for p in sorted((Path(root)/'nbs').glob('*.ipynb')):
        for c in json.loads(p.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] != 'code' or not s.lstrip().startswith('#| export'): continue
            try: defs = sum(isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) for n in ast.parse(s).body)
            except SyntaxError: defs = -1
            out.append((p.name, c.get('id'), len(s.splitlines()), defs))
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
    print(f"export cells: {len(ec)}; over 60 lines: {sum(s > 60 for s in sizes)}; over 100: {sum(s > 100 for s in sizes)}; "
          f"largest {max(sizes)}; median {sorted(sizes)[len(sizes) // 2]} lines; with more than one definition: {sum(d > 1 for *_, d in ec)}")
    print(f"modules: {len(mods)}; over 600 lines: {[str(p.relative_to(root)) for p, s in mods.items() if len(s.splitlines()) > 600]}; "
          f"largest {max(len(s.splitlines()) for s in mods.values())} lines; package lines {sum(len(s.splitlines()) for s in mods.values())}")
    print(f"lines over 120 characters: {sum(len(l) > 120 for s in mods.values() for l in s.splitlines())}")
    print(f"private names imported across modules: {len(private_imports(root))} {private_imports(root)[:10]}")
