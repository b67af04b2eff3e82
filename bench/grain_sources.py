"""Where does the grain of the shipped checkpoint's samples come from? Sampling levers against grain and floor colour.

Samples test.json + heldout.json (96 lists) from a checkpoint (default: the shipped data/weights/cpu.pt) at sampling
seed 0 with each setting and records, per setting, the grain and floor-colour ratios against renders of the same lists
(evaluation.cleanliness, 1 = as clean as a render) and the accuracy under both judges (the evaluator and the second
judge). Besides samplers, step counts, guidance weights and the library's guidance interval (`sample(...,
interval=...)`), the guidance variants replace sampling.cfg_model for the run: guidance rescale (Lin et al. 2024; phi
mixes the rescaled and the plain guided output), a low-pass guidance direction (the difference out_c - out_u blurred
with a Gaussian of sigma pixels, at every step or only while t <= blur_below), that direction with its per-image mean
removed, that direction soft-thresholded (each value moved towards 0 by `shrink` times the image's median absolute
value, and set to 0 below it), and adaptive projected guidance (APG, Sadat et al. 2024: in the space of predicted
clean images, the guidance direction without its component along the conditional prediction, which is what
oversaturates at high w; eta keeps that much of the component, beta is its negative momentum across steps).
Every row is written to --json (results/grain_sources.json, whose table docs/results.md must match:
tests/test_readme.py) as soon as it is done; a rerun on the same checkpoint skips the rows the file has, so the script
can be stopped and resumed.
--confirm LABEL ... scores settings of the table over sampling seeds 0-4 on our own lists (heldout.json + novel.json)
under both judges, as bench/choose_sampler.py scores the default's candidates (score: the lower judge, mean of the two
files), into the same file's 'confirm' part; each seed's evaluation is saved under --runs and reused.
Usage: PYTHONPATH=. python bench/grain_sources.py [CKPT] [--json FILE] [--confirm LABEL ...] [--runs DIR]
(the screen: about 27 minutes at 2 threads of an AVX2 EPYC; a confirmed setting: about 6-8)
"""
import argparse, json, time, torch
from pathlib import Path
from torchvision.transforms.v2.functional import gaussian_blur
import ddpm_lab.sampling as S
from ddpm_lab.ablations import machine
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, encode, file_md5, read_labels
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.evaluation import JUDGE2_PATH, reference, cleanliness, predict, course_accuracy, load_evaluator, evaluate_seeds
from choose_sampler import FILES as OWN_FILES, judged_cells, score   # our own lists and the rule the default is chosen by

FILES = ('test.json', 'heldout.json')

def guided(model, w, phi=0., sigma=0., demean=False, shrink=0., blur_below=1.):
    "Classifier-free guidance at every step with the variants above (all off: the library's cfg_model)."
    def net(x, t, c):
        out_c, out_u = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)])).chunk(2)
        d = out_c - out_u
        if demean: d = d - d.mean((2, 3), keepdim=True)
        if sigma and t[0].item() <= blur_below: d = gaussian_blur(d, 2 * round(2 * sigma) + 1, sigma)
        if shrink:   # soft threshold at `shrink` times the image's median |d|: small disagreements are not amplified
            tau = shrink * d.abs().flatten(1).median(1).values.view(-1, 1, 1, 1)
            d = d.sign() * (d.abs() - tau).clamp_min(0)
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

