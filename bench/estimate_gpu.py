"""An ESTIMATE, not a measurement: training images/s and minutes of the presets on a GPU we did not have,
from FLOPs counted here (forward + backward of one image, torch.utils.flop_counter) and the GPU's published peak.

    images/s = min(launch ceiling, utilisation x peak FLOP/s / FLOP per image)

Two limits. Small UNets are launch-bound: the one GPU number this project has, the `cpu_v1` network at 787 img/s
on an H100 (bf16, batch 64, eager), used a fraction of a percent of that GPU's peak (printed below), so a step
costs kernel launches, not FLOPs; we take 787 img/s per 64 images of batch as the launch ceiling on any GPU.
Large ones are compute-bound: 10-30% of the peak of the precision the GPU trains in is the usual range for
convolutional networks. T4 peak: fp16 tensor cores, 65 TFLOP/s (it has no bf16 units). Replace it with `python bench/bench_train.py --device cuda` on the real GPU.
Usage: python bench/estimate_gpu.py [--presets cpu contextunet unet2d] [--gpu t4]
"""
import argparse
import torch, torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from ddpm_lab.train import get_config
from ddpm_lab.pipeline import make_model
from ddpm_lab.unet import n_params

PEAK = {'t4': ('NVIDIA T4', 'fp16', 65e12), 'a100': ('NVIDIA A100', 'bf16', 312e12), 'h100': ('NVIDIA H100 SXM', 'bf16', 989e12)}
H100_CPU_V1 = 787.   # img/s, measured on an H100 in an earlier session (bench/README.md, GPU section)
UTIL = (0.10, 0.30)


def train_flop(cfg):
    "FLOP of forward + backward for one image of the config's network."
    model, s = make_model(cfg), cfg['size']
    x = torch.randn(2, 3, s, s)
    with FlopCounterMode(display=False) as fc: F.mse_loss(model.train()(x, torch.rand(2), torch.zeros(2, 24)), x).backward()
    return fc.get_total_flops() / 2, n_params(model)


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--presets', nargs='+', default=['cpu', 'contextunet', 'unet2d'])
    P.add_argument('--gpu', default='t4', choices=list(PEAK))
    a = P.parse_args()
    name, prec, peak = PEAK[a.gpu]
    share = H100_CPU_V1 * train_flop(get_config('cpu_v1'))[0] / PEAK['h100'][2]
    print(f'cpu_v1 at {H100_CPU_V1:.0f} img/s on an H100 (measured) used {share:.2%} of its peak: launch-bound')
    print(f'ESTIMATE for {name} ({prec}, peak {peak / 1e12:.0f} TFLOP/s), utilisation {UTIL[0]:.0%}-{UTIL[1]:.0%}, '
          f'launch ceiling {H100_CPU_V1:.0f} img/s per 64 of batch: not measured\n')
    print('| preset | params | size | GFLOP/image (fwd+bwd) | images in the preset | est. img/s | est. minutes |')
    print('|---|---|---|---|---|---|---|')
    for p in a.presets:
        cfg = get_config(p)
        flop, n = train_flop(cfg)
        ips = [min(H100_CPU_V1 * cfg['batch_size'] / 64, u * peak / flop) for u in UTIL]
        images = cfg['steps'] * cfg['batch_size']
        print(f"| {p} | {n / 1e6:.1f}M | {cfg['size']} | {flop / 1e9:.2f} | {images / 1e6:.2f}M | {ips[0]:,.0f}-{ips[1]:,.0f} | "
              f"{images / ips[1] / 60:.1f}-{images / ips[0] / 60:.1f} |", flush=True)


if __name__ == '__main__': main()
