"End to end: `asc-train --demo` with tiny settings, `asc-predict` on its output, resuming, safe model files, bad input."
import json, os, re, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from conftest import run_cli
from asc_nbdev.all import *

ARGS = ['--demo', '--recipe', 'li2025', '--epochs', '3', '--n-clips', '240']

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')/'run'
    r = run_cli('asc-train', *ARGS, '--out', out)
    return out, r

def test_demo_outputs(run):
    out, r = run
    for f in ['model.pt', 'submission.csv', 'eval_probs.csv', 'report.json', 'features/features.npy',
              'stage1_train/model.pt', 'stage1_train/curves.png', 'stage1_train/confusion.png', 'stage1_train/done.json',
              'stage2_pseudo_r1/pseudo_labels.csv', 'stage2_pseudo_r1/confidence.png', 'stage3_retrain_r1/done.json',
              'data/truth.csv', 'data/dev_metadata.csv']:
        assert (out/f).exists(), f
    rep = json.loads((out/'report.json').read_text())
    assert [s['name'] for s in rep['stages']] == ['stage1_train', 'stage3_retrain_r1']
    for s in rep['stages']:
        assert {'name', 'split', 'accuracy', 'balanced_accuracy', 'n_train', 'n_valid', 'seconds'} <= set(s)
        assert s['split'] == 'recording' and 0 <= s['accuracy'] <= 1
    assert rep['stages'][1]['n_train'] > rep['stages'][0]['n_train']      # pseudo-labeled clips were added
    assert {'accepted', 'total', 'accuracy'} <= set(rep['pseudo_labels'])
    assert {'accuracy', 'balanced_accuracy'} <= set(rep['test'])
    assert rep['aggregate'] == DEFAULT_AGGREGATE and set(rep['stages'][0]['test']['aggregates']) == set(AGGREGATES)
    t = rep['test']
    assert t['accuracy'] == t['aggregates'][DEFAULT_AGGREGATE]['accuracy']   # the headline figure is the chosen mode's
    kept = next(s for s in rep['stages'] if s['name'] == rep['kept'])
    assert kept['accuracy'] == max(s['accuracy'] for s in rep['stages'])   # the final model: the best validation figure
    assert rep['pseudo_rounds'][0]['teacher'] == 'stage1_train' and rep['pseudo_rounds'][0]['retrained']
    # li2025 trains audio first: the audio-only model (its own kept epoch, history in audio/), then the fusion on its frozen body
    s1 = rep['stages'][0]; h1 = pd.read_csv(out/'stage1_train'/'history.csv'); ha = pd.read_csv(out/'stage1_train'/'audio'/'history.csv')
    assert s1['monitor'] == 'valid_loss' and 0 < s1['unseen_weight'] < 1, s1   # the fusion step: kept by validation loss
    assert s1['best_epoch'] == int(h1['valid_loss'].to_numpy().argmin()) and s1['audio_best_epoch'] == int(ha['accuracy'].to_numpy().argmax())
    assert s1['audio_epochs_run'] == len(ha) and np.isclose(s1['audio_accuracy'], ha['accuracy'].max())
    w = s1['unseen_weight']; fused = h1['accuracy'].iloc[s1['best_epoch']]
    assert np.isclose(s1['mixed_accuracy'], (1 - w) * fused + w * ha['accuracy'].max(), atol=1e-5)
    assert (out/'stage1_train'/'curves_audio.png').exists() and not (out/'stage1_train'/'audio'/'models').exists()
    # not on a terminal: one line per epoch, and history.csv written by fastai's CSVLogger
    for st in rep['stages']:
        lines = re.findall(rf"^\[{st['name']}\] epoch (\d+)/3 train_loss [0-9.]+ valid_loss [0-9.]+ accuracy [0-9.]+", r.stdout, re.M)
        assert [int(v) for v in lines] == list(range(1, st['epochs_run'] + 1)), r.stdout[:2000]
        assert len(pd.read_csv(out/st['name']/'history.csv')) == st['epochs_run']
    # the table printed at the end
    assert 'stage1_train' in r.stdout and 'recording split' in r.stdout and 'pseudo-labels:' in r.stdout and 'test (held-out' in r.stdout

