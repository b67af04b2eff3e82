"""Autoguidance (Karras et al. 2024) against the grain: guide the shipped cpu model with a worse model of its own kind.

Classifier-free guidance extrapolates away from the unconditional prediction, and bench/grain_sources.py shows that
this is what makes the grain. Autoguidance extrapolates away from a worse *conditional* model instead:
    out = good(c) + w_ag (good(c) - bad(c))                          [+ w_cfg (good(c) - good(null)) beside it]
The worse model, as the paper recommends, is smaller and shorter-trained: the cpu preset at half its width (channels
32-64-64) for 1000 steps instead of 4000, the same seed and data (trained here unless --guide holds it; the same as
`ddpm-lab train --preset cpu --set steps=1000 sample_every=0 'model.channels=[32,64,64]'`). Each setting samples the 96 lists of
test.json + heldout.json with DDPM 50 at sampling seed 0 from data/weights/cpu.pt and reports grain and floor colour
(against renders of the same lists) and both judges' accuracy; results/autoguidance.json keeps them.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/autoguidance.py [--guide runs/cpu_1000]
"""
import argparse, json, platform, time, torch
from pathlib import Path
import ddpm_lab.sampling as S
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, encode, read_labels
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.train import get_config, train
from ddpm_lab.evaluation import reference, cleanliness, predict, course_accuracy, load_evaluator, JUDGE2_PATH

SETTINGS = [dict(cfg=3., ag=0.), dict(cfg=0., ag=1.), dict(cfg=0., ag=2.), dict(cfg=1., ag=2.)]
PLAIN = S.cfg_model
GUIDE = {'steps': 1000, 'sample_every': 0, 'model.channels': [32, 64, 64]}   # overrides of the cpu preset


def guided(good, bad, w_cfg, w_ag):
    "The network fn(x, t, c) of classifier-free guidance by w_cfg plus autoguidance by w_ag."
    def net(x, t, c):
        if w_cfg: g_c, g_u = good(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)])).chunk(2)
        else: g_c, g_u = good(x, t, c), 0.
        out = g_c + w_cfg * (g_c - g_u)
        return out + w_ag * (g_c - bad(x, t, c)) if w_ag else out
    return net


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--guide', default='runs/cpu_1000', help='run folder of the worse model (trained there if missing)')
    a = P.parse_args()
    ckpt = Path(a.guide) / 'ckpt.pt'
    train(get_config('cpu', **GUIDE), out=a.guide, resume=True)   # returns at once when finished
    pipe, bad = load_pipeline(DATA_DIR / 'weights' / 'cpu.pt', device='cpu'), load_pipeline(ckpt, device='cpu').net
    cond = encode(read_labels(DATA_DIR / 'test.json') + read_labels(DATA_DIR / 'heldout.json'))
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in ('test.json', 'heldout.json')])
    judges = dict(evaluator=load_evaluator(), judge2=load_evaluator(JUDGE2_PATH))
    rows = []
    for s in SETTINGS:
        S.cfg_model = lambda model, w: guided(model, bad, s['cfg'], s['ag'])   # sample() guides through cfg_model
        t0 = time.time()
        x = S.sample(pipe, cond, sampler='ddpm', steps=50, w=1., seed=0)     # w only has to be non-zero here
        c = cleanliness(x, refs)
        rows.append(s | dict(grain=c['grain'], floor_colour=c['saturation'], seconds=time.time() - t0,
                             **{j: course_accuracy(predict(m, x), cond) for j, m in judges.items()}))
        print(json.dumps({k: round(v, 3) for k, v in rows[-1].items()}), flush=True)
    S.cfg_model = PLAIN
    meta = dict(machine=f'{platform.machine()} CPU, torch {torch.__version__}', model='data/weights/cpu.pt',
                guide=f'cpu preset with {GUIDE}, seed 42 ({ckpt})', lists='test.json + heldout.json', sampler='DDPM 50', seed=0)
    atomic_write(RESULTS_DIR / 'autoguidance.json', lambda tmp: tmp.write_text(json.dumps(dict(meta=meta, rows=rows), indent=1)))


if __name__ == '__main__':
    main()
