"""Hashes of synthetic plans, a demo dataset, feature caches (built, reused from a source, with a skip, up to date) and
tiny training runs through `asc-train` (li2025 and atmaja2025, a fold run, a distilled run): the submission, the model's
tensors and the report's figures. Run in two checkouts, `PYTHONPATH=CHECKOUT python bench/same_bytes.py DIR > a.json`,
and diff the outputs: a refactor that changes no bytes gives none. (Model files are compared by their tensors, not their
bytes: a pickled file names the module its classes live in.)"""
import hashlib, json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, torch
try:   # the package layout of issue 38
    from asc_nbdev.data.synth_plan import synth_plan
    from asc_nbdev.data.synthetic import make_synthetic
    from asc_nbdev.audio.cache import build_feature_cache
except ImportError:   # the layout before it
    from asc_nbdev.data.synthetic import synth_plan, make_synthetic
    from asc_nbdev.features import build_feature_cache

work = Path(sys.argv[1] if len(sys.argv) > 1 else 'bench/_work/same_bytes'); shutil.rmtree(work, ignore_errors=True)
sha = lambda b: hashlib.sha256(b).hexdigest()
out = {}
for seed in range(6):
    for kw in [dict(), dict(n_clips=1200, eval_frac=0.3), dict(n_clips=300, eval_same=0.6, eval_near=0.2)]:
        plan = synth_plan(seed=seed, **kw)
        out[f'plan seed {seed} {sorted(kw.items())}'] = sha(pd.util.hash_pandas_object(plan, index=True).values.tobytes())
d = work/'data'
make_synthetic(d, preset='demo', n_clips=120, seed=3, progress=False)
out['demo files'] = sha(b''.join(p.name.encode() + p.read_bytes() for p in sorted(d.rglob('*'))
                                 if p.is_file() and p.name != 'synth.json'))
names = list(pd.read_csv(d/'dev_metadata.csv').filename)[:60]
runs = [('a', names, {}), ('b', names[:40] + ['nope'], dict(on_error='skip', sources=[work/'a'])), ('a', names, {})]
for i, (name, ns, kw) in enumerate(runs):
    c = build_feature_cache(d/'audio', ns, work/name, progress=False, verbose=False, **kw)
    out[f'cache run {i} report'] = {k: v for k, v in c.report.items() if k != 'seconds'}
    out[f'cache run {i} files'] = {f: sha((work/name/f).read_bytes())
                                   for f in ('features.npy', 'index.csv', 'skipped.csv')}

def tensors(f):
    "sha256 of every tensor of a model file, by name"
    sd = torch.load(f, map_location='cpu', weights_only=False)
    sd = sd.get('state_dict', sd) if isinstance(sd, dict) else sd.state_dict()
    return sha(b''.join(k.encode() + v.numpy().tobytes() for k, v in sorted(sd.items()) if torch.is_tensor(v)))

VOLATILE = {'seconds', 'mtime'}   # what a report holds that differs from run to run: wall time, files' modification times

def figures(x):
    "every value of a report but its wall times and file times, with the work folder's path as WORK"
    if isinstance(x, dict): return {k: figures(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list): return [figures(v) for v in x]
    if isinstance(x, str): return x.replace(str(work), 'WORK')   # the folder the script was given
    return round(x, 6) if isinstance(x, float) else x

env = dict(os.environ, OMP_NUM_THREADS='1')
base = ['--audio', str(d/'audio'), '--meta', str(d/'dev_metadata.csv'), '--eval-meta', str(d/'eval_metadata.csv'),
        '--epochs', '2', '--seed', '5', '--quick']
for name, args in [('li2025', ['--recipe', 'li2025', '--rounds', '1']),
                   ('atmaja2025', ['--recipe', 'atmaja2025', '--rounds', '0']),
                   ('li2025_cv', ['--recipe', 'li2025', '--rounds', '0', '--cv', '2']),
                   ('li2025_distill', ['--recipe', 'li2025', '--rounds', '0', '--cv', '2', '--distill'])]:
    o = work/'runs'/name
    subprocess.run(['asc-train', *base, *args, '--out', str(o)], check=True, env=env, capture_output=True)
    out[f'run {name} submission'] = sha((o/'submission.csv').read_bytes())
    out[f'run {name} model tensors'] = tensors(o/'model.pt')
    out[f'run {name} report'] = figures(json.loads((o/'report.json').read_text()))
print(json.dumps(out, indent=1, sort_keys=True))
