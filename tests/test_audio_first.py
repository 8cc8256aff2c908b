"Audio first (every recipe's `audio_first`), end to end: clips of cities the model was not trained on get exactly the audio-only model's prediction, the one a metadata-off run makes."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import run_cli
from asc_nbdev.all import *

ARGS = ['--demo', '--epochs', '2', '--n-clips', '240', '--rounds', '0']

def _probs(d, names):
    return pd.read_csv(d/'eval_probs.csv').set_index('filename').loc[names, list(CLASSES)].to_numpy()

@pytest.mark.parametrize('recipe', ['li2025', 'baseline', 'yang2025', 'atmaja2025'])
def test_unseen_cities_get_the_metadata_off_runs_prediction(tmp_path, recipe):
    run_cli('asc-train', *ARGS, '--recipe', recipe, '--out', tmp_path/'on')   # the recipe as it is: audio first is its default
    run_cli('asc-train', *ARGS, '--recipe', recipe, '--no-metadata', '--out', tmp_path/'off')
    rep_f, rep_o = (json.loads((tmp_path/n/'report.json').read_text()) for n in ('on', 'off'))
    s = next(s for s in rep_f['stages'] if s['name'] == 'stage1_train'); so = next(s for s in rep_o['stages'] if s['name'] == 'stage1_train')
    assert s['audio_best_epoch'] == so['best_epoch'] and s['audio_accuracy'] == so['accuracy'], (s, so)
    assert s['monitor'] == 'valid_loss' and 0 < s['unseen_weight'] < 1
    # every aggregation mode: the same figures on unseen cities, clip by clip the same probabilities
    for how, m in s['test']['aggregates'].items():
        assert m['unseen_cities_accuracy'] == so['test']['aggregates'][how]['unseen_cities_accuracy'], how
    ev = pd.read_csv(tmp_path/'on'/'data'/'eval_metadata.csv', dtype=str, keep_default_na=False)
    unseen = (~ev.location.isin(set(pd.read_csv(tmp_path/'on'/'data'/'dev_metadata.csv', dtype=str).location))).to_numpy()
    assert unseen.sum() > 0
    pf, po = _probs(tmp_path/'on', ev.filename), _probs(tmp_path/'off', ev.filename)
    np.testing.assert_allclose(pf[unseen], po[unseen], atol=1e-6)
    assert np.abs(pf[~unseen] - po[~unseen]).max() > 1e-3   # seen cities: the fused prediction
    m, info = load_asc_model(tmp_path/'on'/'model.pt')   # the model file rebuilds the audio-only head
    assert type(m.head.audio_fc).__name__ == 'FusionHead' and info['recipe']['audio_first']
    if recipe == 'li2025':
        assert np.isclose(s['mixed_accuracy'], (1 - s['unseen_weight']) * s['accuracy'] + s['unseen_weight'] * s['audio_accuracy'], atol=1e-5)
        d = tmp_path/'on'/'stage1_train'
        assert (d/'curves_audio.png').exists() and (d/'audio'/'history.csv').exists() and not (d/'audio'/'models').exists()
    if recipe == 'atmaja2025':   # the hard-sample weights of the audio step: the reference's audio-only model's, as in the off run
        hf, ho = (pd.read_csv(tmp_path/n/'stage1_train'/'hard_samples.csv') for n in ('on', 'off'))
        np.testing.assert_allclose(hf.weight, ho.weight, atol=1e-6)
