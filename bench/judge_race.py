"""Which architecture learns the evaluator's scenes fastest? 600 steps each (batch 64, AdamW + one-cycle), flips only, bf16;
course accuracy on 500 held-out scenes. Reads the cached scenes of train_evaluator(seed=7) (run it once first).
Usage: PYTHONPATH=. python bench/judge_race.py THREADS resnet18:2e-3 regnet_y_400mf:2e-3 ...   (arch:lr)"""
import sys, time, torch, torch.nn.functional as F, torchvision
from torch import nn
torch.set_num_threads(int(sys.argv[1]))
from ddpm_lab.evaluation import eval_input, via_32, flip, course_accuracy, predict, _scenes
x, y = _scenes(40_000, 7)
xv, yv = _scenes(1000, 8); xv, yv = eval_input(xv[:500]), yv[:500]
def build(arch):
    m = getattr(torchvision.models, arch)(weights=None)
    if hasattr(m, 'fc'): m.fc = nn.Sequential(nn.Linear(m.fc.in_features, 24), nn.Sigmoid())
    else: m.classifier[-1] = nn.Linear(m.classifier[-1].in_features, 24); m.classifier.append(nn.Sigmoid())
    return m
for arch, lr in [(a.split(':')[0], float(a.split(':')[1])) for a in sys.argv[2:]]:
    torch.manual_seed(0); g = torch.Generator().manual_seed(0)
    m = build(arch).to(memory_format=torch.channels_last); n = 600
    body = nn.Sequential(*list(m.children())[:-1], nn.Flatten()) if hasattr(m, 'fc') else None
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.05)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=n, pct_start=0.05)
    t0 = time.time(); m.train()
    for i in range(n):
        idx = torch.randint(0, len(x), (64,), generator=g)
        xb = eval_input(x[idx]); xb = torch.where((torch.rand(64, generator=g) < 0.5)[:, None, None, None], via_32(xb), xb)
        xb = flip(xb, g).contiguous(memory_format=torch.channels_last)
        with torch.autocast('cpu', torch.bfloat16):
            logits = m.fc[0](body(xb)) if body is not None else nn.Sequential(*list(m.classifier)[:-1])(torch.flatten(m.avgpool(m.features(xb)), 1))
        loss = F.binary_cross_entropy_with_logits(logits.float(), y[idx])
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    print(arch, lr, f'{n} steps {time.time() - t0:.0f}s', 'held-out', round(course_accuracy(predict(m.eval(), xv), yv), 3), flush=True)
