"""The teacher adapters against the official code, on the same random weights.

For each adapter: build the OFFICIAL model class from a checkout of its repository (outside this one), fill it with
seeded random weights, save it in the official checkpoint format, load that file through `load_teacher('NAME=PATH')`,
run both on the same random waveforms (2 clips of 10 s, 2 clips of 3.7 s) and print the largest absolute difference of
the embeddings and of the front-end features, absolute and relative to the largest official value.

The official code needs packages this project does not declare (torchlibrosa for PANNs; timm, hear21passt for PaSST):
run this with a throwaway virtual environment, never the project's:

    python -m venv --system-site-packages /tmp/fidelity-venv
    /tmp/fidelity-venv/bin/pip install torchlibrosa hear21passt
    /tmp/fidelity-venv/bin/python tools/teacher_fidelity.py --panns /tmp/official/audioset_tagging_cnn \\
        --efficientat /tmp/official/EfficientAT --beats /tmp/official/unilm/beats --passt /tmp/official/PaSST \\
        --out bench/teacher_fidelity.md

Each checkout is imported from its own folder for the time of its check (EfficientAT and PaSST both name a package
`models`); nothing of it is copied. PaSST's repository imports its experiment framework (ba3l, sacred) beside the model:
a stub stands in for it, which only registers commands.
"""
import argparse, contextlib, io, os, platform, subprocess, sys, tempfile, time, types, warnings
from importlib.metadata import version, PackageNotFoundError
from pathlib import Path
import numpy as np, torch
from asc_nbdev.teachers.core import load_teacher
from asc_nbdev.teachers.panns import randomize_, Cnn14 as Cnn14Teacher
from asc_nbdev.teachers.beats import BEATS_ITER3, beats_fbank

@contextlib.contextmanager
def official(root, *names):
    "Import from checkout `root` (also the working directory: files it opens at import); then forget modules `names`"
    root, cwd = str(root), os.getcwd()
    sys.path.insert(0, root); os.chdir(root)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter('ignore'); yield
    finally:
        os.chdir(cwd); sys.path.remove(root)
        for k in list(sys.modules):
            if k.split('.')[0] in names: del sys.modules[k]

def commit(root) -> str:
    "The checkout's commit: git's, or a COMMIT file written beside it when it was unpacked"
    r = subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True)
    if r.returncode == 0: return r.stdout.strip()
    f = next((p/'COMMIT' for p in (Path(root), *Path(root).parents) if (p/'COMMIT').is_file()), None)
    return f.read_text().strip() if f else 'unknown'

def waves(sr:int, seed:int=0) -> list:
    "2 clips of 10 s and 2 of 3.7 s: noise with a tone, at varied levels"
    g = torch.Generator().manual_seed(seed)
    def batch(n):
        t = torch.arange(n) / sr
        tone = torch.sin(2 * torch.pi * torch.tensor([[440.], [3_000.]]) * t)
        return (torch.randn(2, n, generator=g) * torch.tensor([[0.05], [0.3]]) + 0.2 * tone).float()
    return [batch(10 * sr), batch(int(3.7 * sr))]

def diff(a, b) -> tuple:
    "(largest absolute difference, that relative to the largest absolute reference value)"
    d = (a.double() - b.double()).abs().max().item()
    return d, d / max(b.abs().max().item(), 1e-30)

def compare(name, spec, sr, ours_front, off_front, off_embed):
    "Load the saved checkpoint through `load_teacher(spec)` and compare with the official model on the same clips"
    t = load_teacher(spec)
    rows = []
    for x in waves(sr):
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            e, eo = t.module(x), off_embed(x)
            f, fo = ours_front(t.module, x), off_front(x)
        rows.append(dict(model=name, clips=f'{x.shape[0]} x {x.shape[1] / sr:g} s', dim=e.shape[1],
                         embed=diff(e, eo), front=diff(f, fo), scale=eo.abs().max().item(),
                         nonzero=(eo != 0).float().mean().item()))
        r = rows[-1]
        print(f"{name:36s} {r['clips']:>10s}  embedding |diff| {r['embed'][0]:.2e} (rel {r['embed'][1]:.1e}, "
              f"largest |official| {r['scale']:.3g}, {r['nonzero']:.0%} nonzero)  front end |diff| {r['front'][0]:.2e} "
              f"(rel {r['front'][1]:.1e})", flush=True)
    return rows

