"The clip explorer, headless: built on the synthetic data alone and on a tiny run; filters and selection drive `.filtered` and `.current`"
import shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest
from asc_nbdev.core import *
from asc_nbdev.processes import *
from asc_nbdev.files import *
from asc_nbdev.data.metadata import read_meta
from asc_nbdev.pipeline.config import RunConfig


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from asc_nbdev.data.synthetic import make_synthetic
    D = tmp_path_factory.mktemp('explorer')/'data'
    make_synthetic(D, preset='tiny', n_clips=160, labeled_frac=0.5, progress=False)
    return D


@pytest.fixture(scope='module')
def run(data):
    from asc_nbdev.pipeline.run import run_pipeline
    from asc_nbdev.train.recipes import get_recipe
    out = data.parent/'run'
    run_pipeline(RunConfig(out=out, audio=data/'audio', meta=data/'dev_metadata.csv', recipe=get_recipe('li2025', quick=True, epochs=2), eval_meta=data/'eval_metadata.csv', truth=data/'truth.csv', aggregate='none'), progress=False, log=lambda *a: None)   # per-clip probabilities, as the explorer shows
    # forget where the data lie (report.json records it), so these tests see a run whose data must be given
    from asc_nbdev.files import load_json, save_json
    rj = load_json(out/'report.json')
    for k in ('audio', 'meta', 'eval_meta', 'truth'): rj['data'][k] = None
    save_json(rj, out/'report.json')
    return out


def paths(D): return dict(meta=D/'dev_metadata.csv', eval_meta=D/'eval_metadata.csv', truth=D/'truth.csv', audio=D/'audio')


def test_data_only(data):
    from asc_nbdev.report.explorer import ClipExplorer
    ex = ClipExplorer(data_dir=data)
    dev, ev = read_meta(data/'dev_metadata.csv'), read_meta(data/'eval_metadata.csv')
    assert len(ex.clips) == len(ex.filtered) == len(dev) + len(ev)
    assert ex.w_pred.disabled and ex.w_outcome.disabled and ex.w_conf.disabled and ex.prob_source is None
    first = ex.current
    assert first['filename'] == ex.clips.filename.iloc[0] and first['probs'] is None and first['pred'] is None
    assert first['audio_source'].endswith('.wav') and first['spectrogram_source'] == 'computed from the audio file'
    # a class filter: the list and the shown clip follow
    ex.w_class.value = 'Bus'
    f = ex.filtered
    assert len(f) and (f.label == 'Bus').all() and ex.current['label'] == 'Bus'
    assert [v for _, v in ex.w_clip.options] == list(f.filename)
    # a city filter on top; the shown clip is one of the remaining ones
    city = f.location.value_counts().index[0]
    ex.w_city.value = city
    assert (ex.filtered.location == city).all() and ex.current['location'] == city and ex.current['filename'] in set(ex.filtered.filename)
    # choose another clip by setting the clip widget
    if len(ex.filtered) > 1:
        fn = ex.filtered.filename.iloc[1]
        ex.w_clip.value = fn
        assert ex.current['filename'] == fn and fn in ex.info.value
    # labels: from the metadata where labeled, else from the truth file
    truth = pd.read_csv(data/'truth.csv', dtype=str).set_index('filename').scene_label
    ex.w_class.value, ex.w_city.value, ex.w_part.value = 'any', 'any', 'unlabeled'
    cur = ex.current
    assert cur['part'] == 'unlabeled' and cur['label'] == truth[cur['filename']] and cur['label_source'].startswith('truth file')
    # an hour range: only clips recorded in it; the slider's full range lets every clip through
    ex.w_part.value = 'any'
    h = int(ex.clips.hour.dropna().iloc[0])
    ex.w_hours.value = (h, h)
    assert (ex.filtered.hour == h).all() and ex.current['hour'] == h
    # nothing passes (the synthetic clips are recorded between 5 and 24 h): no clip shown, and the panel says so
    ex.w_hours.value = (0, 2)
    assert len(ex.filtered) == 0 and ex.current is None and 'no clip' in ex.info.value and ex.w_clip.options == ()
    fig = ex.figure()                                                   # draws an empty view, no error
    import matplotlib.pyplot as plt; plt.close(fig)


