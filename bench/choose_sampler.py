"""Choose the shipped checkpoint's default sampler on our own label lists, never on the course's test files.

Every setting samples data/heldout.json and data/novel.json (notebook 00) over sampling seeds 0-4 and is scored by
both judges (the evaluator and the second judge). The choice is the setting with the highest mean of the lower judge
over the two files; it is what pipeline.SAMPLING_DEFAULTS holds. Each (setting, seed) evaluation is saved under --out
and reused by a rerun, so the script can be stopped and resumed; --part i/n runs every n-th setting (two processes
share the work). Writes results/sampler_choice.json and prints a markdown table.
Usage: PYTHONPATH=. python bench/choose_sampler.py [--seeds 0 1 2 3 4] [--out runs/sampler_choice] [--part 1/2]
"""
import argparse, json
from pathlib import Path
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write
from ddpm_lab.evaluation import evaluate_seeds
from ddpm_lab.sampling import sampling_tag

SETTINGS = [('ddpm', 50, 3., False), ('ddim', 50, 3., False), ('dpm++', 20, 3., False), ('ddpm', 50, 4., False),
            ('ddpm', 50, 3., True), ('ddpm', 50, 4., True), ('ddpm', 50, 5., True), ('ddpm', 50, 2.5, False),
            ('ddpm', 100, 3., False)]   # (sampler, steps, w, ramp: weight 2 w t)
FILES = ('heldout.json', 'novel.json')


def run(ckpt, setting, seeds, out):
    "The seed summary of one setting (evaluated once, then read back)."
    sampler, steps, w, ramp = setting
    folder = Path(out) / sampling_tag(sampler, steps, w, 'all', ramp=ramp)
    saved = folder / 'summary.json'
    if saved.is_file(): return json.loads(saved.read_text())
    return evaluate_seeds(ckpt, seeds, out=folder, labels_files=[DATA_DIR / f for f in FILES], sampler=sampler, steps=steps, w=w, ramp=ramp)


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--ckpt', default=DATA_DIR / 'weights' / 'cpu.pt')
    P.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    P.add_argument('--out', default='runs/sampler_choice')
    P.add_argument('--part', default='1/1', help='i/n: run settings i, i+n, ... only (and write no table)')
    a = P.parse_args()
    i, n = map(int, a.part.split('/'))
    rows = [(s, run(a.ckpt, s, a.seeds, a.out)) for s in SETTINGS[i - 1::n]]
    if n > 1: return
    judged = lambda summ, j: sum(summ['files'][f][j]['mean'] for f in FILES) / len(FILES)
    score = {s: min(judged(summ, 'accuracy'), judged(summ, 'judge2')) for s, summ in rows}
    best = max(score, key=score.get)
    print(f'{Path(str(a.ckpt)).name}, seeds {a.seeds}, mean ± std over seeds; score = the lower judge, mean of the two files\n')
    print('| sampler | steps | w | ramp | heldout: evaluator | judge2 | novel: evaluator | judge2 | grain | floor colour | score |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    stat = lambda v: f"{v['mean']:.3f} ± {v['std']:.3f}"
    for s, summ in rows:
        h, v = summ['files']['heldout.json'], summ['files']['novel.json']
        print(f"| {s[0]} | {s[1]} | {s[2]:g} | {'2 w t' if s[3] else '-'} | {stat(h['accuracy'])} | {stat(h['judge2'])} | {stat(v['accuracy'])} | {stat(v['judge2'])} "
              f"| {(h['grain']['mean'] + v['grain']['mean']) / 2:.2f} | {(h['saturation']['mean'] + v['saturation']['mean']) / 2:.2f} | "
              + (f"**{score[s]:.3f}**" if s == best else f"{score[s]:.3f}") + ' |')
    record = dict(ckpt=str(a.ckpt), seeds=a.seeds, files=FILES, best=dict(zip(('sampler', 'steps', 'w', 'ramp'), best)),
                  settings=[dict(sampler=s[0], steps=s[1], w=s[2], ramp=s[3], score=score[s], summary=summ) for s, summ in rows])
    atomic_write(RESULTS_DIR / 'sampler_choice.json', lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    print(f"\nbest: {best}; written to {RESULTS_DIR / 'sampler_choice.json'}")


if __name__ == '__main__':
    main()
