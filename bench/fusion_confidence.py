"""How sure the fused classifier is, by the figure that keeps its epoch: audio first (a recipe's `audio_first`) with the fusion step
kept by validation loss (`fusion_monitor='valid_loss'`, the default) or by the recipe's monitor (`fusion_monitor=None`), and the
isolated audio classifier with the mixed monitor (`isolate_audio`), on the synthetic demo data.

For each: the kept epoch, validation accuracy, the mean top probability on the validation clips and on the unlabeled dev clips
(what pseudo-labeling sees), and how many unlabeled clips reach 0.6 and 0.9 (the thresholds of notebook 16 and yang2025).

Usage: python bench/fusion_confidence.py [--recipe li2025] [--seeds 0 1 2]
"""
import os
for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_v, '1')
import argparse, io, contextlib, tempfile, shutil
from pathlib import Path
import numpy as np, pandas as pd, torch
from asc_nbdev.all import *

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--recipe', default='li2025'); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    args = ap.parse_args(); torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        root = Path(tempfile.mkdtemp(prefix='asc-bench-conf-'))
        make_synthetic(root/'d', preset='demo', seed=seed, progress=False)
        meta = read_meta(root/'d'/'dev_metadata.csv')
        cache = build_feature_cache(root/'d'/'audio', list(meta.filename), root/'f', progress=False, verbose=False)
        unl = meta[meta.label < 0].reset_index(drop=True)
        r = get_recipe(args.recipe, quick=True, seed=seed)
        dls = asc_dataloaders(meta, cache, bs=r.bs, seed=seed, city_dropout=r.city_dropout, time_dropout=r.time_dropout)
        for name, rr in [('first, kept by valid_loss', r.replace(audio_fallback='audio', audio_first=True, fusion_monitor='valid_loss')),
                         ('first, kept by ' + r.monitor, r.replace(audio_fallback='audio', audio_first=True, fusion_monitor=None)),
                         ('isolated+mixed', r.replace(audio_fallback='audio', audio_first=False, isolate_audio=True))]:
            with contextlib.redirect_stdout(io.StringIO()):
                learn, s = fit_recipe(rr, dls, path=root/'run', progress=False, eval_cities=list(unl.location))
            pv, pu = predict_probs(learn.model, dls.valid), predict_probs(learn.model, dls.test_dl(unl))
            rows.append(dict(seed=seed, variant=name, best_epoch=s['best_epoch'], valid_accuracy=s['accuracy'],
                             valid_confidence=pv.max(1).mean(), unlabeled_confidence=pu.max(1).mean(),
                             unlabeled_over_0_6=(pu.max(1) >= 0.6).mean(), unlabeled_over_0_9=(pu.max(1) >= 0.9).mean()))
        shutil.rmtree(root, ignore_errors=True)
    df = pd.DataFrame(rows)
    print(f'`python bench/fusion_confidence.py --recipe {args.recipe} --seeds {" ".join(map(str, args.seeds))}` '
          f'({args.recipe} quick, synthetic demo data, default split; load {"/".join(f"{v:.2f}" for v in os.getloadavg())})\n')
    print(df.round(3).to_markdown(index=False)); print()
    print(df.drop(columns='seed').groupby('variant', sort=False).mean().round(3).to_markdown())
