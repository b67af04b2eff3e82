"""Accuracy of the fast samplers against the baseline, 1000-step DDPM, on one checkpoint over several seeds.

Target (issue 3): DDIM or DPM-Solver++ with at most 50 steps comes within 0.02 of 1000-step DDPM accuracy.
`ddpm 50` is ancestral sampling over 50 of the 1000 levels, which is DDIM with eta = 1 (the same posterior draw);
`dpm++ sde` is DPM-Solver++ 2M with eta = 1, the SDE solver: the same posterior draw with a second-order x0.
One seed scores 32 images per labels file, so a single seed's accuracy moves by a few points with the noise
alone: compare means over seeds. Each (sampler, steps, seed) evaluation is saved under --out and reused by a
rerun, so the script can be stopped and resumed; --seeds can differ per sampler (the baseline is the slow one).
Usage: python bench/bench_sampler_accuracy.py [CKPT] [--seeds 3] [--baseline-seeds 2] [--w 0.5]
"""
import argparse, json
from pathlib import Path
from statistics import mean, stdev
from ddpm_lab.data import DATA_DIR
from ddpm_lab.evaluation import COURSE_FILES, evaluate
from ddpm_lab.sampling import sampling_tag
from ddpm_lab.pipeline import load_checkpoint

CANDIDATES = [('ddim', 50, 0), ('ddim', 25, 0), ('dpm++', 50, 0), ('dpm++', 20, 0), ('ddpm', 50, 0), ('dpm++', 50, 1), ('dpm++', 25, 1)]   # (sampler, steps, eta)


def scores(ckpt, sampler, steps, eta, w, seed, out):
    "Saved or fresh evaluation of one sampling: {'test': acc, 'new_test': acc, 'seconds': sampling time}."
    path = Path(out) / sampling_tag(sampler, steps, w, seed, eta) / 'results.json'
    res = json.loads(path.read_text()) if path.is_file() else evaluate(ckpt, labels_files=[DATA_DIR / f for f in COURSE_FILES], sampler=sampler, steps=steps, w=w, eta=eta, seed=seed, out=path.parent)
    return {Path(r['file']).stem: r['accuracy'] for r in res['results']} | dict(seconds=sum(r['sample_seconds'] for r in res['results']))


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('ckpt', nargs='?', default=DATA_DIR / 'weights' / 'cpu.pt', help='checkpoint (default: the shipped cpu.pt)')
    P.add_argument('--seeds', type=int, default=3, help='sampling seeds 0..N-1 for DDIM and DPM-Solver++')
    P.add_argument('--baseline-seeds', type=int, default=2, help='sampling seeds for the 1000-step DDPM baseline')
    P.add_argument('--w', type=float, default=0.5, help='guidance weight')
    P.add_argument('--out', default='runs/bench_sampler_accuracy', help='folder of the saved evaluations')
    a = P.parse_args()
    T = load_checkpoint(a.ckpt)['config']['T']
    rows = [(f'baseline: ddpm {T}', 'ddpm', T, 0, a.baseline_seeds)] + [(f'{s}{" sde" if e else ""} {n}', s, n, e, a.seeds) for s, n, e in CANDIDATES]
    table = []
    for label, s, n, e, k in rows:
        r = [scores(a.ckpt, s, n, e, a.w, seed, a.out) for seed in range(k)]
        table.append((label, k, *(mean(x[f] for x in r) for f in ('test', 'new_test')),
                      *(stdev(x[f] for x in r) if k > 1 else 0.0 for f in ('test', 'new_test')), mean(x['seconds'] for x in r)))
    base = (table[0][2] + table[0][3]) / 2
    print(f"\n{Path(str(a.ckpt)).name}, w={a.w}; accuracy = mean over seeds (± std), 32 images per file per seed\n")
    print('| sampler | seeds | test.json | new_test.json | mean of both | vs baseline | sampling s (64 images) |')
    print('|---|---|---|---|---|---|---|')
    for label, k, t, nt, ts, ns, sec in table:
        print(f'| {label} | {k} | {t:.3f} ± {ts:.3f} | {nt:.3f} ± {ns:.3f} | {(t + nt) / 2:.3f} | {(t + nt) / 2 - base:+.3f} | {sec:.0f} |')


if __name__ == '__main__': main()