def test_run(run, data):
    from asc_nbdev.report.explorer import ClipExplorer
    ex = ClipExplorer(run, **paths(data))
    assert ex.prob_source.startswith('model.pt') and ex.clips.pred.notna().all()
    assert not ex.w_pred.disabled
    # the final model's probabilities of the eval clips are those of eval_probs.csv (same model, features, statistics)
    ep = pd.read_csv(run/'eval_probs.csv', dtype={'filename': str}).set_index('filename')
    ex.w_part.value = 'eval'
    assert set(ex.filtered.filename) == set(ep.index)
    cur = ex.select(ex.filtered.filename.iloc[0])
    np.testing.assert_allclose([cur['probs'][c] for c in CLASSES], ep.loc[cur['filename'], CLASSES].to_numpy(float), atol=1e-4)
    assert cur['confidence'] == pytest.approx(max(cur['probs'].values())) and cur['pred'] == max(cur['probs'], key=cur['probs'].get)
    # validation clips are those of the stage model.pt holds
    vp = pd.read_csv(run/load_json(run/'report.json')['kept']/'valid_probs.csv', dtype={'filename': str})
    ex.w_part.value = 'validation'
    assert set(ex.filtered.filename) == set(vp.filename)
    # outcome and confidence filters
    ex.w_part.value = 'any'; ex.w_outcome.value = 'wrong'
    f = ex.filtered
    assert len(f) and (f.pred != f.label).all() and ex.current['correct'] is False
    ex.w_outcome.value = 'correct'
    assert (ex.filtered.pred == ex.filtered.label).all()
    ex.w_outcome.value = 'any'; ex.w_conf.value = (0.3, 0.6)
    assert ex.filtered.confidence.between(0.3, 0.6).all()
    if len(ex.filtered): assert 0.3 <= ex.current['confidence'] <= 0.6
    ex.w_pred.value = CLASSES[0]
    assert (ex.filtered.pred == CLASSES[0]).all()
    # the unlabeled clips carry the last round's pseudo-labels
    pl = pd.read_csv(run/'stage2_pseudo_r1'/'pseudo_labels.csv', dtype={'filename': str}).set_index('filename')
    ex.w_pred.value, ex.w_conf.value, ex.w_part.value = 'any', (0., 1.), 'unlabeled'
    cur = ex.current
    assert cur['pseudo_label'] == pl.loc[cur['filename'], 'scene_label'] and cur['pseudo_accepted'] == bool(pl.loc[cur['filename'], 'accepted'])
    assert cur['spectrogram_source'] == 'feature cache' and ex.spectrogram().shape[1] == 64
    with pytest.raises(KeyError, match='not among'): ex.select('no-such-clip')


def test_run_probability_csvs(run, data):
    "Without the model: probabilities from valid_probs.csv and eval_probs.csv only"
    from asc_nbdev.report.explorer import ClipExplorer
    ex = ClipExplorer(run, predict=False, **paths(data))
    has = ex.clips.set_index('part').pred.notna().groupby(level=0).all()
    assert has['validation'] and has['eval'] and not ex.clips[ex.clips.part == 'train'].pred.notna().any()
    ex.w_part.value = 'train'
    assert ex.current['probs'] is None and ex.current['prob_source'] is None


def test_missing_audio_resynthesised(run, data, tmp_path):
    from asc_nbdev.report.explorer import ClipExplorer
    ex = ClipExplorer(run, meta=data/'dev_metadata.csv', eval_meta=data/'eval_metadata.csv', audio=tmp_path)
    cur = ex.current
    assert cur['audio_source'].startswith('resynthesised') and cur['spectrogram_source'] == 'feature cache'
    assert ex.clips.label_source.isin(['metadata', None]).all()       # no truth file given or found
    a = ex.audio()
    assert type(a).__name__ == 'Audio' and len(a.data) > 1000
    fig = ex.figure()
    assert len(fig.axes) >= 2
    import matplotlib.pyplot as plt; plt.close(fig)


def test_bad_input(tmp_path, run):
    from asc_nbdev.report.explorer import ClipExplorer
    from asc_nbdev.report.evaluate import RunError
    with pytest.raises(ValueError, match='give a run folder'): ClipExplorer()
    with pytest.raises(RunError, match='report.json is missing'): ClipExplorer(tmp_path)
    with pytest.raises(FileNotFoundError, match='dev_metadata.csv'): ClipExplorer(data_dir=tmp_path)
    with pytest.raises(RunError, match='metadata was not found'): ClipExplorer(run)   # tiny run: its data lie elsewhere