def test_same_seed_same_result(run, tmp_path):
    "A second run with the same seed (fresh folder, fresh process) gives the same figures and the same submission"
    out, _ = run
    shutil.copytree(out/'data', tmp_path/'run'/'data')   # the same synthetic data (made with the same seed anyway)
    run_cli('asc-train', *ARGS, '--out', tmp_path/'run')
    a, b = (json.loads((o/'report.json').read_text()) for o in (out, tmp_path/'run'))
    strip = lambda st: {k: v for k, v in st.items() if k not in ('seconds', 'fingerprint')}
    assert [strip(s) for s in a['stages']] == [strip(s) for s in b['stages']]
    assert a['pseudo_labels'] == b['pseudo_labels'] and a['test'] == b['test']
    assert (out/'submission.csv').read_bytes() == (tmp_path/'run'/'submission.csv').read_bytes()

def test_run_config_repeats_the_run(run, tmp_path):
    "OUT/run.json holds the run's settings; `asc-train --config OUT/run.json --out NEW` repeats it: the same submission, byte for byte"
    out, _ = run
    cfg = RunConfig.load(out/'run.json')
    assert cfg == RunConfig(demo=True, recipe='li2025', epochs=3, n_clips=240, out=str(out)), cfg
    shutil.copytree(out/'data', tmp_path/'again'/'data')
    run_cli('asc-train', '--config', out/'run.json', '--out', tmp_path/'again')
    assert (out/'submission.csv').read_bytes() == (tmp_path/'again'/'submission.csv').read_bytes()
    assert RunConfig.load(tmp_path/'again'/'run.json') == cfg.replace(out=str(tmp_path/'again'))   # the options on top of the file

@pytest.mark.parametrize('content,msg', [(None, '--config: file not found'), ('{"epoch": 3}', '--epoch: no such setting'),
                                         ('[1, 2]', 'holds no settings'), ('{"epochs": "3"}', '--epochs must be an integer'),
                                         ('{"split": "day"}', "--split: unknown split 'day'")])
def test_run_config_bad_file(tmp_path, content, msg):
    p = tmp_path/'run.json'
    if content is not None: p.write_text(content)
    r = run_cli('asc-train', '--config', p, '--demo', '--out', tmp_path/'o', check=False)
    assert r.returncode == 2 and msg in r.stderr, r.stderr

def test_submission_format(run):
    out, _ = run
    sub = pd.read_csv(out/'submission.csv', dtype=str, keep_default_na=False)
    ev = pd.read_csv(out/'data'/'eval_metadata.csv', dtype=str, keep_default_na=False)
    assert list(sub.columns) == ['filename', 'location', 'record_time', 'scene_label']
    assert list(sub.filename) == list(ev.filename) and list(sub.record_time) == list(ev.record_time)
    assert sub.scene_label.isin(CLASSES).all()                             # every row labeled

def test_predict_fresh_process_matches(run, tmp_path):
    out, _ = run
    r = run_cli('asc-predict', '--model', out/'model.pt', '--meta', out/'data'/'eval_metadata.csv',
                '--audio', out/'data'/'audio', '--out', tmp_path/'sub.csv', '--probs', tmp_path/'p.csv')
    a, b = pd.read_csv(tmp_path/'sub.csv'), pd.read_csv(out/'submission.csv')
    assert a.equals(b), 'asc-predict disagrees with the pipeline on the same model and clips'
    p = pd.read_csv(tmp_path/'p.csv'); assert list(p.columns) == ['filename'] + CLASSES
    np.testing.assert_allclose(p[CLASSES].sum(axis=1), 1, atol=1e-3)

def test_model_file_is_plain_data(run):
    out, _ = run
    obj = torch.load(out/'model.pt', weights_only=True)            # no pickled code needed
    assert obj['format'] == MODEL_FORMAT and obj['classes'] == CLASSES and obj['recipe']['name'] == 'li2025-quick'
    assert len(obj['stats']['mean']) == 64 and obj['features']['clip_seconds'] == 2.0
    m, info = load_asc_model(out/'model.pt')
    assert m.arch == 'mobileascnet' and not m.training
    dev = pd.read_csv(out/'data'/'dev_metadata.csv', dtype=str, keep_default_na=False)
    assert info['known_cities'] and set(info['known_cities']) <= set(dev.location)   # the cities it trained on, by name
    assert [CITIES[i] for i in m.known_cities] == info['known_cities']

