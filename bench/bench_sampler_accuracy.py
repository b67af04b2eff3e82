"""Accuracy of the fast samplers against the baseline, 1000-step DDPM, on one checkpoint over several seeds.

Target (issue 3): DDIM or DPM-Solver++ with at most 50 steps comes within 0.02 of 1000-step DDPM accuracy.
`ddpm 50` is ancestral sampling over 50 of the 1000 levels, which is DDIM with eta = 1 (the same posterior draw);
`dpm++ sde` is DPM-Solver++ 2M with eta = 1, the SDE solver: the same posterior draw with a second-order x0.
One seed scores 32 images per labels file, so a single seed's accuracy moves by a few points with the noise
alone: compare means over seeds. Each (sampler, steps, seed) evaluation is saved under --out and reused by a
rerun, so the script can be stopped and resumed; --seeds can differ per sampler (the baseline is the slow one).
Every accuracy is scored by both judges (the evaluator and the second judge); the rows, per seed, go to --json
(results/fast_samplers.json, which docs/results.md's table must match: tests/test_readme.py).
Usage: python bench/bench_sampler_accuracy.py [CKPT] [--seeds 5] [--baseline-seeds 5] [--w 3]
"""
import argparse, json
from pathlib import Path
from statistics import mean, stdev
from ddpm_lab.ablations import machine
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, file_md5
from ddpm_lab.evaluation import COURSE_FILES, evaluate
from ddpm_lab.sampling import sampling_tag
from ddpm_lab.pipeline import load_checkpoint

CANDIDATES = [('ddim', 50, 0), ('ddim', 25, 0), ('dpm++', 50, 0), ('dpm++', 20, 0), ('ddpm', 50, 0), ('dpm++', 50, 1), ('dpm++', 25, 1)]   # (sampler, steps, eta)


def scores(ckpt, sampler, steps, eta, w, seed, out):
    "Saved or fresh evaluation of one sampling: {'test': {judge: acc}, 'new_test': {judge: acc}, 'seconds': sampling time}."
    path = Path(out) / sampling_tag(sampler, steps, w, seed, eta) / 'results.json'
    res = json.loads(path.read_text()) if path.is_file() else evaluate(ckpt, labels_files=[DATA_DIR / f for f in COURSE_FILES], sampler=sampler, steps=steps, w=w, eta=eta, seed=seed, out=path.parent)
    return {Path(r['file']).stem: dict(evaluator=r['accuracy'], judge2=r['judge2']['accuracy']) for r in res['results']} | dict(seconds=sum(r['sample_seconds'] for r in res['results']))


def table_lines(res):
    "The markdown table of a results file: per sampler, each judge's mean ± std over seeds, the mean of both files and its difference from the baseline's."
    stat = lambda v: f'{mean(v):.3f} ± {stdev(v) if len(v) > 1 else 0.:.3f}'
    both = lambda r, j: mean((a + b) / 2 for a, b in zip(r['test'][j], r['new_test'][j]))
    base = res['rows'][0]
    lines = ['| sampler | seeds | test.json: evaluator / judge2 | new_test.json: evaluator / judge2 | mean of both | vs baseline | sampling s (64 images) |',
             '|---|---|---|---|---|---|---|']
    for r in res['rows']:
        judged = lambda f: ' / '.join(stat(r[f][j]) for j in ('evaluator', 'judge2'))
        lines.append(f"| {r['label']} | {len(r['seeds'])} | {judged('test')} | {judged('new_test')} | "
                     + ' / '.join(f'{both(r, j):.3f}' for j in ('evaluator', 'judge2')) + ' | '
                     + ' / '.join(f'{both(r, j) - both(base, j):+.3f}' for j in ('evaluator', 'judge2')) + f" | {mean(r['seconds']):.0f} |")
    return lines


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('ckpt', nargs='?', default=DATA_DIR / 'weights' / 'cpu.pt', help='checkpoint (default: the shipped cpu.pt)')
    P.add_argument('--seeds', type=int, default=5, help='sampling seeds 0..N-1 for the fast samplers')
    P.add_argument('--baseline-seeds', type=int, default=5, help='sampling seeds for the 1000-step DDPM baseline')
    P.add_argument('--w', type=float, default=3., help='guidance weight (the default sampler\'s: 3)')
    P.add_argument('--out', default='runs/bench_sampler_accuracy', help='folder of the saved evaluations')
    P.add_argument('--json', default=RESULTS_DIR / 'fast_samplers.json', help='results file of the table (per seed, both judges)')
    a = P.parse_args()
    T = load_checkpoint(a.ckpt)['config']['T']
    plan = [(f'baseline: ddpm {T}', 'ddpm', T, 0, a.baseline_seeds)] + [(f'{s}{" sde" if e else ""} {n}', s, n, e, a.seeds) for s, n, e in CANDIDATES]
    rows = []
    for label, s, n, e, k in plan:
        r = [scores(a.ckpt, s, n, e, a.w, seed, a.out) for seed in range(k)]
        rows.append(dict(label=label, sampler=s, steps=n, eta=e, seeds=list(range(k)), seconds=[x['seconds'] for x in r],
                         **{f: {j: [x[f][j] for x in r] for j in ('evaluator', 'judge2')} for f in ('test', 'new_test')}))
    res = dict(ckpt=Path(str(a.ckpt)).name, ckpt_md5=file_md5(a.ckpt), w=a.w, machine=machine(), rows=rows)
    atomic_write(Path(a.json), lambda tmp: tmp.write_text(json.dumps(res, indent=1)))
    print(f"\n{res['ckpt']}, w={a.w}, {res['machine']}; accuracy = mean ± std over seeds, 32 images per file per seed\n")
    print('\n'.join(table_lines(res)))


if __name__ == '__main__': main()
