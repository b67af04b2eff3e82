"""How good a classifier can the ACGAN's label head become? (issue 23.3; notebook 06, last section)

The ACGAN discriminators of bench/gan_diagnosis.py teach G its labels through a 24-label head on D's features, and
their heads end weak (0.30-0.46 on renders of test.json). Is that the game (G's images, the real/fake task pulling
D's features elsewhere) or the network? Here the same discriminator is trained as a classifier alone: no generator,
no real/fake loss, only the label BCE on the training images, for the cpu GAN's 2500 steps of 64 (the real images D
sees in a whole GAN run). Every 500 steps the head is scored (course accuracy) on 4 renders of each list of
test.json and new_test.json and on 256 of its own training images. Variants:
  batch          the `acgan` discriminator (BatchNorm)
  spectral       the `acgan_spectral` one (spectral norm, the cpu_acgan preset)
  batch_pooled   batch, with the head reading D's 4x4 features averaged over positions (Linear(256, 24)) instead of a
                 4x4 convolution that weighs each position on its own
  batch_shifted  batch, each training image moved by up to 4 pixels each way (replicate padding) before D reads it
  batch_wide     batch at twice the width (d_width 128: 4x the convolution work)
  resnet_spectral  the residual discriminator of notebook 06 (d_arch='resnet', d_width 32, spectral norm), as in the
                 acgan_resnet_ema run of bench/gan_diagnosis.py
  resnet_batch   the same with BatchNorm instead of spectral norm
  spectral_free_head, resnet_spectral_free_head   spectral norm in the body only: the label head a plain layer
                 (its weight not reparametrised), so its logits are not held to a Lipschitz bound
One training seed (0); run alone each takes about 5 minutes on one thread of the 2-core EPYC (the residual ones about 9
on the 2-core Xeon beside another job). `--variants` runs only
those named and keeps the other variants' records of the output file.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/gan_head_probe.py [--steps 2500] [--variants NAME ...] [--out results/gan_head_probe.json]
"""
import argparse, json, platform, time
from pathlib import Path
import torch, torch.nn as nn, torch.nn.functional as F
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, normalize
from ddpm_lab.gan import get_gan_config, make_discriminator
from ddpm_lab.train import training_data
from ddpm_lab.evaluation import reference, course_accuracy

VARIANTS = {'batch': dict(), 'spectral': dict(d_norm='spectral'), 'batch_pooled': dict(pooled=True),
            'batch_shifted': dict(shift=4), 'batch_wide': dict(d_width=128),
            'resnet_spectral': dict(d_arch='resnet', d_width=32, d_norm='spectral'), 'resnet_batch': dict(d_arch='resnet', d_width=32),
            'spectral_free_head': dict(d_norm='spectral', free_head=True),
            'resnet_spectral_free_head': dict(d_arch='resnet', d_width=32, d_norm='spectral', free_head=True)}
FILES, TRAIN = ('test.json', 'new_test.json'), 'train (256 seen)'   # the sets the head is scored on


class PooledHead(nn.Module):
    "24 label logits from D's features averaged over positions, shaped like the 4x4 conv head's output (B,24,1,1)."
    def __init__(self, ch, n_classes=24): super().__init__(); self.lin = nn.Linear(ch, n_classes)
    def forward(self, h): return self.lin(h.mean((2, 3)))[..., None, None]


def shifted(x, p):
    "Each image moved by up to p pixels each way, the border repeated."
    H, W = x.shape[-2:]
    xp, (dx, dy) = F.pad(x, (p, p, p, p), mode='replicate'), torch.randint(0, 2 * p + 1, (2, len(x)))
    return torch.stack([xp[i, :, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(len(x))])


def probe(variant, steps, every=500, batch_size=64, seed=0):
    "Train one discriminator as a classifier alone; its head's accuracy every `every` steps."
    opts = dict(VARIANTS[variant])
    pooled, shift, free_head = opts.pop('pooled', False), opts.pop('shift', 0), opts.pop('free_head', False)
    cfg = get_gan_config('cpu', d_head='acgan', cls_weight=0., **opts)
    imgs, conds = training_data(cfg)
    torch.manual_seed(seed)
    D = make_discriminator(cfg)
    if pooled: D.aux = PooledHead(D.aux.in_channels)
    if free_head: nn.utils.parametrize.remove_parametrizations(D.aux, 'weight')
    opt = torch.optim.Adam(D.parameters(), lr=cfg['lr'], betas=tuple(cfg['adam_betas']))
    sets = {f: reference(DATA_DIR / f, 4, cfg['size']) for f in FILES} | {TRAIN: (imgs[:256], conds[:256])}
    head = lambda x, c: D(normalize(x), c)[1]
    rows, t0 = [], time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(len(imgs), (batch_size,))
        x, c = normalize(imgs[idx]), conds[idx]
        loss = F.binary_cross_entropy_with_logits(D(shifted(x, shift) if shift else x, c)[1], c)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        if step % every == 0:
            D.eval()
            with torch.no_grad(): acc = {k: round(course_accuracy(head(x_, c_), c_), 4) for k, (x_, c_) in sets.items()}
            D.train()
            rows.append(dict(step=step, loss=round(loss.item(), 4), minutes=round((time.time() - t0) / 60, 2), **acc))
            print(variant, rows[-1], flush=True)
    return rows


def main():
    P = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    P.add_argument('--steps', type=int, default=2500)
    P.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    P.add_argument('--out', default=str(RESULTS_DIR / 'gan_head_probe.json'))
    a = P.parse_args()
    old = json.loads(Path(a.out).read_text())['variants'] if Path(a.out).is_file() else {}
    new = {v: probe(v, a.steps) for v in a.variants}
    res = dict(steps=a.steps, batch_size=64, seed=0, cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(),
               variants={v: new[v] if v in new else old[v] for v in VARIANTS if v in new or v in old})
    atomic_write(a.out, lambda tmp: tmp.write_text(json.dumps(res, indent=1)))
    print('| discriminator | loss | ' + ' | '.join((*FILES, TRAIN)) + ' |')
    for v, rows in res['variants'].items():
        print(f"| {v} | {rows[-1]['loss']} | " + ' | '.join(f'{rows[-1][k]:.3f}' for k in (*FILES, TRAIN)) + ' |')


if __name__ == '__main__': main()