def test_untrained_city_is_the_unknown_city(run, tmp_path):
    "A vocabulary city the model never saw and a name outside the vocabulary give the same prediction"
    out, _ = run
    m, info = load_asc_model(out/'model.pt')
    never = next(c for c in CITIES if c not in info['known_cities'])
    ev = pd.read_csv(out/'data'/'eval_metadata.csv', dtype=str, keep_default_na=False).head(1)
    for i, loc in enumerate([never, 'Atlantis']):   # the same clip through two CSVs
        ev.assign(location=loc).to_csv(tmp_path/f'm{i}.csv', index=False)
        run_cli('asc-predict', '--model', out/'model.pt', '--meta', tmp_path/f'm{i}.csv', '--audio', out/'data'/'audio',
                '--out', tmp_path/f's{i}.csv', '--probs', tmp_path/f'p{i}.csv')
    a, b = pd.read_csv(tmp_path/'p0.csv'), pd.read_csv(tmp_path/'p1.csv')
    np.testing.assert_allclose(a[CLASSES].to_numpy(), b[CLASSES].to_numpy(), atol=1e-6)

def test_predict_aggregate(run, tmp_path):
    "--aggregate none/session/recording: session-averaged probabilities are the mean over each session's clips"
    out, _ = run
    ev = read_meta(out/'data'/'eval_metadata.csv')
    p = {}
    for how in AGGREGATES:
        run_cli('asc-predict', '--model', out/'model.pt', '--meta', out/'data'/'eval_metadata.csv', '--audio', out/'data'/'audio',
                '--out', tmp_path/f's-{how}.csv', '--probs', tmp_path/f'p-{how}.csv', '--aggregate', how)
        p[how] = pd.read_csv(tmp_path/f'p-{how}.csv').set_index('filename').loc[ev.filename, CLASSES].to_numpy()
    np.testing.assert_allclose(p['session'], aggregate_probs(p['none'], ev, 'session'), atol=2e-5)
    np.testing.assert_allclose(p['recording'], aggregate_probs(p['none'], ev, 'recording'), atol=2e-5)
    same = ev.groupby('session').filename.transform('size') > 1
    assert same.any() and not np.allclose(p['none'][same.to_numpy()], p['session'][same.to_numpy()])

class _Evil:
    def __reduce__(self): return (os.system, (f'touch {self.path}',))

def test_model_file_from_a_stranger_cannot_run_code(tmp_path):
    evil = _Evil(); evil.path = tmp_path/'pwned'
    torch.save({'format': MODEL_FORMAT, 'x': evil}, tmp_path/'evil.pt')
    with pytest.raises(ValueError, match='not a loadable asc_nbdev model file'): load_asc_model(tmp_path/'evil.pt')
    assert not (tmp_path/'pwned').exists()
    r = run_cli('asc-predict', '--model', tmp_path/'evil.pt', '--meta', 'x.csv', '--audio', '.', check=False)
    assert r.returncode == 2 and 'not a loadable' in r.stderr and not (tmp_path/'pwned').exists()

def test_rerun_skips_finished_stages_and_restarts_a_killed_one(run, tmp_path):
    out, _ = run
    work = tmp_path/'run'; shutil.copytree(out, work)
    before = json.loads((work/'report.json').read_text())
    # stage 3 "killed half-way": no done.json, a half-written file
    (work/'stage3_retrain_r1'/'done.json').unlink(); (work/'stage3_retrain_r1'/'model.pt').write_bytes(b'half')
    r = run_cli('asc-train', *ARGS, '--out', work)
    assert '[stage1_train] done before, skipped' in r.stdout and '[stage2_pseudo_r1] done before, skipped' in r.stdout
    assert '[stage3_retrain_r1] done before' not in r.stdout
    after = json.loads((work/'report.json').read_text())
    assert after['stages'][0] == before['stages'][0]
    load_asc_model(work/'stage3_retrain_r1'/'model.pt')                 # rebuilt whole
    # other settings on the same folder: stop and say what changed, rather than resume a stage trained on other clips
    for extra, what in ((['--split', 'session'], "split: 'recording' -> 'session'"), (['--epochs', '2'], 'recipe.epochs: 3 -> 2'),
                        (['--no-metadata'], 'metadata: True -> False')):
        r = run_cli('asc-train', *ARGS, *extra, '--out', work, check=False)
        assert r.returncode == 2 and 'made from other inputs' in r.stderr and what in r.stderr, r.stderr
    assert json.loads((work/'report.json').read_text())['split'] == 'recording'

