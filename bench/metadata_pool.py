"""Unseen- and seen-city accuracy differences of the ways of treating an unknown city, per bench and pooled, from the runs'
CSV files (no training): the demo-eval runs of bench/metadata.md (about 38 unseen-city eval clips per dataset) and
the large-eval runs of bench/metadata_large_eval.md (about 225), with its isolated-audio runs (bench/metadata_runs/isolated_large_eval.md) and the runs whose kept epoch
was chosen by AudioMixAccuracy (bench/metadata_runs/mixed_large_eval_*.md; '+mixed'). Each difference is paired per seed (same data,
same split); mean and standard error over seeds; 'both' pools the 20 datasets.

Usage: python bench/metadata_pool.py [--out bench/metadata_pool.md]"""
import argparse
import numpy as np, pandas as pd

BENCHES = {'demo eval': ['bench/metadata_runs/fallback.csv', 'bench/metadata_runs/fallback_5_9.csv'],
           'large eval': ['bench/metadata_large_eval.csv', 'bench/metadata_runs/isolated_large_eval.csv',
                          'bench/metadata_runs/mixed_large_eval_a.csv', 'bench/metadata_runs/mixed_large_eval_b.csv']}
DIFFS = [(('on', 'on'), ('off', '-'), 'audio fallback - metadata off'), (('on', 'off'), ('off', '-'), 'unknown-city row - metadata off'),
         (('on', 'isolated'), ('off', '-'), 'isolated audio - metadata off'),
         (('on', 'on+mixed'), ('off', '-'), 'audio fallback, mixed monitor - metadata off'),
         (('on', 'isolated+mixed'), ('off', '-'), 'isolated audio, mixed monitor - metadata off'),
         (('on', 'on+mixed'), ('on', 'on'), 'audio fallback: mixed monitor - fused monitor'),
         (('on', 'isolated+mixed'), ('on', 'isolated'), 'isolated audio: mixed monitor - fused monitor'),
         (('on', 'isolated+mixed'), ('on', 'on+mixed'), 'mixed monitor: isolated audio - audio fallback'),
         (('on', 'on'), ('on', 'off'), 'audio fallback - unknown-city row'), (('on', 'isolated'), ('on', 'on'), 'isolated audio - audio fallback'),
         (('on', 'isolated'), ('on', 'off'), 'isolated audio - unknown-city row')]

def read(files):
    d = pd.concat([pd.read_csv(f, dtype={'dropout': str, 'fallback': str}, keep_default_na=False) for f in files])
    return d.assign(unseen=pd.to_numeric(d['unseen']), seen=pd.to_numeric(d['seen']))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0]); ap.add_argument('--out', default=None); args = ap.parse_args()
    frames = {k: read(v) for k, v in BENCHES.items()}
    frames['both'] = pd.concat([f.assign(seed=f['seed'] + 1000 * i) for i, f in enumerate(frames.values())])
    rows = []
    for name, df in frames.items():
        for (rec, how), g in df[df['dropout'].isin(['-', '0.5/0.3'])].groupby(['recipe', 'aggregate'], sort=False):
            x = g.pivot_table(index='seed', columns=['metadata', 'fallback'], values='unseen'); cols = x.columns.tolist()
            xs = g.pivot_table(index='seed', columns=['metadata', 'fallback'], values='seen')
            for a, b, lab in DIFFS:
                if a in cols and b in cols:
                    d, ds = (x[a] - x[b]).dropna(), (xs[a] - xs[b]).dropna()
                    rows.append({'bench': name, 'recipe': rec, 'aggregate': how, 'difference': lab, 'n': len(d),
                                 'unseen': d.mean(), 'unseen_se': d.std(ddof=1) / np.sqrt(len(d)),
                                 'seen': ds.mean(), 'seen_se': ds.std(ddof=1) / np.sqrt(len(ds))})
    t = pd.DataFrame(rows)
    text = '\n'.join(['# Unknown-city treatments: the two metadata benches and pooled', '', '`python bench/metadata_pool.py` from '
                      + ', '.join(f for v in BENCHES.values() for f in v) + ' (test accuracy on unseen and on seen cities, differences paired per seed; se: standard error).', '',
                      t.to_markdown(index=False, floatfmt='.3f')])
    print(text)
    if args.out: open(args.out, 'w').write(text + '\n')
