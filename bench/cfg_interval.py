"""Guidance on an interval of times (Kynkaanniemi et al. 2024) against the grain, on the shipped checkpoint.

bench/grain_sources.py shows that guidance makes the samples' grain and coloured floor, and that guiding only above a
time lo (t = 1 is pure noise) cleans them but loses accuracy at w = 3. Here the lost accuracy is bought back with a
larger w on the shorter interval: sampling.sample(..., w, interval=(lo, hi)).
  screen (default): every SETTINGS row samples our own 128 lists (data/heldout.json + data/novel.json: recipes and
      samplers are chosen on these, not on the course's files) with DDPM 50 at sampling seed 0 from data/weights/cpu.pt;
      grain and floor colour against renders of the same lists (1 = as clean as a render), both judges' accuracy
      (and the seconds, in the results file only). The first row is the library's default (w = 3 at every step),
      the baseline of the same run.
  --confirm W LO [W LO ...]: evaluate_seeds over sampling seeds 0-4 on the four evaluation files under both judges
      (saved in --runs/<tag> and reused), for each (w, lo) with hi = 1, and the default beside them.
Both write their part of results/cfg_interval.json and print a markdown table.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/cfg_interval.py [--confirm 6 0.4 ...] [--runs runs/cfg_interval]
"""
import argparse, json, platform, time, torch
from pathlib import Path
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, encode, read_labels
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.sampling import sample, sampling_tag
from ddpm_lab.evaluation import reference, cleanliness, predict, course_accuracy, load_evaluator, evaluate_seeds, JUDGE2_PATH

CKPT, LISTS, SEEDS = DATA_DIR / 'weights' / 'cpu.pt', ('heldout.json', 'novel.json'), [0, 1, 2, 3, 4]
SETTINGS = [(3., 0., 1.), (3., 0.2, 1.), (4., 0.2, 1.), (4., 0.3, 1.), (5., 0.3, 1.), (5., 0.4, 1.), (6., 0.4, 1.),
            (8., 0.4, 1.), (6., 0.5, 1.), (8., 0.5, 1.), (10., 0.6, 1.), (5., 0.3, 0.9)]   # (w, lo, hi)
PATH = RESULTS_DIR / 'cfg_interval.json'


def screen():
    "Each setting on our 128 lists at sampling seed 0: grain, floor colour, both judges, seconds."
    pipe = load_pipeline(CKPT, device='cpu')
    cond = encode(sum([read_labels(DATA_DIR / f) for f in LISTS], []))
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in LISTS])
    judges = dict(evaluator=load_evaluator(), judge2=load_evaluator(JUDGE2_PATH))
    rows = []
    for w, lo, hi in SETTINGS:
        t0 = time.time()
        x = sample(pipe, cond, 'ddpm', 50, w, interval=(lo, hi), seed=0)
        c, secs = cleanliness(x, refs), time.time() - t0
        rows.append(dict(w=w, interval=[lo, hi], grain=c['grain'], floor_colour=c['saturation'], seconds=secs,
                         **{j: course_accuracy(predict(m, x), cond) for j, m in judges.items()}))
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)
    return dict(lists='heldout.json + novel.json (128 lists)', sampler='DDPM 50', seed=0, rows=rows)


def confirm(pairs, runs):
    "The default and each (w, lo) over sampling seeds 0-4 on the four evaluation files, both judges."
    out = []
    for w, lo in [(3., 0.)] + pairs:
        s = evaluate_seeds(CKPT, SEEDS, out=Path(runs) / sampling_tag('ddpm', 50, w, 'all', interval=(lo, 1.)), sampler='ddpm', steps=50, w=w, interval=(lo, 1.))
        out.append(dict(w=w, interval=[lo, 1.], files={f: dict(evaluator=v['accuracy']['mean'], evaluator_std=v['accuracy']['std'],
                    judge2=v['judge2']['mean'], judge2_std=v['judge2']['std'], grain=v['grain']['mean'], floor_colour=v['saturation']['mean'])
                    for f, v in s['files'].items()}))
    return dict(seeds=SEEDS, sampler='DDPM 50', rows=out)


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--confirm', type=float, nargs='+', metavar='W LO', help='(w, lo) pairs to score over seeds 0-4 on the four files')
    P.add_argument('--runs', default='runs/cfg_interval')
    a = P.parse_args()
    res = json.loads(PATH.read_text()) if PATH.is_file() else {}
    if a.confirm:
        if len(a.confirm) % 2: P.error('--confirm takes pairs: W LO [W LO ...]')
        res['confirm'] = confirm([tuple(a.confirm[i:i + 2]) for i in range(0, len(a.confirm), 2)], a.runs)
        print('| w | guided while t in | file | evaluator | judge2 | grain | floor colour |\n|---|---|---|---|---|---|---|')
        for r in res['confirm']['rows']:
            for f, v in r['files'].items():
                print(f"| {r['w']:g} | [{r['interval'][0]:g}, {r['interval'][1]:g}] | {f} | {v['evaluator']:.3f} ± {v['evaluator_std']:.3f} | {v['judge2']:.3f} ± {v['judge2_std']:.3f} | {v['grain']:.2f} | {v['floor_colour']:.2f} |")
    else:
        res['screen'] = screen()
        print('| w | guided while t in | grain | floor colour | evaluator | judge2 |\n|---|---|---|---|---|---|')
        for r in res['screen']['rows']:
            print(f"| {r['w']:g} | [{r['interval'][0]:g}, {r['interval'][1]:g}] | {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |")
    res['meta'] = dict(machine=f'{platform.machine()} CPU, torch {torch.__version__}', model=str(CKPT.relative_to(DATA_DIR.parent)))
    atomic_write(PATH, lambda tmp: tmp.write_text(json.dumps(res, indent=1)))


if __name__ == '__main__':
    main()
