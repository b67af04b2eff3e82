"""Which classifier family learns the evaluator's scenes fastest? (issue 24.1: choosing the second judge)

Each contestant trains 600 steps (batch 64, AdamW + one-cycle, flips only, half the batch shown at 32x32 upsampled,
as train_evaluator does) on the scenes train_evaluator(seed=7) trains the second judge on, and is scored by course
accuracy on 500 held-out scenes of seed 8. Precision: `--amp auto` is what train_evaluator chooses (device_precision:
fp32 on a CPU; bf16 autocast trains these networks 7-13x slower than fp32 on one thread of an AVX2-only EPYC).
Rows are written to the results file one by one, so a stopped run resumes; a row already there for the same
contestant, steps, precision and threads is kept.
Usage: PYTHONPATH=. python bench/judge_race.py --threads 1 resnet18:2e-3 regnet_y_400mf:2e-3 ...   (arch:lr)
"""
import argparse, json, time, torch, torch.nn.functional as F, torchvision
from pathlib import Path
from torch import nn
from ddpm_lab.ablations import machine
from ddpm_lab.data import RESULTS_DIR, atomic_write, autocast, device_precision
from ddpm_lab.evaluation import eval_input, via_32, flip, course_accuracy, predict, _scenes, _trunk
from ddpm_lab.unet import n_params

BATCH = 64

def build(arch):
    "A torchvision classifier without pretrained weights, its last layer giving 24 sigmoid outputs, and the function giving its logits."
    m = getattr(torchvision.models, arch)(weights=None)
    if hasattr(m, 'fc'):
        m.fc = nn.Sequential(nn.Linear(m.fc.in_features, 24), nn.Sigmoid())
        trunk = _trunk(m)   # the library's evaluator trunk, as train_evaluator uses it
        return m, lambda x: m.fc[0](trunk(x))
    m.classifier[-1] = nn.Linear(m.classifier[-1].in_features, 24); m.classifier.append(nn.Sigmoid())
    head = nn.Sequential(*list(m.classifier)[:-1])
    return m, lambda x: head(torch.flatten(m.avgpool(m.features(x)), 1))

def race(arch, lr, steps, amp, x, y, xv, yv):
    "Train one contestant from seed 0 and return its parameter count, held-out accuracy and seconds."
    torch.manual_seed(0); g = torch.Generator().manual_seed(0)
    m, logits_of = build(arch)
    m = m.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.05)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    t0 = time.time(); m.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (BATCH,), generator=g)
        xb = eval_input(x[idx]); xb = torch.where((torch.rand(BATCH, generator=g) < 0.5)[:, None, None, None], via_32(xb), xb)
        xb = flip(xb, g).contiguous(memory_format=torch.channels_last)
        with autocast('cpu', amp): logits = logits_of(xb)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y[idx])
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    return dict(params=n_params(m), held_out=round(course_accuracy(predict(m.eval(), xv), yv), 3), seconds=round(time.time() - t0))

def table_lines(res):
    "The docs' table of the race."
    return (['| classifier | lr | parameters | held-out accuracy | seconds |', '|---|---|---|---|---|'] +
            [f"| {r['arch']} | {r['lr']:g} | {r['params'] / 1e6:.1f}M | {r['held_out']:.3f} | {r['seconds']} |" for r in res['rows']])

def main():
    P = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    P.add_argument('contestants', nargs='+', metavar='ARCH:LR', help='a torchvision classifier and its peak learning rate')
    P.add_argument('--threads', type=int, default=torch.get_num_threads())
    P.add_argument('--steps', type=int, default=600)
    P.add_argument('--amp', default='auto', choices=('auto', 'bf16', 'fp32'))
    P.add_argument('--json', type=Path, default=RESULTS_DIR / 'judge_race.json')
    a = P.parse_args()
    torch.set_num_threads(a.threads)
    amp = device_precision(torch.device('cpu')) if a.amp == 'auto' else a.amp
    setup = dict(steps=a.steps, batch=BATCH, amp=amp, threads=a.threads, scenes='train_evaluator seed 7 (40,000), held out: seed 8 (500)')
    old = json.loads(a.json.read_text()) if a.json.exists() else {}
    res = dict(setup, machine=machine(), rows=old.get('rows', []) if all(old.get(k) == v for k, v in setup.items()) else [])
    x, y = _scenes(40_000, 7)
    xv, yv = _scenes(1000, 8); xv, yv = eval_input(xv[:500]), yv[:500]
    for arch, lr in [(c.split(':')[0], float(c.split(':')[1])) for c in a.contestants]:
        if any(r['arch'] == arch and r['lr'] == lr for r in res['rows']): continue
        res['rows'].append(dict(arch=arch, lr=lr, **race(arch, lr, a.steps, amp, x, y, xv, yv)))
        print(json.dumps(res['rows'][-1]), flush=True)
        atomic_write(a.json, lambda tmp: tmp.write_text(json.dumps(res, indent=1) + '\n'))
    print('\n'.join(table_lines(res)))

if __name__ == '__main__':
    main()
