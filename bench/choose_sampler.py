"""Choose the shipped checkpoint's default sampler on our own label lists, never on the course's test files.

Every setting samples data/heldout.json and data/novel.json (notebook 00) over sampling seeds 0-4 and is scored by
both judges (the evaluator and the second judge). The choice is the setting with the highest mean of the lower judge
over the two files; it is what pipeline.SAMPLING_DEFAULTS holds. Each (setting, seed) evaluation is saved under --out
and reused by a rerun, so the script can be stopped and resumed; --part i/n runs every n-th setting (two processes
share the work). Writes results/sampler_choice.json and prints its markdown table (docs/results.md's, which
tests/test_readme.py checks against the file).
Usage: PYTHONPATH=. python bench/choose_sampler.py [--seeds 0 1 2 3 4] [--out runs/sampler_choice] [--part 1/2]
"""
import argparse, json
from pathlib import Path
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, file_md5
from ddpm_lab.evaluation import evaluate_seeds
from ddpm_lab.sampling import FULL, sampling_tag

SETTINGS = [('ddpm', 50, 3., False), ('ddim', 50, 3., False), ('dpm++', 20, 3., False), ('ddpm', 50, 4., False),
            ('ddpm', 50, 3., True), ('ddpm', 50, 4., True), ('ddpm', 50, 5., True), ('ddpm', 50, 2.5, False),
            ('ddpm', 100, 3., False), ('ddpm', 50, 3., False, (0.2, 1.)), ('ddpm', 50, 4., False, (0.2, 1.))]   # (sampler, steps, w, ramp: weight 2 w t[, guidance interval])
FILES = ('heldout.json', 'novel.json')


def run(ckpt, setting, seeds, out):
    "The seed summary of one setting (evaluated once, then read back)."
    sampler, steps, w, ramp, interval = (setting + (FULL,))[:5]
    folder = Path(out) / sampling_tag(sampler, steps, w, 'all', interval=interval, ramp=ramp)
    saved = folder / 'summary.json'
    if saved.is_file(): return json.loads(saved.read_text())
    return evaluate_seeds(ckpt, seeds, out=folder, labels_files=[DATA_DIR / f for f in FILES], sampler=sampler, steps=steps, w=w, ramp=ramp, interval=interval)


def weighting(setting):
    "How the guidance weight is applied: w at every step, a ramp, or w on an interval of times only."
    lo, hi = setting.get('interval') or FULL
    if (lo, hi) != FULL: return f'w while t >= {lo:g}' if hi == 1 else f'w while t in [{lo:g}, {hi:g}]'
    return '2 w t' if setting['ramp'] else '-'


def score(summ):
    "What the default is chosen by: the lower judge's accuracy, mean of the two files."
    judged = lambda j: sum(summ['files'][f][j]['mean'] for f in FILES) / len(FILES)
    return min(judged('accuracy'), judged('judge2'))


def judged_cells(summ):
    "Table cells of a seed summary: each judge's mean ± std per file, then grain and floor colour (means over the files)."
    stat = lambda v: f"{v['mean']:.3f} ± {v['std']:.3f}"
    files = [summ['files'][f] for f in FILES]
    both = lambda k: sum(r[k]['mean'] for r in files) / len(files)
    return ' | '.join([stat(r[j]) for r in files for j in ('accuracy', 'judge2')] + [f"{both('grain'):.2f}", f"{both('saturation'):.2f}"])


def table_lines(record):
    "The markdown table of a results file: per setting, each judge's mean ± std over seeds on each file, cleanliness and the score (the best in bold)."
    lines = ['| sampler | steps | w | guidance | heldout: evaluator | judge2 | novel: evaluator | judge2 | grain | floor colour | score |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for s in record['settings']:
        best = {k: x for k, x in s.items() if k not in ('score', 'summary')} == record['best']
        lines.append(f"| {s['sampler']} | {s['steps']} | {s['w']:g} | {weighting(s)} | {judged_cells(s['summary'])} | "
                     + (f"**{s['score']:.3f}**" if best else f"{s['score']:.3f}") + ' |')
    return lines


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--ckpt', type=Path, default=DATA_DIR / 'weights' / 'cpu.pt')
    P.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    P.add_argument('--out', default='runs/sampler_choice')
    P.add_argument('--part', default='1/1', help='i/n: run settings i, i+n, ... only (and write no table)')
    a = P.parse_args()
    i, n = map(int, a.part.split('/'))
    rows = [(s, run(a.ckpt, s, a.seeds, a.out)) for s in SETTINGS[i - 1::n]]
    if n > 1: return
    scores = {s: score(summ) for s, summ in rows}
    best = max(scores, key=scores.get)
    named = lambda s: dict(zip(('sampler', 'steps', 'w', 'ramp', 'interval'), s))
    record = dict(ckpt=a.ckpt.name, ckpt_md5=file_md5(a.ckpt), seeds=a.seeds, files=FILES, best=named(best),
                  settings=[named(s) | dict(score=scores[s], summary=summ) for s, summ in rows])
    print(f"{record['ckpt']}, seeds {a.seeds}, mean ± std over seeds; score = the lower judge, mean of the two files\n")
    print('\n'.join(table_lines(record)))
    atomic_write(RESULTS_DIR / 'sampler_choice.json', lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    print(f"\nbest: {best}; written to {RESULTS_DIR / 'sampler_choice.json'}")


if __name__ == '__main__':
    main()
