"""Fresh renders instead of the fixed 18009 scenes (issue 22.3): the `cpu` preset on a pool of K renders of train.json.

The renderer draws a new layout of the same label lists for every seed (render.synthetic_iclevr), so K seeds give
K x 18009 scenes of train.json's label distribution. The `cpu` preset's 4000 steps of 64 see 256k images: 14 passes
over one render, 3.6 over a pool of four. The pool is one folder of links to the cached renders plus its train.json,
which `ddpm-lab train --data` reads like any image folder; the run then trains the unchanged preset on it and is
scored like every recipe (evaluate_seeds: sampling seeds 0-4, four files, both judges, in RUNS/eval) for the recipe
log (bench/recipe_log.py). Resumable: renders are cached, training continues from its checkpoint.
Usage: PYTHONPATH=. python bench/fresh_renders.py [--renders 4] [--runs runs/fresh_renders]
"""
import argparse, json, os
from pathlib import Path
from ddpm_lab.data import read_labels, atomic_write
from ddpm_lab.render import synthetic_iclevr
from ddpm_lab.train import get_config, train
from ddpm_lab.sampling import SampleGrid
from ddpm_lab.evaluation import evaluate_seeds


def render_pool(k, out, size=32):
    "A folder linking the renders of train.json with seeds 0..k-1 (names prefixed s<seed>_), with its train.json."
    out.mkdir(parents=True, exist_ok=True)
    labels = {}
    for seed in range(k):
        src = synthetic_iclevr(size=size, seed=seed)
        for name, objects in read_labels(src / 'labels.json').items():
            link = out / f's{seed}_{name}'
            if not link.exists(): os.symlink(src / name, link)
            labels[link.name] = objects
    atomic_write(out / 'train.json', lambda tmp: tmp.write_text(json.dumps(labels)))   # a half-written list would train on part of the pool
    return out


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--renders', type=int, default=4)
    P.add_argument('--runs', default='runs/fresh_renders')
    a = P.parse_args()
    runs = Path(a.runs)
    cfg = get_config('cpu')
    pool = render_pool(a.renders, runs / f'pool{a.renders}', cfg['size'])
    run = runs / 'run'   # as `ddpm-lab train --preset cpu --data POOL --resume` runs it, sample grids included
    train(cfg, data=pool, out=run, resume=(run / 'ckpt.pt').exists(), callbacks=[SampleGrid()])
    if not (runs / 'eval' / 'summary.json').is_file(): evaluate_seeds(run / 'ckpt.pt', out=runs / 'eval')
    print(json.dumps(json.loads((runs / 'eval' / 'summary.json').read_text())['files'], indent=1))


if __name__ == '__main__':
    main()
