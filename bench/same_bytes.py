"""Hashes of synthetic plans, a demo dataset and feature caches (built, reused from a source, with a skip, up to date).
Run in two checkouts, `python bench/same_bytes.py DIR > a.json`, and diff the outputs: a refactor that changes no bytes gives none."""
import hashlib, json, shutil, sys
from pathlib import Path
import pandas as pd
from asc_nbdev.data.synth_plan import synth_plan
from asc_nbdev.data.synthetic import make_synthetic
from asc_nbdev.audio.cache import build_feature_cache

work = Path(sys.argv[1] if len(sys.argv) > 1 else 'bench/_work/same_bytes'); shutil.rmtree(work, ignore_errors=True)
sha = lambda b: hashlib.sha256(b).hexdigest()
out = {}
for seed in range(6):
    for kw in [dict(), dict(n_clips=1200, eval_frac=0.3), dict(n_clips=300, eval_same=0.6, eval_near=0.2)]:
        out[f'plan seed {seed} {sorted(kw.items())}'] = sha(pd.util.hash_pandas_object(synth_plan(seed=seed, **kw), index=True).values.tobytes())
d = work/'data'
make_synthetic(d, preset='demo', n_clips=120, seed=3, progress=False)
out['demo files'] = sha(b''.join(p.name.encode() + p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file() and p.name != 'synth.json'))
names = list(pd.read_csv(d/'dev_metadata.csv').filename)[:60]
runs = [('a', names, {}), ('b', names[:40] + ['nope'], dict(on_error='skip', sources=[work/'a'])), ('a', names, {})]
for i, (name, ns, kw) in enumerate(runs):
    c = build_feature_cache(d/'audio', ns, work/name, progress=False, verbose=False, **kw)
    out[f'cache run {i} report'] = {k: v for k, v in c.report.items() if k != 'seconds'}
    out[f'cache run {i} files'] = {f: sha((work/name/f).read_bytes()) for f in ('features.npy', 'index.csv', 'skipped.csv')}
print(json.dumps(out, indent=1, sort_keys=True))
