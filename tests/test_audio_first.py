"Audio first (a recipe's `audio_first`), end to end: clips of cities the model was not trained on get exactly the audio-only model's prediction."
import json
from pathlib import Path
import numpy as np, pandas as pd
from conftest import run_cli
from asc_nbdev.all import *

ARGS = ['--demo', '--recipe', 'li2025', '--epochs', '2', '--n-clips', '240', '--rounds', '0']

def test_audio_first_unseen_cities_are_the_audio_only_model(tmp_path):
    run_cli('asc-train', *ARGS, '--set', 'audio_first=true', '--out', tmp_path/'first')
    run_cli('asc-train', *ARGS, '--no-metadata', '--out', tmp_path/'off')
    rep_f, rep_o = (json.loads((tmp_path/n/'report.json').read_text()) for n in ('first', 'off'))
    s = rep_f['stages'][0]
    assert s['audio_best_epoch'] == rep_o['stages'][0]['best_epoch'] and s['audio_accuracy'] == rep_o['stages'][0]['accuracy'], s
    assert s['monitor'] == 'valid_loss' and 0 < s['unseen_weight'] < 1
    assert np.isclose(s['mixed_accuracy'], (1 - s['unseen_weight']) * s['accuracy'] + s['unseen_weight'] * s['audio_accuracy'], atol=1e-5)
    d = tmp_path/'first'/'stage1_train'
    assert (d/'curves_audio.png').exists() and (d/'audio'/'history.csv').exists() and not (d/'audio'/'models').exists()
    # every aggregation mode: the same figures on unseen cities, clip by clip the same probabilities
    for how, m in s['test']['aggregates'].items():
        assert m['unseen_cities_accuracy'] == rep_o['stages'][0]['test']['aggregates'][how]['unseen_cities_accuracy'], how
    ev = pd.read_csv(tmp_path/'first'/'data'/'eval_metadata.csv', dtype=str, keep_default_na=False)
    unseen = ~ev.location.isin(set(pd.read_csv(tmp_path/'first'/'data'/'dev_metadata.csv', dtype=str).location))
    assert unseen.sum() > 0
    pf, po = (pd.read_csv(tmp_path/n/'eval_probs.csv').set_index('filename').loc[ev.filename, list(CLASSES)].to_numpy() for n in ('first', 'off'))
    np.testing.assert_allclose(pf[unseen.to_numpy()], po[unseen.to_numpy()], atol=1e-6)
    assert np.abs(pf[~unseen.to_numpy()] - po[~unseen.to_numpy()]).max() > 1e-3   # seen cities: the fused prediction
    m, info = load_asc_model(tmp_path/'first'/'model.pt')   # the model file rebuilds the audio-only head
    assert type(m.head.audio_fc).__name__ == 'FusionHead' and info['recipe']['audio_first']
