"""Training throughput of the UNet configurations on this machine, side by side with report A's baseline.

One training step = forward + MSE loss + backward + AdamW step on random data (batch 32 by default). The baseline
is report A's ContextUnet n_feat=128 at 64x64; the `cpu` preset needs a model >= 10x faster than it.
The configurations take turns, one step each per round, so that other jobs on a shared machine slow them alike;
img/s comes from each one's fastest step (load only ever slows a step down), the median is shown beside it.
img/cpu-s divides by the CPU time the process used instead of wall time: with --threads 1 it hardly depends on
other jobs. GFLOP/img (forward+backward, counted by torch.utils.flop_counter) does not depend on the load at all.

    python bench/bench_unet.py                            # all configurations, 3 rounds
    python bench/bench_unet.py --only ctx32_64 --rounds 5 --threads 1
"""
import argparse, os, time
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from ddpm_lab.unet import build_model, n_params

CONFIGS = {  # name: build_model kwargs
    'ctx64_128 (baseline)': dict(arch='contextunet', n_feat=128, img_size=64),
    'ctx32_128': dict(arch='contextunet', n_feat=128, img_size=32),
    'ctx32_64': dict(arch='contextunet', n_feat=64, img_size=32),
    'unet2d_32-64-128_x2': dict(arch='unet2d', img_size=32, channels=(32, 64, 128), attn=(0, 0, 1)),
    'unet2d_32-64-128-128_x2': dict(arch='unet2d', img_size=32, channels=(32, 64, 128, 128), attn=(0, 0, 1, 1)),
    'unet2d_32-64-128-256_x1': dict(arch='unet2d', img_size=32, channels=(32, 64, 128, 256), layers=1, attn=(0, 0, 1, 0)),
    'unet2d_32-64-128-256_x2': dict(arch='unet2d', img_size=32, channels=(32, 64, 128, 256), attn=(0, 0, 1, 0)),
    'unet2d_64-128-256_x2': dict(arch='unet2d', img_size=32, channels=(64, 128, 256), attn=(0, 0, 1)),
}
BASE = 'ctx64_128 (baseline)'

def make_step(kw, batch, channels_last):
    "Return (model, step function) for one training step of the model built from `kw` on random data."
    torch.manual_seed(0)
    model = build_model(**kw).train()
    size = kw['img_size']
    x, t, c = torch.randn(batch, 3, size, size), torch.rand(batch), (torch.rand(batch, 24) < 0.1).float()
    if channels_last: model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    def step():
        loss = F.mse_loss(model(x, t, c), x)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return model, step

def gflop_per_image(kw):
    "Forward+backward GFLOP per image, counted on a batch of 2."
    model, s = build_model(**kw).train(), kw['img_size']
    x = torch.randn(2, 3, s, s)
    with FlopCounterMode(display=False) as fc: F.mse_loss(model(x, torch.rand(2), torch.zeros(2, 24)), x).backward()
    return fc.get_total_flops() / 2 / 1e9

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', nargs='*', choices=list(CONFIGS), help='configurations besides the baseline (default: all)')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--rounds', type=int, default=3, help='timed steps per configuration')
    p.add_argument('--threads', type=int, default=torch.get_num_threads())
    p.add_argument('--channels-last', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    names = [BASE] + [n for n in (a.only or CONFIGS) if n != BASE]
    print(f'torch {torch.__version__}, {a.threads} threads, batch {a.batch}, {a.rounds} rounds, '
          f'channels_last={a.channels_last}, load average at start {os.getloadavg()[0]:.2f}', flush=True)
    steps = {n: make_step(CONFIGS[n], a.batch, a.channels_last)[1] for n in names}
    for n in names: steps[n]()  # warm-up
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for r in range(a.rounds):
        for n in names:
            t0, c0 = time.perf_counter(), time.process_time()
            steps[n]()
            wall[n].append(time.perf_counter() - t0); cpu[n].append(time.process_time() - c0)
    print(f"{'config':26s} {'params':>8s} {'GFLOP/img':>9s} {'img/s':>7s} {'median':>7s} {'img/cpu-s':>9s} "
          f"{'x base':>7s} {'x base cpu':>10s} {'x base FLOP':>11s}")
    base = None
    for n in names:
        ts, flop = sorted(wall[n]), gflop_per_image(CONFIGS[n])
        ips, ipc = a.batch / ts[0], a.batch / min(cpu[n])
        base = base or (ips, ipc, flop)
        print(f'{n:26s} {n_params(build_model(**CONFIGS[n]))/1e6:7.2f}M {flop:9.2f} {ips:7.1f} {a.batch / ts[len(ts) // 2]:7.1f} '
              f'{ipc:9.1f} {ips / base[0]:6.1f}x {ipc / base[1]:9.1f}x {base[2] / flop:10.1f}x')
    print(f'load average at end {os.getloadavg()[0]:.2f} (2 cores: above ~2 other jobs were competing)')

if __name__ == '__main__': main()