def check_panns(root, tmp):
    with official(Path(root)/'pytorch', 'models', 'pytorch_utils'):
        from models import Cnn14
        off = Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=14000,
                    classes_num=527)
    ours = Cnn14Teacher()   # the front-end matrices we compute for a model built without a checkpoint
    for k in ('spectrogram_extractor.stft.conv_real.weight', 'spectrogram_extractor.stft.conv_imag.weight',
              'logmel_extractor.melW'):
        d = diff(ours.state_dict()[k], off.state_dict()[k])
        MATRICES.append(f"`{k}`: {d[0]:.1e} (relative {d[1]:.1e})")
        print(f"PANNs CNN14 {k} as we compute it vs torchlibrosa: |diff| {d[0]:.1e} (rel {d[1]:.1e})")
    off = randomize_(off, 1, keep=('spectrogram_extractor.', 'logmel_extractor.')).eval()
    sampler = {'indexes_per_class': [np.arange(5) for _ in range(3)], 'queue': [1, 2], 'pointers_of_classes': [0] * 3}
    torch.save({'iteration': 0, 'model': off.state_dict(), 'sampler': sampler}, tmp/'Cnn14_mAP=0.431.pth')   # main.py's
    return compare('PANNs CNN14', f'panns_cnn14={tmp}/Cnn14_mAP=0.431.pth', 32_000, lambda m, x: m.logmel(x),
                   lambda x: off.logmel_extractor(off.spectrogram_extractor(x)), lambda x: off(x)['embedding'])

def check_efficientat(root, tmp):
    with official(root, 'models', 'helpers'):
        from models.mn.model import get_model
        from models.preprocess import AugmentMelSTFT
        off = get_model(width_mult=1.0, pretrained_name=None, strides=(2, 2, 2, 2), head_type='mlp')
        mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320).eval()
    off = randomize_(off, 2).eval()
    torch.save(off.state_dict(), tmp/'mn10_as_mAP_471.pt')
    def front(x):
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); return mel(x)
    return compare('EfficientAT mn10', f'efficientat_mn10={tmp}/mn10_as_mAP_471.pt', 32_000, lambda m, x: m.mel(x),
                   front, lambda x: off(front(x)[:, None])[1])

BEATS_TRAINING = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, encoder_layerdrop=0.05,
                      dropout_input=0.0, layer_wise_gradient_decay_ratio=0.6)   # in official cfgs; no effect in eval
MATRICES = []   # PANNs' front-end matrices, ours against torchlibrosa's

def check_beats(root, tmp):
    with official(root, 'BEATs', 'backbone', 'modules'):
        from BEATs import BEATs, BEATsConfig
    small = dict(encoder_layers=3, encoder_embed_dim=96, encoder_ffn_embed_dim=192, encoder_attention_heads=4,
                 embed_dim=48, conv_pos=16, conv_pos_groups=4)
    cases = [('BEATs iter3+', {**BEATS_ITER3, **BEATS_TRAINING}),
             ('BEATs iter3+ fine-tuned (small)', {**BEATS_ITER3, **BEATS_TRAINING, **small, 'finetuned_model': True}),
             ('BEATs pre-norm, no rel. pos (small)', {**BEATS_ITER3, **small, 'conv_pos': 15, 'layer_norm_first': True,
              'deep_norm': False, 'relative_position_embedding': False, 'gru_rel_pos': False})]
    rows = []
    for i, (name, cfg) in enumerate(cases):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); off = randomize_(BEATs(BEATsConfig(cfg)), 3 + i).eval()   # weight_norm
        out = {}
        off.encoder.register_forward_hook(lambda mod, inp, o: out.update(x=o[0]))   # before a fine-tuned predictor
        def embed(x): off.extract_features(x); return out['x'].mean(1)
        torch.save({'cfg': cfg, 'model': off.state_dict()}, tmp/f'BEATs_{i}.pt')
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); rows += compare(
            name, f'beats={tmp}/BEATs_{i}.pt', 16_000, lambda m, x: beats_fbank(x), off.preprocess, embed)
    return rows

def _ba3l_stub():
    "Stand-ins for the ba3l modules PaSST's model files import: an Ingredient that only registers commands"
    class Ingredient:
        def __init__(self, *a, **k): pass
        def add_config(self, *a, **k): pass
        def command(self, f=None, **k): return f if f is not None else (lambda g: g)
    mods = {n: types.ModuleType(n) for n in ('ba3l', 'ba3l.ingredients', 'ba3l.ingredients.ingredient')}
    mods['ba3l.ingredients.ingredient'].Ingredient = Ingredient
    return mods

def check_passt(root, tmp):
    with official(root, 'models', 'ba3l'):
        sys.modules.update(_ba3l_stub())
        from models.passt import get_model
        from models.preprocess import AugmentMelSTFT
        net = get_model(arch='passt_s_swa_p16_128_ap476', pretrained=False, fstride=10, tstride=10,
                        input_fdim=128, input_tdim=998)
        mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                             htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000).eval()
    net = randomize_(net, 4).eval()
    torch.save(net.state_dict(), tmp/'passt-s-f128-p16-s10-ap.476-swa.pt')
    def front(x):
        with warnings.catch_warnings(): warnings.simplefilter('ignore'); return mel(x)
    def embed(x):
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore'); return net(front(x)[:, None])[1]
    return compare('PaSST-S (hear21passt)', f'passt={tmp}/passt-s-f128-p16-s10-ap.476-swa.pt', 32_000,
                   lambda m, x: m.mel(x), front, embed)

