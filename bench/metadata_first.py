"""Audio first (a recipe's `audio_first`; `first`: its fusion step kept by the recipe's monitor, `first+loss`: by validation loss, the default)
against the isolated audio classifier with the mixed monitor (`isolated+mixed`) and against each other, paired per dataset.

Reads the run files of bench/metadata.py (the same list as bench/metadata_unseen.md) and prints, per recipe and aggregation
mode, mean ± standard error over the datasets both variants ran on of the difference: seen cities, unseen cities,
all test clips; and how many datasets each variant kept the unseen-city target on (on >= off - 0.01, that dataset alone).

Usage: python bench/metadata_first.py FILE.csv [FILE.csv ...]
"""
import sys
import numpy as np, pandas as pd

PAIRS = [('first', 'isolated+mixed'), ('first+loss', 'isolated+mixed'), ('first+loss', 'first')]

def main(files):
    d = pd.concat([pd.read_csv(f, dtype={'dropout': str, 'fallback': str}, keep_default_na=False) for f in files])
    for c in ('seen', 'unseen', 'test'): d[c] = pd.to_numeric(d[c])
    off = d[d['metadata'] == 'off'].drop_duplicates(['recipe', 'seed', 'aggregate']).set_index(['recipe', 'aggregate', 'seed']).sort_index()
    on = d[d['metadata'] == 'on']
    f = lambda v: f'{v.mean():+.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}' if len(v) > 1 else 'n/a'
    rows = []
    for (va, vb), (rec, how), g in ((p, k, g) for p in PAIRS for k, g in on.groupby(['recipe', 'aggregate'], sort=False)):
        a = g[g['fallback'] == va].drop_duplicates('seed').set_index('seed')
        b = g[g['fallback'] == vb].drop_duplicates('seed').set_index('seed')
        s = a.index.intersection(b.index)
        if not len(s): continue
        o = off.loc[(rec, how)].reindex(s)
        kept = lambda x: f"{int(((x.unseen - o.unseen) >= -0.01).sum())}/{int(o.unseen.notna().sum())}"
        rows.append(dict(variant=va, against=vb, recipe=rec, aggregate=how, n=len(s), seen=f((a.seen - b.seen).loc[s]), unseen=f((a.unseen - b.unseen).loc[s]),
                         test=f((a.test - b.test).loc[s]), variant_unseen_ok=kept(a.loc[s]), against_unseen_ok=kept(b.loc[s])))
    print('variant - against, paired per dataset (mean ± standard error); *_unseen_ok: datasets where that one kept '
          'unseen on >= off - 0.01\n')
    print(pd.DataFrame(rows).to_markdown(index=False))

if __name__ == '__main__': main(sys.argv[1:])
