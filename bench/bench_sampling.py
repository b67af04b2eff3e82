"""Seconds to sample a batch (default 32 images, test.json's size) with each sampler, side by side with the baseline.

The baseline is what the lab reports did: DDPM ancestral sampling through all T training steps (1000 for T=1000).
Every row uses classifier-free guidance (w=0.5), so each step is one forward pass on a doubled batch; one extra row
computes guidance with two separate forward passes, the baseline for that choice. Speed only: quality is in
05_evaluation.
With --presets, it times instead one guided network evaluation (a forward pass on the doubled batch) of an
untrained model of each named preset and multiplies by the step counts: every sampler here costs one such
evaluation per step, so this gives each preset's sampling time without a trained checkpoint of it.
Usage: python bench/bench_sampling.py [CKPT] [--n 32] [--steps 10 25 50] [--device cpu] [--bf16]
       python bench/bench_sampling.py --presets tiny cpu contextunet unet2d best
"""
import argparse, time
import torch
from ddpm_lab.data import DATA_DIR
from ddpm_lab.sampling import sample
from ddpm_lab.train import get_config
from ddpm_lab.pipeline import Pipeline, load_pipeline, make_model
from ddpm_lab.unet import n_params


def two_pass(model, w):
    "Guidance with two forward passes per step (conditional, then null labels)."
    return lambda x, t, c: (1 + w) * model(x, t, c) - w * model(x, t, torch.zeros_like(c))


def seconds(fn, device):
    "Wall time of fn(), waiting for the GPU when there is one."
    if device.type == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t0


def per_preset(presets, n, dev, reps=2):
    "Seconds per guided step (one forward on 2n images) of an untrained model of each preset, and the implied sampling times."
    print(f"torch {torch.__version__} on {dev} ({torch.get_num_threads()} threads); {n} images, guidance w=0.5 (batch {2 * n})\n")
    print('| preset | params | size | s per step | ddpm, all T steps | ddim 50 | dpm++ 20 |')
    print('|---|---|---|---|---|---|---|')
    for p in presets:
        cfg = get_config(p)
        model = make_model(cfg).to(dev).eval()
        x, t = torch.randn(2 * n, 3, cfg['size'], cfg['size'], device=dev), torch.rand(2 * n, device=dev)
        c = torch.zeros(2 * n, 24, device=dev)
        with torch.inference_mode():
            model(x, t, c)   # warm-up
            s = min(seconds(lambda: model(x, t, c), dev) for _ in range(reps))
        print(f"| {p} | {n_params(model) / 1e6:.1f}M | {cfg['size']} | {s:.3f} | {s * cfg['T']:.0f} s (T={cfg['T']}) "
              f"| {s * min(50, cfg['T']):.1f} s | {s * min(20, cfg['T']):.1f} s |", flush=True)


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('ckpt', nargs='?', default=DATA_DIR / 'weights' / 'cpu.pt', help='checkpoint (default: the shipped cpu.pt)')
    P.add_argument('--n', type=int, default=32, help='images per batch')
    P.add_argument('--steps', type=int, nargs='+', default=[10, 25, 50], help='step counts for DDIM and DPM-Solver++')
    P.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    P.add_argument('--bf16', action='store_true', help='also time DPM-Solver++ under bf16 autocast')
    P.add_argument('--presets', nargs='+', help='time untrained models of these presets instead of a checkpoint')
    a = P.parse_args()
    dev = torch.device(a.device)
    if a.presets: return per_preset(a.presets, a.n, dev)
    pipe = load_pipeline(a.ckpt, device=dev)
    model, sch, cfg = pipe.net, pipe.schedule, pipe.config
    cond = torch.zeros(a.n, 24, device=dev)
    cond[torch.arange(a.n), torch.randint(0, 24, (a.n,), generator=torch.Generator().manual_seed(0))] = 1
    job = lambda sampler, steps, net=model, w=0.5: (lambda: sample(Pipeline(net, sch, pipe.pred, pipe.size), cond, sampler, steps, w=w, seed=0))
    seconds(job('ddim', 2), dev)  # warm-up
    n_mid = min(25, sch.T)   # the step count of the two comparison rows at the end
    rows = [(f'baseline: ddpm, all T={sch.T} steps', sch.T, job('ddpm', sch.T))]
    rows += [(f'{s} {n} steps', n, job(s, n)) for s in ['ddim', 'dpm++'] for n in sorted({*a.steps, n_mid}) if n <= sch.T]
    rows.append((f'dpm++ {n_mid} steps, guidance as 2 forwards', n_mid, job('dpm++', n_mid, two_pass(model, 0.5), w=0.)))
    if a.bf16:
        def amp():
            with torch.autocast(dev.type, dtype=torch.bfloat16): job('dpm++', n_mid)()
        rows.append((f'dpm++ {n_mid} steps, bf16 autocast', n_mid, amp))
    name = getattr(a.ckpt, 'name', a.ckpt)
    print(f"{name}: {cfg['arch']} {cfg['size']}x{cfg['size']}, {cfg['schedule']} T={sch.T}, pred={cfg['pred']}; "
          f"{a.n} images, w=0.5; torch {torch.__version__} on {a.device} ({torch.get_num_threads()} threads)\n")
    print(f"| {'sampler':44s} | steps | {'seconds':>8s} | {'img/s':>7s} | vs baseline |")
    print(f"|{'-' * 46}|-------|{'-' * 10}|{'-' * 9}|-------------|")
    base = None
    for label, steps, fn in rows:
        s = seconds(fn, dev)
        base = base or s
        print(f'| {label:44s} | {steps:5d} | {s:8.2f} | {a.n / s:7.2f} | {base / s:10.1f}x |', flush=True)


if __name__ == '__main__':
    main()
