"""How far does a healthy run's logged loss rise above its lowest, and how far does a diverged one? (the guard `diverge`)

Reads the log (out/log.jsonl: the mean loss of every window of log_every steps) of each run folder given, keeps the
last record of each step (a resumed run logs the steps after its checkpoint again), and writes the windows to
results/loss_windows.json. Prints for each run the largest ratio of a window's mean to the lowest window before it,
and the step at which the guard at its default factor (train.BASE['diverge']) would have stopped the run.
Notebook 03 (section "When training diverges") reads the file.
Usage: PYTHONPATH=. python bench/divergence.py NAME=RUN_DIR [NAME=RUN_DIR ...]
"""
import argparse, json
from pathlib import Path
from ddpm_lab.data import RESULTS_DIR, atomic_write
from ddpm_lab.train import BASE, first_divergence, worst_rise


def windows(run):
    "Steps and mean losses of a run's log windows, one per step (the last record wins)."
    recs = {}
    for line in (Path(run)/'log.jsonl').read_text().splitlines():
        rec = json.loads(line); recs[rec['step']] = rec['loss']
    steps = sorted(recs)
    return dict(steps=steps, loss=[recs[s] for s in steps], lr=json.loads((Path(run)/'config.json').read_text())['lr'])


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('runs', nargs='+', help='NAME=RUN_DIR')
    runs = {name: windows(d) for name, d in (a.split('=', 1) for a in ap.parse_args().runs)}
    for name, w in runs.items():
        stop = first_divergence(w['loss'], BASE['diverge'])
        print(f"{name:22s} {len(w['loss']):4d} windows, worst rise {worst_rise(w['loss']):6.2f}x, "
              f"guard at {BASE['diverge']:g}x: {'stops at step ' + str(w['steps'][stop]) if stop is not None else 'never stops'}")
    atomic_write(RESULTS_DIR/'loss_windows.json', lambda tmp: tmp.write_text(json.dumps(dict(factor=BASE['diverge'], runs=runs)) + '\n'))
