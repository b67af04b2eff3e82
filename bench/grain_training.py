"""Does the grain fade with training, and does the EMA add or take it away? (issue 24, item 3)

Trains the `cpu` preset from scratch with training seed 1 (the shipped checkpoint is seed 42) and keeps a copy of
the checkpoint every 1000 steps. At each copy it samples test.json + heldout.json (96 lists, DDPM 50, w = 3,
sampling seed 0) once with the EMA weights and once with the raw weights, and records grain and floor colour
(evaluation.cleanliness: 1 = as clean as renders of the same lists at 32x32) beside the accuracy of both judges.
The finished run is then scored like every recipe (evaluate_seeds: sampling seeds 0-4, four files, both judges, in
RUNS/eval), which makes it the `cpu` preset's second training seed in the recipe log (bench/recipe_log.py).
Resumable: training continues from its checkpoint and measured copies are read back from RUNS/measured.jsonl.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/grain_training.py [--runs runs/grain_training]
       -> prints one JSON line per measurement and writes results/grain_training.json
"""
import argparse, json, platform, shutil, time
from pathlib import Path
import torch
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, encode, read_labels, atomic_write
from ddpm_lab.train import get_config, train
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.sampling import sample
from ddpm_lab.evaluation import reference, cleanliness, predict, course_accuracy, load_evaluator, evaluate_seeds, JUDGE2_PATH

EVERY, SEED = 1000, 1
FILES = ('test.json', 'heldout.json')


def measure(ckpt, step, ema, cond, refs, judges):
    "Grain, floor colour and both judges' accuracy of one copy's samples."
    t0 = time.time()
    x = sample(load_pipeline(ckpt, ema=ema, device='cpu'), cond, sampler='ddpm', steps=50, w=3., seed=0)
    c = cleanliness(x, refs)
    acc = {name: round(course_accuracy(predict(j, x), cond), 4) for name, j in judges.items()}
    return dict(step=step, weights='ema' if ema else 'raw', grain=round(c['grain'], 3), floor_colour=round(c['saturation'], 3),
                **acc, seconds=round(time.time() - t0))


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--runs', default='runs/grain_training')
    runs = Path(P.parse_args().runs); runs.mkdir(parents=True, exist_ok=True)
    log = runs / 'measured.jsonl'
    done = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
    cfg = get_config('cpu', seed=SEED)
    cond = encode(sum((read_labels(DATA_DIR / f) for f in FILES), []))
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in FILES])
    judges = dict(evaluator=load_evaluator(), judge2=load_evaluator(JUDGE2_PATH))
    t_train = 0.
    for step in range(EVERY, cfg['steps'] + 1, EVERY):
        copy = runs / f'step{step}.pt'
        if not copy.exists():
            t0 = time.time()
            train(cfg, out=runs / 'run', resume=(runs / 'run' / 'ckpt.pt').exists(), until=step)
            t_train += time.time() - t0
            shutil.copyfile(runs / 'run' / 'ckpt.pt', copy)
        for ema in (True, False):
            if any(r['step'] == step and r['weights'] == ('ema' if ema else 'raw') for r in done): continue
            r = measure(copy, step, ema, cond, refs, judges); done.append(r); print(json.dumps(r), flush=True)
            with open(log, 'a') as f: f.write(json.dumps(r) + '\n')
    meta = dict(machine=f'{platform.machine()} CPU, torch {torch.__version__}', preset='cpu', training_seed=SEED,
                sampling='DDPM 50, w = 3, sampling seed 0', lists=' + '.join(FILES))
    if not (runs / 'eval' / 'summary.json').is_file(): evaluate_seeds(runs / 'run' / 'ckpt.pt', out=runs / 'eval')
    atomic_write(RESULTS_DIR / 'grain_training.json', lambda tmp: tmp.write_text(json.dumps(dict(meta=meta, rows=done), indent=1)))
    print('| step | images seen | weights | grain | floor colour | evaluator | judge2 |\n|---|---|---|---|---|---|---|')
    for r in done:
        print(f"| {r['step']} | {r['step'] * cfg['batch_size'] // 1000}k | {r['weights']} | {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |")


if __name__ == '__main__':
    main()