def test_predict_bad_audio_and_unknown_city(run, tmp_path):
    out, _ = run
    audio = tmp_path/'audio'; shutil.copytree(out/'data'/'audio', audio)
    ev = pd.read_csv(out/'data'/'eval_metadata.csv', dtype=str, keep_default_na=False).head(6)
    ev.loc[0, 'location'] = 'Atlantis'
    (audio/f"{ev.filename[1]}.wav").write_bytes(b'not audio at all')
    (audio/f"{ev.filename[2]}.wav").unlink()
    ev.to_csv(tmp_path/'m.csv', index=False)
    r = run_cli('asc-predict', '--model', out/'model.pt', '--meta', tmp_path/'m.csv', '--audio', audio, '--out', tmp_path/'s.csv', check=False)
    assert r.returncode == 2 and (ev.filename[1] in r.stderr or ev.filename[2] in r.stderr)
    r = run_cli('asc-predict', '--model', out/'model.pt', '--meta', tmp_path/'m.csv', '--audio', audio, '--out', tmp_path/'s.csv',
                '--on-error', 'skip')
    s = pd.read_csv(tmp_path/'s.csv'); sk = pd.read_csv(tmp_path/'s_skipped.csv')
    assert len(s) == 4 and set(sk.filename) == {ev.filename[1], ev.filename[2]}
    assert 'Atlantis' in r.stdout and 'Atlantis' in set(s.location)

def test_predict_files_by_name(run, tmp_path):
    "asc-predict --model M FILE...: no metadata CSV, any sample rate/channels, a folder, unreadable files listed, the same figures as the CSV way"
    import soundfile as sf
    out, _ = run
    ev = read_meta(out/'data'/'eval_metadata.csv').head(3)
    files = [out/'data'/'audio'/f'{f}.wav' for f in ev.filename]
    run_cli('asc-predict', '--model', out/'model.pt', '--meta', out/'data'/'eval_metadata.csv', '--audio', out/'data'/'audio',
            '--out', tmp_path/'s.csv', '--probs', tmp_path/'p.csv', '--aggregate', 'none')
    ref = pd.read_csv(tmp_path/'p.csv').set_index('filename')
    for f, loc, t in zip(files, ev.location, ev.record_time):   # one file at a time with its own city and time
        run_cli('asc-predict', '--model', out/'model.pt', f, '--city', loc, '--time', t, '--out', tmp_path/'one.csv')
        got = pd.read_csv(tmp_path/'one.csv')
        np.testing.assert_allclose(got[CLASSES].to_numpy()[0], ref.loc[f.stem, CLASSES].to_numpy(), atol=1e-4)
    d = tmp_path/'folder'; d.mkdir()
    y, sr = sf.read(files[0], dtype='float32')
    sf.write(d/'stereo48k.flac', np.stack([y, y], 1)[::1], sr)   # stereo FLAC
    import soxr; sf.write(d/'mono16k.wav', soxr.resample(y, sr, 16000), 16000, subtype='PCM_24')
    (d/'broken.wav').write_bytes(b'RIFF not really')
    r = run_cli('asc-predict', '--model', out/'model.pt', d, '--out', tmp_path/'f.csv', check=False)
    assert r.returncode == 2 and 'broken.wav' in r.stderr
    r = run_cli('asc-predict', '--model', out/'model.pt', d, '--out', tmp_path/'f.csv', '--on-error', 'skip')
    f = pd.read_csv(tmp_path/'f.csv', keep_default_na=False)
    names = [Path(p).name for p in f.filename]
    assert sorted(names) == ['broken.wav', 'mono16k.wav', 'stereo48k.flac'] and '2 predictions' in r.stdout
    bad = f[[n == 'broken.wav' for n in names]]
    assert bad.scene_label.iloc[0] == '' and bad.error.iloc[0] != ''
    assert set(f.city_used) == {'unknown'}   # no --city: the unknown city
    r = run_cli('asc-predict', '--model', out/'model.pt', files[0], '--time', 'noon', '--out', tmp_path/'x.csv', check=False)
    assert r.returncode == 2 and "time 'noon' is not a time" in r.stderr
    r = run_cli('asc-predict', '--model', out/'model.pt', files[0], '--meta', 'm.csv', check=False)
    assert r.returncode == 2 and 'not both' in r.stderr

@pytest.mark.parametrize('args,msg', [
    ([], 'give --demo, or --audio DIR and --meta CSV'),
    (['--demo', '--recipe', 'nope'], "valid recipes: ['baseline', 'yang2025', 'li2025', 'atmaja2025']"),
    (['--demo', '--audio', 'x'], 'leave out --audio'),
    (['--demo', '--pretrain', 'tau2020'], 'NAME=DIR'),
    (['--audio', '.', '--meta', 'missing.csv'], 'metadata file not found'),
    (['--demo', '--city-dropout', '1.5'], '--city-dropout must be in [0, 1)'),
    (['--demo', '--aggregate', 'day'], "invalid choice: 'day'"),
])
def test_train_bad_arguments(tmp_path, args, msg):
    r = run_cli('asc-train', *args, '--out', tmp_path/'o', check=False)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
