"Lines and parameters of the pipeline's entry points, and the places an option is named, in package trees: python tools/refactor_counts.py OLD_TREE asc_nbdev (OLD_TREE: `git archive 6eee5ec asc_nbdev | tar x -C /tmp/old`)"
import ast, pathlib, re, sys
def funcs(root):
    out = {}
    for p in pathlib.Path(root).rglob('*.py'):
        if p.name == '_modidx.py': continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.FunctionDef): out[n.name] = (n.end_lineno - n.lineno + 1, len(n.args.args) + len(n.args.kwonlyargs) + bool(n.args.vararg) + bool(n.args.kwarg))
    return out
def places(root, word):
    return sum(len(re.findall(rf'\b{word}\b', p.read_text())) for p in pathlib.Path(root).rglob('*.py') if p.name != '_modidx.py')
for root in sys.argv[1:]:
    f = funcs(root); total = sum(len(p.read_text().splitlines()) for p in pathlib.Path(root).rglob('*.py') if p.name != '_modidx.py')
    print(root, f'package lines {total}', {k: f.get(k) for k in ('run_pipeline', 'asc_train', 'run_repeats', 'run_config', 'build_feature_cache', 'synth_plan', '_scene')})
    print('  longest:', sorted(((v[0], k) for k, v in f.items()), reverse=True)[:3])
    print('  places named:', {w: places(root, w) for w in ('city_dropout', 'reference_model', 'deterministic', 'on_error', 'precision', 'init_official')})
