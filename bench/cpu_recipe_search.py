"""Search the `cpu_v1` recipe (the `cpu` preset of the time) on a GPU at the budget a 2-core CPU reaches in its 28 minutes.

A variant that is slower per image on the CPU gets proportionally fewer steps: steps = 3200 * (its CPU img/s /
the preset's CPU img/s) * 64 / batch. The CPU img/s below were measured on the 2-core development machine with
`python bench/cpu_recipe_search.py --measure` (2 threads, bf16). Each variant then trains on the GPU (several
processes share it) and is scored by the shipped evaluator: DDPM 50 at w = 2 with sampling seeds 0-2 (the best
sampler of the shipped checkpoint), plus DDIM 50 at w = 0.5 and DDPM 50 at w = 1 and 4 with seed 0.
Usage: python bench/cpu_recipe_search.py [--only base lr2e-3 ...] [--parallel 15] [--out runs/recipe_search]
       python bench/cpu_recipe_search.py --measure        (CPU img/s of every variant on this machine)
"""
import argparse, json, multiprocessing as mp, sys, time, traceback
from pathlib import Path
from ddpm_lab.train import get_config

BASE_PRESET = 'cpu_v1'   # the recipe the variants change
BASE = get_config(BASE_PRESET)

VARIANTS = {   # name: (overrides of the cpu_v1 preset, CPU img/s of the variant, 2 threads)
    'base': ({}, 120.4),
    'lr2e-3': (dict(lr=2e-3), 120.4),
    'lr5e-4': (dict(lr=5e-4), 120.4),
    'p_uncond0.2': (dict(p_uncond=0.2), 120.4),
    'eps': (dict(pred='eps', min_snr=None), 120.4),
    'batch128': (dict(batch_size=128), 123.8),
    'layers1': ({'model.layers': 1}, 176.3),
    'no-attn': ({'model.attn': [False, False, False]}, 149.4),
    'attn-16-8': ({'model.attn': [False, True, True]}, 95.6),
    'ch48-192': ({'model.channels': [48, 96, 192], 'model.groups': 16}, 72.5),
    'ch64-256': ({'model.channels': [64, 128, 256]}, 46.4),
    'levels4': ({'model.channels': [32, 64, 128, 256], 'model.attn': [False, False, True, True]}, 90.2),
}
SAMPLINGS = [('ddpm', 50, 2.0, s) for s in (0, 1, 2)] + [('ddim', 50, 0.5, 0), ('ddpm', 50, 1.0, 0), ('ddpm', 50, 4.0, 0)]


def batch_size(overrides): return overrides.get('batch_size', BASE['batch_size'])

def budget_steps(overrides, cpu_img_s):
    "Steps that give the variant the images the CPU trains in the preset's time."
    return round(BASE['steps'] * cpu_img_s / VARIANTS['base'][1] * BASE['batch_size'] / batch_size(overrides))


def measure(names):
    "Print the training img/s of the named variants on this CPU (2 threads)."
    import torch
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train import images_per_second
    torch.set_num_threads(2)
    for name in names:
        cfg = get_config(BASE_PRESET, **VARIANTS[name][0])
        print(f"{name:24s} {images_per_second(cfg, cfg['batch_size'], 6)[0]:7.1f} img/s", flush=True)


def run(name, out):
    "Train one variant on the GPU at its CPU budget and score it; returns a record."
    import torch
    torch.set_num_threads(1)
    from ddpm_lab.train import train
    from ddpm_lab.evaluation import evaluate, load_evaluator
    ov, ips = VARIANTS[name]
    rec, out = dict(name=name, overrides=ov, steps=budget_steps(ov, ips)), Path(out)/name
    try:
        cfg = get_config(BASE_PRESET, **ov, steps=rec['steps'], sample_every=0, ckpt_every=10**9)
        t0 = time.time()
        res = train(cfg, out=out, resume=(out/'ckpt.pt').exists())
        rec.update(train_s=round(time.time() - t0), final_loss=sum(res['losses'][-100:]) / 100, evals=[])
        dev = 'cuda' if torch.cuda.is_available() else 'cpu'
        ev = load_evaluator(device=dev)
        for sampler, steps, w, seed in SAMPLINGS:
            r = evaluate(res['ckpt'], ev, sampler=sampler, steps=steps, w=w, seed=seed, n_renders=1, device=dev)['results']
            rec['evals'].append(dict(sampler=sampler, steps=steps, w=w, seed=seed, test=r[0]['accuracy'], new_test=r[1]['accuracy']))
    except Exception: rec['error'] = traceback.format_exc()
    return rec


def line(rec):
    "One table row: the mean of the DDPM 50, w = 2 scores over seeds, then the other samplers."
    if 'error' in rec: return f"| {rec['name']} | error: {rec['error'].splitlines()[-1]} |"
    main = [e for e in rec['evals'] if (e['sampler'], e['w']) == ('ddpm', 2.0)]
    mean = lambda k: sum(e[k] for e in main) / len(main)
    rest = ' '.join(f"{e['sampler']} w{e['w']:g}: {e['test']:.3f}/{e['new_test']:.3f}" for e in rec['evals'] if e not in main)
    return f"| {rec['name']} | {rec['steps']} | {rec['steps'] * batch_size(rec['overrides']) / 1e3:.0f}k | {mean('test'):.3f} / {mean('new_test'):.3f} | {rest} |"


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--only', nargs='+', choices=list(VARIANTS), help='variants to run (default: all)')
    P.add_argument('--parallel', type=int, default=15, help='training processes sharing the GPU')
    P.add_argument('--out', default='runs/recipe_search')
    P.add_argument('--measure', action='store_true', help='only measure the CPU img/s of the variants')
    a = P.parse_args()
    names, recs = a.only or list(VARIANTS), []
    if a.measure: return measure(names)
    print('| variant | steps | images | DDPM 50, w = 2 (seeds 0-2): test / new_test | seed 0, other samplers |\n|---|---|---|---|---|', flush=True)
    with mp.get_context('spawn').Pool(a.parallel, maxtasksperchild=1) as pool:
        for rec in pool.starmap(run, [(n, a.out) for n in names]):
            recs.append(rec); print(line(rec), flush=True)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out)/'results.json').write_text(json.dumps(recs, indent=1))


if __name__ == '__main__': main()