def versions() -> str:
    def v(n):
        try: return version(n)
        except PackageNotFoundError: return 'missing'
    names = ['torch', 'torchaudio', 'numpy', 'librosa', 'torchlibrosa', 'torchvision', 'timm', 'hear21passt']
    return f"python {platform.python_version()}, " + ', '.join(f'{n} {v(n)}' for n in names)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--panns', help='checkout of qiuqiangkong/audioset_tagging_cnn')
    p.add_argument('--efficientat', help='checkout of fschmid56/EfficientAT')
    p.add_argument('--beats', help="the beats/ folder of a checkout of microsoft/unilm")
    p.add_argument('--passt', help='checkout of kkoutini/PaSST')
    p.add_argument('--threads', type=int, default=2, help='torch threads')
    p.add_argument('--out', help='write the results as markdown here')
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    checks = [(n, f, getattr(a, n)) for n, f in (('panns', check_panns), ('efficientat', check_efficientat),
                                                   ('beats', check_beats), ('passt', check_passt)) if getattr(a, n)]
    if not checks: p.error('give at least one checkout')
    rows, t0 = [], time.time()
    with tempfile.TemporaryDirectory(prefix='teacher-fidelity-') as tmp:
        for n, f, root in checks: rows += f(root, Path(tmp))
    print(f"{time.time() - t0:.0f} s; {versions()}")
    if a.out: write_md(a, checks, rows, time.time() - t0)

def write_md(a, checks, rows, secs):
    cmd = ' '.join(['python', 'tools/teacher_fidelity.py'] + sys.argv[1:])
    lines = ['# Teacher adapters against the official code', '',
             'Written by `tools/teacher_fidelity.py`: each official model class, filled with seeded random weights '
             '(every parameter and batch-norm statistic), saved in its official checkpoint format, loaded through '
             "`load_teacher('NAME=PATH')`, and both run on the same waveforms (noise and a tone). Largest absolute "
             'difference of the embeddings and of the front-end features (official - ours), and that relative to the '
             'largest absolute official value. float32 on the CPU.', '',
             f'Command (with a throwaway virtual environment holding torchlibrosa, timm and hear21passt): `{cmd}`', '',
             f'Versions: {versions()}; {torch.get_num_threads()} torch threads; {secs:.0f} s.', '',
             'Official code: ' + '; '.join(f'{n} at `{commit(r)}`' for n, _, r in checks) + '.', '',
             '| model | clips | dim | embedding: largest difference | relative | largest official value | nonzero '
             '| front end: largest difference | relative |', '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    lines += [f"| {r['model']} | {r['clips']} | {r['dim']} | {r['embed'][0]:.2e} | {r['embed'][1]:.1e} | "
              f"{r['scale']:.3g} | {r['nonzero']:.0%} | {r['front'][0]:.2e} | {r['front'][1]:.1e} |" for r in rows]
    lines += ['', 'Notes:', '',
              '- A difference of 0 means the same operations in the same order (bit-identical results). BEATs differs '
              'by float32 rounding: our attention is `scaled_dot_product_attention`, where the official code scales '
              'the scores by 1/32 around a max-subtraction and computes the gate from a rescaled query.',
              "- PANNs: the file also holds `iteration` and a `sampler` of numpy arrays, as the official training "
              "script saves them; it is read with `weights_only=True`, numpy's array reconstruction allowed.",
              "- BEATs: the iter3+ settings at full size, with the training-only keys of the official cfgs; a "
              'fine-tuned checkpoint (with `predictor`, which the adapter sets aside with a warning) compared with the '
              "official encoder's output before its predictor; and a pre-norm model without the relative position "
              'bias and with an odd position-conv kernel, for the other branches.',
              "- PaSST: the official side is the PaSST repository's own model and front end (`models/passt.py`, "
              '`models/preprocess.py`, with its experiment framework stubbed), ours the classes of the package '
              'hear21passt, which the adapter uses.']
    if MATRICES: lines += ['', "PANNs' front-end matrices as `Cnn14` computes them for a model built without a "
                           "checkpoint (what `random_cnn14_checkpoint` saves), against torchlibrosa's: largest "
                           "difference " + '; '.join(MATRICES) + '.']
    Path(a.out).write_text('\n'.join(lines) + '\n')
    print('wrote', a.out)

if __name__ == '__main__': main()
