"""Synthetic i-CLEVR rendering speed: all 18009 scenes of data/train.json, PNGs included, against the target.

The target: the whole train.json at 64x64 in at most 5 minutes on a 2-core CPU, i.e. >= 60 images/s including
PNG writing. Each size renders into a fresh temporary folder through `render_dataset` (the same path as
`ddpm-lab render` and `synthetic_iclevr`). The load average is printed beside the numbers: other jobs on a
shared machine slow rendering down, never up.

    python bench/bench_render.py                 # 64x64 and 32x32, all 18009 scenes
    python bench/bench_render.py --n 2000        # the first 2000 files only
"""
import argparse, json, os, tempfile, time
from pathlib import Path
import torch
from ddpm_lab.data import DATA_DIR, read_labels
from ddpm_lab.render import render_dataset

TARGET_S, TARGET_IPS = 300, 60   # 18009 images in 5 minutes

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=None, help='render only the first N files of train.json')
    p.add_argument('--sizes', type=int, nargs='+', default=[64, 32])
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        labels = DATA_DIR / 'train.json'
        if a.n:
            labels = Path(tmp) / 'train_sub.json'
            labels.write_text(json.dumps(dict(list(read_labels(DATA_DIR / 'train.json').items())[:a.n])))
        n = len(read_labels(labels))
        print(f'{n} scenes of train.json | {os.cpu_count()} cores, torch {torch.__version__} | load average before: {os.getloadavg()[0]:.1f}')
        print(f'{"size":>7} {"seconds":>8} {"images/s":>9}   target: {TARGET_IPS} images/s (18009 in {TARGET_S} s)')
        for size in a.sizes:
            t0 = time.perf_counter()
            out = render_dataset(labels, Path(tmp) / f'r{size}', size=size, progress=False)
            dt = time.perf_counter() - t0
            assert len(list(out.glob('*.png'))) == n
            ips = n / dt
            print(f'{size:>4}x{size:<2} {dt:8.1f} {ips:9.1f}   {"meets" if ips >= TARGET_IPS else "MISSES"} the target '
                  f'({ips / TARGET_IPS:.1f}x; full train.json would take {18009 / ips:.0f} s) | load average: {os.getloadavg()[0]:.1f}')

if __name__ == '__main__': main()
