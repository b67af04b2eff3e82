"""Score saved evaluations again with another second judge, without sampling again.

`evaluate(..., out=DIR)` saves each file's samples as a 64x64-per-image grid (DIR/<file>.png, 8 per row, torchvision's
2-pixel padding): the images exactly as the judges read them, rounded to 8 bits. This script reads those grids back,
scores them with the given second judge (its accuracy, ceiling and kinds of error) and rewrites DIR/results.json with
the judge's id, so that `evaluate_seeds` then reuses it. `--check` scores with the judge the results already name
and prints how far the rescored accuracies are from the saved ones (the cost of the 8-bit rounding), writing nothing.
Usage: PYTHONPATH=. python bench/rescore.py DIR [DIR ...] --judge2 data/weights/judge2.pth [--check]
"""
import argparse, json
from pathlib import Path
import numpy as np, torch
from PIL import Image
from ddpm_lab.data import DATA_DIR, encode, normalize, atomic_write
from ddpm_lab.evaluation import load_evaluator, evaluator_id, reference, _judged, _label_lists


def tiles(grid_png, n, size=64, pad=2, ncol=8):
    "The n images of a saved grid, uint8 (n,3,size,size)."
    g = torch.from_numpy(np.array(Image.open(grid_png).convert('RGB'))).permute(2, 0, 1)
    at = lambda i: g[:, pad + (i // ncol) * (size + pad):, pad + (i % ncol) * (size + pad):][:, :size, :size]
    return torch.stack([at(i) for i in range(n)])


def rescore(folder, judge2_path, write=True):
    "Rescored results of one evaluation folder; with write, saved over its results.json."
    res = json.loads((Path(folder) / 'results.json').read_text())
    j2 = load_evaluator(judge2_path, 'cpu')
    for r in res['results']:
        lists = _label_lists(DATA_DIR / r['file'])
        ref, ref_y = reference(DATA_DIR / r['file'], 10, res['size'])
        r['judge2_before'] = r['judge2']['accuracy']
        r['judge2'] = _judged(j2, normalize(tiles(Path(folder) / f"{Path(r['file']).stem}.png", len(lists))), encode(lists), ref, ref_y)
    res['judges'] = dict(res['judges'], judge2=evaluator_id(judge2_path))
    if write:
        for r in res['results']: r.pop('judge2_before')
        atomic_write(Path(folder) / 'results.json', lambda tmp: tmp.write_text(json.dumps(res, indent=1)))
    return res


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('folders', nargs='+')
    P.add_argument('--judge2', default=DATA_DIR / 'weights' / 'judge2.pth')
    P.add_argument('--check', action='store_true')
    a = P.parse_args()
    for folder in a.folders:
        res = rescore(folder, a.judge2, write=not a.check)
        print(folder, ' '.join(f"{r['file']}: {r.get('judge2_before', float('nan')):.4f} -> {r['judge2']['accuracy']:.4f}" for r in res['results']))


if __name__ == '__main__':
    main()
