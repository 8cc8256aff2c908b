"""Carried labels on the demo: `asc-train --demo --recipe li2025 --seed S` with `--set carry_labels=session` against the
same run with `carry_labels=off` (the recipes' default), paired per seed.

The `on` runs are bench/demo.py's (kept as bench/demo_carried_on.json, made while carried labels were the default); the
`off` runs: `asc-train --demo --recipe li2025 --seed S --set carry_labels=off --out DIR/sS` for S in 0 1 2.
Usage: python bench/demo_carried.py --on bench/demo_carried_on.json --off DIR [--out bench/demo_carried.md]
"""
import argparse, json
from pathlib import Path
import numpy as np

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--on', default='bench/demo_carried_on.json')
    ap.add_argument('--off', required=True, help='folder holding s0, s1, ... run folders of the carry_labels=off runs')
    ap.add_argument('--out', default=None)
    a = ap.parse_args()
    on = json.loads(Path(a.on).read_text())
    rows = ['| seed | carried: final test | unseen | off: final test | unseen | carried − off |', '|---|---|---|---|---|---|']
    diffs = []
    for seed, r in zip(on['seeds'], on['runs']):
        o = json.loads((Path(a.off)/f's{seed}'/'report.json').read_text())
        t1, t0 = r['test']['accuracy'], o['test']['accuracy']
        diffs.append(t1 - t0)
        rows.append(f"| {seed} | {t1:.3f} | {r['test'].get('unseen_cities_accuracy', float('nan')):.3f} | {t0:.3f} | "
                    f"{o['test'].get('unseen_cities_accuracy', float('nan')):.3f} | {t1 - t0:+.3f} |")
    d = np.array(diffs)
    text = '\n'.join(['# Carried labels on the demo data', '', __doc__.split('\n\n')[0].replace('\n', ' '), '',
                      f"`python bench/demo_carried.py --on {a.on} --off {a.off}`; li2025 quick, synthetic `demo` data, final model on the "
                      "eval clips against the hidden truth (session averaging).", '', *rows, '',
                      f"Mean difference {d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f} (standard error), {int((d > 0).sum())} of {len(d)} seeds better. "
                      "On bench/semi_supervised.py's small datasets carried labels helped (4 of 5 paired runs); here they hurt on every "
                      "seed, so they stay an option (`--set carry_labels=session`), off by default."])
    print(text)
    if a.out: Path(a.out).write_text(text + '\n')
