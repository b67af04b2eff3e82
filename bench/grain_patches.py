"""Is the grain on the 2x2 patch grid? (issue 24.3: "the 2x2 patches" as a source of the samples' grain)

The `cpu` network folds each 2x2 block of pixels into channels and unfolds its output the same way (notebook 02), so
an artefact of the patches would sit on that grid: neighbouring pixels that straddle two patches would differ more
than neighbours inside one patch. This bench samples test.json + heldout.json (96 lists) from data/weights/cpu.pt at
sampling seed 0 (DDPM 50 at w = 3 and, for comparison, without guidance) and measures, on the luminance of the 32x32
samples and of renders of the same lists, the mean absolute difference of horizontal and vertical neighbours inside a
patch (pixel columns or rows 2k, 2k+1) and across two patches (2k+1, 2k+2), their ratio (1: no patch grid), and the
grain (evaluation.grain, over the renders'). Writes results/grain_patches.json.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/grain_patches.py   (about 4 minutes on one core)
"""
import json, platform, time
import torch
import ddpm_lab.sampling as S
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, encode, read_labels
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.evaluation import reference, grain, luminance

FILES = ('test.json', 'heldout.json')


def neighbour_steps(images):
    "Mean absolute difference of neighbouring pixels inside a 2x2 patch and across two patches (both directions)."
    y = luminance(images)[:, 0]
    dx, dy = (y[..., :, 1:] - y[..., :, :-1]).abs(), (y[..., 1:, :] - y[..., :-1, :]).abs()
    inside = torch.cat([dx[..., :, 0::2].flatten(), dy[..., 0::2, :].flatten()]).mean().item()
    across = torch.cat([dx[..., :, 1::2].flatten(), dy[..., 1::2, :].flatten()]).mean().item()
    return dict(inside=round(inside, 5), across=round(across, 5), ratio=round(across / inside, 3))


if __name__ == '__main__':
    pipe = load_pipeline(DATA_DIR / 'weights' / 'cpu.pt', device='cpu')
    cond = encode([l for f in FILES for l in read_labels(DATA_DIR / f)])
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in FILES])
    rows = {'renders': dict(neighbour_steps(refs), grain=1.0)}
    for name, w in (('DDPM 50, w = 3', 3.), ('DDPM 50, w = 0', 0.)):
        t0 = time.time()
        x = S.sample(pipe, cond, sampler='ddpm', steps=50, w=w, ramp=False, seed=0)
        rows[name] = dict(neighbour_steps(x), grain=round(grain(x) / grain(refs), 3), seconds=round(time.time() - t0))
        print(name, rows[name], flush=True)
    print('renders', rows['renders'])
    res = dict(lists=len(cond), files=FILES, seed=0, cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(), rows=rows)
    atomic_write(RESULTS_DIR / 'grain_patches.json', lambda tmp: tmp.write_text(json.dumps(res, indent=1) + '\n'))
