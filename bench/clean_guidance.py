"""Guidance that leaves no grain: samplers that keep classifier-free guidance's accuracy with cleaner samples (issue 24.3).

The grain of our samples is made by guidance (docs/results.md, "Where the grain comes from"). This screens sampling
rules that the grain table did not: a guidance weight that grows with the noise level (w(t) = 2 w t, the same mean
over t as a constant w; Wang et al. 2024 find increasing schedules best), CFG++ (Chung et al. 2024: the guided clean
image is renoised with the unconditional noise estimate instead of the guided one), the interval and the low-pass
direction together, and a restart (Xu et al. 2023): the guided sample is noised again to time t_r and denoised once
more with weight w_r (0: the conditional model alone), which removes fine detail that no training image has while the layout and
colours, decided above t_r, stay. Every rule runs the same ancestral loop (DDIM with eta = 1 is the DDPM posterior)
on the same noise as `sampling.sample`; its first row reproduces the library's DDPM 50 at w = 3.
Screen: our own 128 lists (heldout.json + novel.json), sampling seed 0; grain and floor colour against renders of
the same lists (1 = as clean as a render); both judges. --confirm NAME scores one rule over seeds 0-4 on the four files.
Rows are added to --out (results/clean_guidance.json) as they are measured; a rule measured again replaces its row.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/clean_guidance.py [--only NAME ...] [--confirm NAME ...] [--out results/clean_guidance.json]
(one thread: about a minute a rule in the screen, 8 minutes a rule to confirm)
"""
import argparse, json, os, time, torch
from torchvision.transforms.v2.functional import gaussian_blur
from ddpm_lab.data import DATA_DIR, encode, read_labels, atomic_write
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.sampling import RowNoise, timesteps, sample, ddim_step
from ddpm_lab.evaluation import reference, cleanliness, predict, course_accuracy, load_evaluator, EVAL_FILES

def weight(w, lo=0., hi=1., power=0):
    "Guidance weight at network time t: w (p+1) t^p on [lo, hi], 0 elsewhere; its mean over t in [0, 1] is w (power 0: constant)."
    return lambda t: w * (power + 1) * t ** power if lo <= t <= hi else 0.

@torch.no_grad()
def run(pipe, cond, seed, w_of_t, cfgpp=False, sigma=0., restart=None, steps=50):
    "Ancestral sampling with guidance weight w_of_t(t); cfgpp renoises with the unconditional noise; restart=(t_r, w_r) denoises again from t_r."
    sch, B = pipe.schedule, len(cond)
    abar = sch.alpha_bar.tolist() + [1.0]
    noise = RowNoise(seed, range(B), (3, pipe.size, pipe.size), cond.device)
    def denoise(x, ts, w_of_t):
        for i, t in enumerate(ts):
            ab_t, ab_s = abar[t], abar[ts[i + 1] if i + 1 < len(ts) else -1]
            tt = sch.model_time(torch.full((B,), t))
            w = w_of_t(tt[0].item())
            xin = sch.model_input(pipe.pred, x, t)   # what the network sees (x_t, or x_t / D for pred='edm')
            if w == 0: out = pipe.net(xin, tt, cond).float(); eps_u = None
            else:
                out_c, out_u = pipe.net(torch.cat([xin, xin]), torch.cat([tt, tt]), torch.cat([cond, torch.zeros_like(cond)])).float().chunk(2)
                d = out_c - out_u
                if sigma: d = gaussian_blur(d, 2 * round(2 * sigma) + 1, sigma)
                out = out_c + w * d
                eps_u = sch.to_eps_x0(pipe.pred, out_u, x, t)[0]
            x0 = sch.to_eps_x0(pipe.pred, out, x, t)[1].clamp(-1, 1)
            if cfgpp and eps_u is not None: x = ab_t ** 0.5 * x0 + (1 - ab_t) ** 0.5 * eps_u   # CFG++: step from where the unconditional noise points
            x = ddim_step(x, x0, ab_t, ab_s, noise(), eta=1.)   # DDIM with eta = 1: the DDPM posterior
        return x
    ts = timesteps(sch.T, steps)
    x = denoise(noise(), ts, w_of_t)
    if restart:
        t_r, w_r = restart
        rest = [t for t in ts if (t + 1) / sch.T <= t_r]
        ab = abar[rest[0]]
        x = denoise(ab ** 0.5 * x + (1 - ab) ** 0.5 * noise(), rest, weight(w_r))
    return x.clamp(-1, 1)

