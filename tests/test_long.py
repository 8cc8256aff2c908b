"Long recordings: `asc-predict --window/--hop` (one row per window, the file rows, the timeline), the log line without --window, short and broken files."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf
from conftest import run_cli
from asc_nbdev.all import *

@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    "A 2 s model (untrained: only the windows matter here), and a 7 s file of known segments at 48 kHz, 24-bit stereo"
    d = tmp_path_factory.mktemp('long')
    make_synthetic(d/'data', preset='demo', n_clips=60, progress=False)
    r = get_recipe('li2025', quick=True)
    cache = build_feature_cache(d/'data'/'audio', read_meta(d/'data'/'dev_metadata.csv').filename, d/'features', progress=False)
    save_asc_model(make_model(r), d/'model.pt', r, (np.zeros(64, np.float32), np.ones(64, np.float32)), cache.params)
    names = read_meta(d/'data'/'dev_metadata.csv').filename[:3]
    y = np.concatenate([load_audio(d/'data'/'audio'/f'{n}.wav', sr=48000)[0] for n in names] + [np.zeros(48000, np.float32)])   # 3 x 2 s + 1 s
    sf.write(d/'long.wav', np.stack([y, y], 1), 48000, subtype='PCM_24')
    return d

def test_windows_rows_and_file_row(setup, tmp_path):
    d = setup
    r = run_cli('asc-predict', '--model', d/'model.pt', '--window', '2', '--time', '2023-06-18 17:17:01', '--out', tmp_path/'long.csv', '--plot', d/'long.wav')
    w = pd.read_csv(tmp_path/'long.csv', keep_default_na=False)
    assert w.start.tolist() == [0, 2, 4, 6] and w.end.tolist() == [2, 4, 6, 7]
    assert w.padded.tolist() == [False, False, False, True]                    # the last, partial window: padded and flagged
    assert w.time.tolist() == ['2023-06-18 17:17:01', '2023-06-18 17:17:03', '2023-06-18 17:17:05', '2023-06-18 17:17:07']
    f = pd.read_csv(tmp_path/'long_files.csv', keep_default_na=False)
    assert len(f) == 1 and f.windows[0] == 4 and f.seconds[0] == 7
    np.testing.assert_allclose(f[CLASSES].to_numpy()[0], w[CLASSES].to_numpy().mean(0), atol=1e-5)
    assert f.scene_label[0] == CLASSES[int(f[CLASSES].to_numpy()[0].argmax())]
    assert (tmp_path/'long.png').stat().st_size > 1000 and 'timeline' in r.stdout

def test_hop_overlaps_and_covers_the_end(setup, tmp_path):
    d = setup
    w = predict(d/'model.pt', d/'long.wav', window=2.0, hop=1.5)
    assert w.start.tolist() == [0, 1.5, 3.0, 4.5, 6.0] and w.end.iloc[-1] == 7 and w.padded.tolist() == [False] * 4 + [True]

def test_windows_read_in_blocks_equal_one_read(setup):
    "Reading block by block (resampled as a stream) gives the same windows as reading the file at once"
    d = setup
    a = [y for *_, y in audio_windows(d/'long.wav', 44100, 2.0, block=0.7)]
    b = [y for *_, y in audio_windows(d/'long.wav', 44100, 2.0, block=60)]
    assert len(a) == len(b) == 4
    for x, y in zip(a, b): np.testing.assert_allclose(x, y, atol=1e-5)
    full = load_audio(d/'long.wav', sr=44100)[0]
    np.testing.assert_allclose(b[1], full[88200:176400], atol=2e-3)           # what load_audio reads, the same samples

def test_without_window_says_what_was_not_used(setup, tmp_path):
    d = setup
    r = run_cli('asc-predict', '--model', d/'model.pt', '--out', tmp_path/'one.csv', d/'long.wav')
    assert len(pd.read_csv(tmp_path/'one.csv')) == 1
    assert "longer than the model's 2 s clips" in r.stdout and '5.0 s of audio were not used' in r.stdout and '--window 2' in r.stdout

def test_meta_clips_longer_than_training_are_reported(setup, tmp_path):
    d = setup
    sf.write(tmp_path/'long.wav', sf.read(d/'long.wav')[0], 48000)
    meta = pd.DataFrame(dict(filename=['long'], location=['Hefei'], record_time=['2023-06-18 17:17:01'], scene_label=['']))
    meta.to_csv(tmp_path/'m.csv', index=False)
    r = run_cli('asc-predict', '--model', d/'model.pt', '--meta', tmp_path/'m.csv', '--audio', tmp_path, '--out', tmp_path/'s.csv')
    assert 'were not used' in r.stdout and 'long.wav: 7.0 s, 5.0 s unused' in r.stdout

def test_short_and_broken_files(setup, tmp_path):
    d = setup
    sf.write(tmp_path/'short.wav', np.zeros(24000, np.float32), 48000)      # half a second: one padded window
    (tmp_path/'broken.wav').write_bytes(b'RIFF\x10\x00\x00\x00WAVEjunk')
    files = [tmp_path/'short.wav', tmp_path/'broken.wav', d/'long.wav']
    r = run_cli('asc-predict', '--model', d/'model.pt', '--window', '2', '--on-error', 'skip', '--out', tmp_path/'w.csv', *files)
    w = pd.read_csv(tmp_path/'w.csv', keep_default_na=False)
    s = w[w.filename == str(tmp_path/'short.wav')]
    assert s[['start', 'end']].astype(float).values.tolist() == [[0, 0.5]] and s.padded.astype(str).tolist() == ['True']
    b = w[w.filename == str(tmp_path/'broken.wav')]
    assert len(b) == 1 and 'not a readable audio file' in b.error.iloc[0] and b.scene_label.iloc[0] == ''
    assert (w.filename == str(d/'long.wav')).sum() == 4                      # the file after the broken one: predicted
    assert '1 files could not be read' in r.stdout
    bad = run_cli('asc-predict', '--model', d/'model.pt', '--window', '2', '--out', tmp_path/'x.csv', *files, check=False)
    assert bad.returncode != 0 and 'broken.wav' in bad.stderr and 'not a readable audio file' in bad.stderr

@pytest.mark.parametrize('args,msg', [(['--hop', '1'], '--hop and --plot go with --window'),
                                      (['--window', '0'], 'window and hop must be positive')])
def test_bad_window_options(setup, tmp_path, args, msg):
    d = setup
    r = run_cli('asc-predict', '--model', d/'model.pt', *args, '--out', tmp_path/'x.csv', d/'long.wav', check=False)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
