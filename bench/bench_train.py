"""Training throughput (images/s) of every preset on this machine, side by side with the baseline.

The baseline is report A's recipe as published: ContextUnet n_feat 128 at 64x64, fp32, NCHW.
On a GPU (--device cuda) every preset runs at its own batch size, with torch.compile where the preset asks for it.
Usage: python bench/bench_train.py [--steps 5] [--presets tiny cpu contextunet unet2d best] [--device cuda]
"""
import argparse, time
import torch
from ddpm_lab.data import autocast
from ddpm_lab.train import get_config, diffusion_loss, fast_path, describe_fast_path as layout
from ddpm_lab.pipeline import make_model
from ddpm_lab.schedule import Schedule
from ddpm_lab.unet import n_params


def images_per_second(cfg, batch, steps, warmup=2, device='cpu'):
    "Time `steps` full optimiser steps (forward, backward, AdamW) on random data after `warmup` steps."
    torch.manual_seed(0)
    dev = torch.device(device)
    amp, channels_last = fast_path(cfg, dev, batch)
    model = make_model(cfg).to(dev)
    if channels_last: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == 'fp16')
    net = torch.compile(model) if cfg['compile'] and dev.type == 'cuda' else model
    sched = Schedule.from_name(cfg['schedule'], cfg['T'])
    x0 = torch.rand(batch, 3, cfg['size'], cfg['size'], device=dev) * 2 - 1
    if channels_last: x0 = x0.contiguous(memory_format=torch.channels_last)
    c = (torch.rand(batch, 24, device=dev) < 0.08).float()
    g = torch.Generator(dev).manual_seed(0)
    for i in range(warmup + steps):
        if i == warmup:
            if dev.type == 'cuda': torch.cuda.synchronize()
            t0 = time.perf_counter()
        with autocast(dev, amp):
            loss = diffusion_loss(net, sched, x0, c, cfg, g)
        opt.zero_grad(set_to_none=True); scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
    if dev.type == 'cuda': torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0), n_params(model)


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--steps', type=int, default=5, help='timed optimiser steps per row')
    P.add_argument('--presets', nargs='+', default=['tiny', 'cpu', 'unet2d', 'best'])
    P.add_argument('--device', default='cpu', help='cpu, or cuda to time the presets as they train on a GPU')
    P.add_argument('--warmup', type=int, default=2, help='untimed steps first (raise it for torch.compile)')
    a = P.parse_args()
    gpu, dev = a.device.startswith('cuda'), torch.device(a.device)
    base = get_config('contextunet', amp='fp32', channels_last=False)
    rows = [('baseline: report A ContextUnet fp32', base, base['batch_size'] if gpu else 16)]
    for p in a.presets:
        c = get_config(p)
        big = c['size'] == 64 and c['arch'] == 'unet2d'
        bs = c['batch_size'] if gpu else 8 if big else min(c['batch_size'], 64)
        rows.append((f'{p} ({layout(c, dev, bs)})' + (', torch.compile' if gpu and c['compile'] else ''), c, bs))
        if p == 'cpu':   # every precision and layout, to show what 'auto' chose against the others
            for amp, cl in [('bf16', False), ('bf16', True), ('fp32', False), ('fp32', True)]:
                f = get_config(p, amp=amp, channels_last=cl)
                if (amp, cl) != fast_path(c, dev, bs): rows.append((f'cpu, forced {layout(f, dev)}', f, bs))
        if gpu and c['compile']: rows.append((f'{p}, eager', get_config(p, compile=False), c['batch_size']))
    where = torch.cuda.get_device_name() if gpu else f'{torch.get_num_threads()} threads, CPU'
    print(f'torch {torch.__version__}, {where}\n')
    print(f"| {'preset':40s} | {'arch':11s} | {'params':>7s} | size | batch | {'img/s':>7s} | vs baseline |")
    print(f"|{'-' * 42}|{'-' * 13}|{'-' * 9}|------|-------|{'-' * 9}|-------------|")
    ref = None
    for name, cfg, bs in rows:
        ips, n = images_per_second(cfg, bs, a.steps, a.warmup, a.device)
        ref = ref or ips
        print(f"| {name:40s} | {cfg['arch']:11s} | {n / 1e6:6.1f}M | {cfg['size']:4d} | {bs:5d} | {ips:7.1f} | {ips / ref:10.1f}x |", flush=True)


if __name__ == '__main__': main()
