"""Where does the grain of the shipped checkpoint's samples come from? Sampling levers against grain and floor colour.

Samples test.json + heldout.json (96 lists) from data/weights/cpu.pt at sampling seed 0 with each setting and prints,
per setting, the grain and floor-colour ratios against renders of the same lists (evaluation.cleanliness, 1 = as
clean as a render) and the evaluator's accuracy. The guidance variants replace sampling.cfg_model for the run:
an interval of noise levels (guidance only while t is in [lo, hi], Kynkaanniemi et al. 2024), guidance rescale
(Lin et al. 2024; phi mixes the rescaled and the plain guided output), a low-pass guidance direction (the
difference out_c - out_u blurred with a Gaussian of sigma pixels), that direction with its per-image mean removed, and
adaptive projected guidance (APG, Sadat et al. 2024: in the space of predicted clean images, the guidance direction
without its component along the conditional prediction, which is what oversaturates at high w; eta keeps that much
of the component, beta is its negative momentum across steps).
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/grain_sources.py [--only APG]   (about 25 minutes on one EPYC core;
--only runs the settings whose description contains APG)
"""
import json, sys, time, torch
from torchvision.transforms.v2.functional import gaussian_blur
import ddpm_lab.sampling as S
from ddpm_lab.data import DATA_DIR, encode, read_labels
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.evaluation import reference, cleanliness, predict, course_accuracy, load_evaluator

def guided(model, w, lo=0., hi=1., phi=0., sigma=0., demean=False):
    "Classifier-free guidance with the variants above (all off: the library's cfg_model)."
    def net(x, t, c):
        out_c, out_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)])).chunk(2)
        if not lo <= t[:1].item() <= hi: return out_c
        d = out_c - out_u
        if demean: d = d - d.mean((2, 3), keepdim=True)
        if sigma: d = gaussian_blur(d, 2 * round(2 * sigma) + 1, sigma)
        g = out_c + w * d
        if phi:
            std = lambda v: v.flatten(1).std(1).view(-1, 1, 1, 1)
            g = phi * g * std(out_c) / std(g) + (1 - phi) * g
        return g
    return net

def projected(model, sched, w, eta=0., beta=0.):
    "APG: guidance on the x0 predictions with the direction's component along the conditional x0 scaled by eta (1 = plain guidance)."
    state = {}
    def net(x, t, c):
        out_c, out_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)])).chunk(2)
        ab = sched.at(sched.alpha_bar, (t[:1] * sched.T).round().long() - 1, x).float()
        a, s = ab.sqrt(), (1 - ab).sqrt()                           # v-prediction: x0 = a x - s v
        x0_c, x0_u = a * x - s * out_c, a * x - s * out_u
        d = x0_c - x0_u
        if beta: d = d + beta * state['m'] if state.get('m') is not None and state['m'].shape == d.shape else d; state['m'] = d
        unit = x0_c / x0_c.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        along = (d * unit).flatten(1).sum(1).view(-1, 1, 1, 1) * unit
        return (a * x - (x0_c + w * (d - along + eta * along))) / s
    return net

SETTINGS = [dict(sampler='ddpm', steps=50, w=3.), dict(sampler='ddpm', steps=50, w=1.), dict(sampler='ddpm', steps=50, w=0.),
            dict(sampler='ddim', steps=50, w=3.), dict(sampler='dpm++', steps=20, w=3.), dict(sampler='ddpm', steps=200, w=3.),
            dict(sampler='ddpm', steps=50, w=3., hi=0.6), dict(sampler='ddpm', steps=50, w=3., lo=0.2), dict(sampler='ddpm', steps=50, w=3., lo=0.4),
            dict(sampler='ddpm', steps=50, w=3., phi=0.7), dict(sampler='ddpm', steps=50, w=3., phi=1.),
            dict(sampler='ddpm', steps=50, w=3., sigma=1.), dict(sampler='ddpm', steps=50, w=3., demean=True),
            dict(sampler='ddpm', steps=50, w=3., sigma=1., demean=True),
            dict(sampler='ddpm', steps=50, w=3., apg=1.), dict(sampler='ddpm', steps=50, w=3., apg=0.),
            dict(sampler='ddpm', steps=50, w=5., apg=0.), dict(sampler='ddpm', steps=50, w=5., apg=0., beta=-0.5)]

PLAIN = S.cfg_model   # the library's guidance

if __name__ == '__main__':
    only_apg = sys.argv[1:] == ['--only', 'APG']
    pipe = load_pipeline(DATA_DIR / 'weights' / 'cpu.pt', device='cpu')
    cond = encode(read_labels(DATA_DIR / 'test.json') + read_labels(DATA_DIR / 'heldout.json'))
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in ('test.json', 'heldout.json')])
    ev = load_evaluator()
    for s in SETTINGS:
        if only_apg and 'apg' not in s: continue
        sampling = {k: s[k] for k in ('sampler', 'steps', 'w')}
        variant = {k: v for k, v in s.items() if k not in sampling}
        if 'apg' in variant: S.cfg_model = lambda m, w: projected(m, pipe.schedule, w, variant['apg'], variant.get('beta', 0.))
        else: S.cfg_model = (lambda m, w: guided(m, w, **variant)) if variant else PLAIN
        t0 = time.time()
        x = S.sample(pipe, cond, **sampling, seed=0)
        c = cleanliness(x, refs)
        print(json.dumps(s | dict(grain=round(c['grain'], 3), saturation=round(c['saturation'], 3),
                                  accuracy=round(course_accuracy(predict(ev, x), cond), 4), seconds=round(time.time() - t0))), flush=True)
