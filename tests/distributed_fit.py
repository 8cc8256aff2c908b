"""Run by tests/test_distributed.py, in one process (python) or two (torchrun): trains the baseline quick recipe on
a feature cache and saves what the test compares. Dropout (including the attention's) and augmentation are off, so
that a step depends only on the clips of the global batch; city/time dropout is 0."""
import sys, json, torch, numpy as np
from pathlib import Path
from asc_nbdev.all import *
from asc_nbdev.train.distributed import swap_batchnorm, process_batchnorm

cache_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
W, main = process_count(), is_main_process()
init_processes('cpu')

def no_dropout(model):
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout): m.p = 0.
        if isinstance(m, torch.nn.MultiheadAttention): m.dropout = 0.
    return model

# 1. one step's gradients in float64 (float32 rounding is amplified through the batch norms; float64 shows the maths)
r = get_recipe('baseline', quick=True)
seed_everything(0); model = no_dropout(make_model(r, metadata=False)).double().train()   # audio only: the city/time inputs are float32 by design
g = torch.Generator().manual_seed(1)
x = torch.randn(16, 1, 25, 64, generator=g, dtype=torch.float64); c = torch.randint(0, 22, (16,), generator=g)
t = torch.randn(16, 8, generator=g, dtype=torch.float64); y = torch.randint(0, 10, (16,), generator=g)
if W > 1:
    import torch.distributed as dist
    grp = dist.new_group(backend='gloo'); swap_batchnorm(model, lambda b: process_batchnorm(b, grp))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    k = process_rank(); sl = slice(k * 16 // W, (k + 1) * 16 // W)
    ASCLoss()(ddp(x[sl], c[sl], t[sl]), y[sl]).backward()
else: ASCLoss()(model(x, c, t), y).backward()
grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

# 2. fit_recipe for 2 epochs (float32), the global batch 16 in both runs
dev = read_meta(cache_dir/'dev_metadata.csv'); cache = FeatureCache(cache_dir/'features')
r = r.replace(epochs=2, city_dropout=0., time_dropout=0.)
dls = asc_dataloaders(dev, cache, 'recording', bs=r.bs, seed=r.seed)
seed_everything(r.seed); model = no_dropout(make_model(r))
learn, s = fit_recipe(r, dls, model=model, path=out/f'fit{W}', progress=False)
probs = predict_probs(learn.model, dls.valid)   # sharded across the processes, gathered in order
h = history_frame(learn)
if main:
    torch.save(dict(grads=grads, state={k: v.detach().cpu() for k, v in learn.model.state_dict().items()}, probs=probs,
                    history=h.to_numpy(), summary=s, bs=dls.train.bs,
                    bn=[type(m).__name__ for m in learn.model.modules() if 'BatchNorm' in type(m).__name__]), out/f'result{W}.pt')
if W > 1:   # leave the process group before exit: gloo's threads torn down at interpreter exit can abort a process ("terminate called")
    import torch.distributed as dist
    dist.barrier(); dist.destroy_process_group()