# (row label, sample() arguments, guidance variant: none, dict(phi=, sigma=, blur_below=, demean=, shrink=) for guided, or dict(apg=eta, beta=) for projected)
SETTINGS = [('DDPM 50, w = 3 (the default)', dict(sampler='ddpm', steps=50, w=3.), None),
            ('DDPM 50, w = 1', dict(sampler='ddpm', steps=50, w=1.), None),
            ('DDPM 50, w = 0 (no guidance)', dict(sampler='ddpm', steps=50, w=0.), None),
            ('DDIM 50, w = 3', dict(sampler='ddim', steps=50, w=3.), None),
            ('DPM-Solver++ 20, w = 3', dict(sampler='dpm++', steps=20, w=3.), None),
            ('DDPM 200, w = 3', dict(sampler='ddpm', steps=200, w=3.), None),
            ('DDPM 50, w = 3 only while t <= 0.6', dict(sampler='ddpm', steps=50, w=3., interval=(0., 0.6)), None),
            ('DDPM 50, w = 3 only while t >= 0.2', dict(sampler='ddpm', steps=50, w=3., interval=(0.2, 1.)), None),
            ('DDPM 50, w = 3 only while t >= 0.4', dict(sampler='ddpm', steps=50, w=3., interval=(0.4, 1.)), None),
            ('DDPM 50, w = 3, guidance rescale phi = 0.7', dict(sampler='ddpm', steps=50, w=3.), dict(phi=0.7)),
            ('DDPM 50, w = 3, guidance rescale phi = 1', dict(sampler='ddpm', steps=50, w=3.), dict(phi=1.)),
            ('DDPM 50, w = 3, guidance direction blurred (sigma 1 px)', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=1.)),
            ('DDPM 50, w = 3, guidance direction without its mean', dict(sampler='ddpm', steps=50, w=3.), dict(demean=True)),
            ('DDPM 50, w = 3, both', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=1., demean=True)),
            ('DDPM 50, w = 3, APG with eta = 1 (plain guidance in x0 space)', dict(sampler='ddpm', steps=50, w=3.), dict(apg=1.)),
            ('DDPM 50, w = 3, adaptive projected guidance (APG, eta = 0)', dict(sampler='ddpm', steps=50, w=3.), dict(apg=0.)),
            ('DDPM 50, w = 5, APG', dict(sampler='ddpm', steps=50, w=5.), dict(apg=0.)),
            ('DDPM 50, w = 5, APG with momentum -0.5', dict(sampler='ddpm', steps=50, w=5.), dict(apg=0., beta=-0.5)),
            ('DDPM 50, w = 3 only while t < 0.2', dict(sampler='ddpm', steps=50, w=3., interval=(0., 0.19)), None),   # four windows that
            ('DDPM 50, w = 3 only while 0.2 <= t < 0.4', dict(sampler='ddpm', steps=50, w=3., interval=(0.2, 0.39)), None),   # split the 50
            ('DDPM 50, w = 3 only while 0.4 <= t < 0.6', dict(sampler='ddpm', steps=50, w=3., interval=(0.4, 0.59)), None),   # steps (t = 0.02,
            ('DDPM 50, w = 3 only while t >= 0.6', dict(sampler='ddpm', steps=50, w=3., interval=(0.6, 1.)), None),           # 0.04, ..., 1)
            ('DDPM 50, w = 3, guidance direction soft-thresholded at its median', dict(sampler='ddpm', steps=50, w=3.), dict(shrink=1.)),
            ('DDPM 50, w = 3, guidance direction soft-thresholded at twice its median', dict(sampler='ddpm', steps=50, w=3.), dict(shrink=2.)),
            ('DDPM 50, w = 3, guidance direction blurred (sigma 1 px) while t < 0.2', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=1., blur_below=0.19)),
            ('DDPM 50, w = 3, guidance direction blurred (sigma 2 px) while t < 0.2', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=2., blur_below=0.19)),
            ('DDPM 50, w = 3, guidance direction blurred (sigma 1 px) while t < 0.4', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=1., blur_below=0.39)),
            ('DDPM 50, w = 3, guidance direction blurred (sigma 1 px) while t < 0.2 and soft-thresholded at its median', dict(sampler='ddpm', steps=50, w=3.), dict(sigma=1., blur_below=0.19, shrink=1.))]

PLAIN = S.cfg_model   # the library's guidance

def guidance(pipe, variant):
    "The cfg_model to sample with: the library's, or one of the variants (same call signature)."
    if variant is None: return PLAIN
    if 'apg' in variant: return lambda m, w, interval, ramp: projected(m, pipe.schedule, w, variant['apg'], variant.get('beta', 0.))
    return lambda m, w, interval, ramp: guided(m, w, **variant)