RULES = {
    'cfg w3': dict(w_of_t=weight(3.)),
    'cfg w=4t (mean 2)': dict(w_of_t=weight(2., power=1)),
    'cfg w=6t (mean 3)': dict(w_of_t=weight(3., power=1)),
    'cfg w=8t (mean 4)': dict(w_of_t=weight(4., power=1)),
    'cfg w=12t^2 (mean 4)': dict(w_of_t=weight(4., power=2)),
    'cfg w=10t (mean 5)': dict(w_of_t=weight(5., power=1)),
    'cfg w=8t, blurred 1px': dict(w_of_t=weight(4., power=1), sigma=1.),
    'cfg w=8t, restart t0.2 w0': dict(w_of_t=weight(4., power=1), restart=(0.2, 0.)),
    'cfg w=8t, restart t0.3 w1': dict(w_of_t=weight(4., power=1), restart=(0.3, 1.)),
    'cfg w=10t, restart t0.3 w0': dict(w_of_t=weight(5., power=1), restart=(0.3, 0.)),
    'cfg w4 t>=0.2, blurred 1px': dict(w_of_t=weight(4., lo=0.2), sigma=1.),
    'cfg++ w1': dict(w_of_t=weight(1.), cfgpp=True),
    'cfg++ w3': dict(w_of_t=weight(3.), cfgpp=True),
    'cfg w3, restart t0.2 w0': dict(w_of_t=weight(3.), restart=(0.2, 0.)),
    'cfg w3, restart t0.3 w0': dict(w_of_t=weight(3.), restart=(0.3, 0.)),
    'cfg w3, restart t0.3 w1': dict(w_of_t=weight(3.), restart=(0.3, 1.)),
    'cfg w4, restart t0.3 w0': dict(w_of_t=weight(4.), restart=(0.3, 0.)),
}

def score(x, cond, refs, judges):
    c = cleanliness(x, refs)
    return dict(grain=round(c['grain'], 3), floor=round(c['saturation'], 3),
                **{k: round(course_accuracy(predict(j, x), cond), 4) for k, j in judges.items()})

if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--ckpt', default=str(DATA_DIR / 'weights' / 'cpu.pt'))
    p.add_argument('--confirm', nargs='*', default=None, help='rules to score over seeds 0-4 on the four files')
    p.add_argument('--only', nargs='*', default=None, help='screen only these rules')
    p.add_argument('--out', default=None, help='results file to add the rows to')
    a = p.parse_args()
    torch.manual_seed(0)
    pipe = load_pipeline(a.ckpt, device='cpu')
    judges = dict(evaluator=load_evaluator(), judge2=load_evaluator(DATA_DIR / 'weights' / 'judge2.pth'))
    out = json.loads(open(a.out).read()) if a.out and os.path.isfile(a.out) else dict(meta=dict(ckpt=a.ckpt, sampling='ancestral, 50 steps'), screen=[], confirm=[])
    def keep(part, row):   # written after every row, so an interrupted run keeps what it measured
        print(json.dumps(row), flush=True)
        out[part] = [r for r in out[part] if (r['rule'], r.get('file')) != (row['rule'], row.get('file'))] + [row]
        if a.out: atomic_write(a.out, lambda tmp: tmp.write_text(json.dumps(out, indent=1) + '\n'))
    if a.confirm is None:
        files = ('heldout.json', 'novel.json')
        cond = encode(sum((read_labels(DATA_DIR / f) for f in files), []))
        refs = torch.cat([reference(DATA_DIR / f, 1, pipe.size)[0] for f in files])
        for name, rule in RULES.items():
            if a.only and name not in a.only: continue
            t0 = time.time(); x = run(pipe, cond, 0, **rule)
            if name == 'cfg w3':   # the same arithmetic in another order: equal up to float rounding, which 50 noisy steps may grow in a few pixels
                x_lib = sample(pipe, cond, 'ddpm', 50, 3., ramp=False, seed=0)
                print(f'against sampling.sample: max |diff| {(x - x_lib).abs().max():.2e}, mean {(x - x_lib).abs().mean():.2e}')
                assert (x - x_lib).abs().mean() < 1e-4, 'the first rule must reproduce sampling.sample'
            keep('screen', dict(rule=name, seeds=[0], seconds=round(time.time() - t0)) | score(x, cond, refs, judges))
    else:
        for name in a.confirm:
            for f in EVAL_FILES:
                cond, refs = encode(read_labels(DATA_DIR / f)), reference(DATA_DIR / f, 1, pipe.size)[0]
                per_seed = [score(run(pipe, cond, s, **RULES[name]), cond, refs, judges) for s in range(5)]
                mean = lambda k: round(sum(r[k] for r in per_seed) / 5, 4)
                std = lambda k: round(torch.tensor([r[k] for r in per_seed]).std().item(), 4)
                keep('confirm', dict(rule=name, file=f, seeds=list(range(5)), **{k: mean(k) for k in per_seed[0]}, **{f'{k}_std': std(k) for k in ('evaluator', 'judge2')}))