def confirmed(pipe, ckpt, label, seeds, out):
    "evaluate_seeds of one setting of the table on our own lists: its summary and score (the lower judge, mean of the two files)."
    i, sampling, variant = next((i, smp, var) for i, (lab, smp, var) in enumerate(SETTINGS) if lab == label)
    def make(cond, seed):
        S.cfg_model = guidance(pipe, variant)
        try: return S.sample(pipe, cond.cpu(), **sampling, ramp=False, seed=seed)
        finally: S.cfg_model = PLAIN
    make.settings = dict(sampling, ramp=False, eta=0., interval=list(sampling.get('interval', S.FULL)), variant=variant)
    make.name = f'{Path(str(ckpt)).name}: {label}'
    summ = evaluate_seeds(make, seeds, out=Path(out) / f'setting{i}', labels_files=[DATA_DIR / f for f in OWN_FILES])
    return dict(score=score(summ), summary=summ)

def confirm_lines(res):
    "The markdown table of the confirmed settings: each judge's mean ± std over seeds per file, cleanliness and the score."
    return (['| sampling | heldout: evaluator | judge2 | novel: evaluator | judge2 | grain | floor colour | score |', '|---|---|---|---|---|---|---|---|'] +
            [f"| {label} | {judged_cells(c['summary'])} | {c['score']:.3f} |" for label, c in res['confirm'].items()])

def table_lines(res):
    "The markdown table of a results file, one line a setting in the bench's order."
    return (['| sampling | grain | floor colour | evaluator | judge2 |', '|---|---|---|---|---|'] +
            [f"| {r['label']} | {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |" for r in res['rows']])

def main():
    P = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    P.add_argument('ckpt', nargs='?', default=DATA_DIR / 'weights' / 'cpu.pt')
    P.add_argument('--json', type=Path, default=RESULTS_DIR / 'grain_sources.json', help='results file (rows already in it for this checkpoint are kept)')
    P.add_argument('--confirm', nargs='+', default=[], choices=[label for label, *_ in SETTINGS], metavar='LABEL', help='settings to score over sampling seeds 0-4 on our own lists')
    P.add_argument('--runs', default='runs/grain_sources', help='folder of the confirmed settings\' evaluations')
    a = P.parse_args()
    md5 = file_md5(a.ckpt)
    old = json.loads(a.json.read_text()) if a.json.exists() else {}
    res = dict(ckpt=Path(str(a.ckpt)).name, ckpt_md5=md5, files=FILES, seed=0, machine=machine(),
               rows=old['rows'] if old.get('ckpt_md5') == md5 else [], confirm=old.get('confirm', {}) if old.get('ckpt_md5') == md5 else {})
    pipe = load_pipeline(a.ckpt, device='cpu')
    cond = encode([l for f in FILES for l in read_labels(DATA_DIR / f)])
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in FILES])
    judges = dict(evaluator=load_evaluator(device='cpu'), judge2=load_evaluator(JUDGE2_PATH, device='cpu'))
    done = {r['label'] for r in res['rows']}
    for label, sampling, variant in SETTINGS:
        if label in done: continue
        S.cfg_model = guidance(pipe, variant)
        t0 = time.time()
        x = S.sample(pipe, cond, **sampling, ramp=False, seed=0)
        secs, c = time.time() - t0, cleanliness(x, refs)
        res['rows'].append(dict(label=label, **sampling, variant=variant, grain=round(c['grain'], 3), floor_colour=round(c['saturation'], 3),
                                **{j: round(course_accuracy(predict(m, x), cond), 4) for j, m in judges.items()}, seconds=round(secs)))
        print(json.dumps(res['rows'][-1]), flush=True)
        atomic_write(a.json, lambda tmp: tmp.write_text(json.dumps(res, indent=1) + '\n'))
    S.cfg_model = PLAIN
    print('\n'.join(table_lines(res)))
    for label in a.confirm:
        res['confirm'][label] = confirmed(pipe, a.ckpt, label, [0, 1, 2, 3, 4], a.runs)
        atomic_write(a.json, lambda tmp: tmp.write_text(json.dumps(res, indent=1) + '\n'))
    if res['confirm']: print('\n'.join(confirm_lines(res)))

if __name__ == '__main__':
    main()
