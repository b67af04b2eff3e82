"""Why did a run diverge, and would a common remedy have saved it? (the divergence guard, notebook 03)

Resumes a copy of a diverged run from its last good checkpoint (the guard keeps it) and replays it step by step with
the guard off, recording each step's loss and gradient norm before clipping; then replays it again under each remedy,
changed from that step on: a lower peak learning rate, AdamW's beta2 at 0.95 (its second-moment estimate follows a
rising gradient 20x faster than at 0.999), a tighter gradient clip. A resumed run replays exactly the batches and noise
of the original, so the first replay shows the original run's steps; the remedies differ from it only in the change.
Writes results/divergence_replay.json and prints, per replay, the gradient norm before the jump and the mean loss of
the last 50 steps.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/divergence_replay.py RUN_DIR [--until 1000] [--scratch DIR]
"""
import argparse, json, platform, shutil
from pathlib import Path
import torch
import ddpm_lab.train as T
from ddpm_lab.data import RESULTS_DIR, atomic_write

REMEDIES = {'as run': {}, 'lr 1e-3': dict(lr=1e-3), 'beta2 0.95': dict(adam_betas=[0.9, 0.95]), 'clip 0.25': dict(grad_clip=0.25)}


def replay(run, scratch, until, change):
    "Steps, losses and pre-clip gradient norms of `run` resumed from its checkpoint with `change` made to its config."
    shutil.rmtree(scratch, ignore_errors=True); scratch.mkdir(parents=True)
    shutil.copy(run/'ckpt.pt', scratch/'ckpt.pt')
    cfg = json.loads((run/'config.json').read_text()) | dict(diverge=None) | change
    norms, clip, restore = [], torch.nn.utils.clip_grad_norm_, T.restore
    def recorded_clip(params, max_norm, *a, **k):
        n = clip(params, max_norm, *a, **k); norms.append(n.item()); return n
    def changed_restore(ck, path, cfg, parts, resumable=T._RESUMABLE):   # the change is the point: let it through, then apply it to AdamW
        restore(ck, path, cfg, parts, resumable | set(change))
        for g in parts['opt'].param_groups: g['betas'] = tuple(cfg['adam_betas'])
    torch.nn.utils.clip_grad_norm_, T.restore = recorded_clip, changed_restore
    try: res = T.train(cfg, out=scratch, resume=True, until=until)
    finally: torch.nn.utils.clip_grad_norm_, T.restore = clip, restore
    start = res['step'] - len(norms)
    return dict(change=change, steps=list(range(start + 1, res['step'] + 1)), loss=res['losses'][start:], grad_norm=norms)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('run', type=Path); ap.add_argument('--until', type=int, default=1000)
    ap.add_argument('--scratch', type=Path, default=Path('runs/divergence_replay'))
    a = ap.parse_args()
    out = dict(run=str(a.run), cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads(), replays={})
    for name, change in REMEDIES.items():
        r = out['replays'][name] = replay(a.run, a.scratch, a.until, change)
        last = sum(r['loss'][-50:]) / 50
        print(json.dumps(dict(replay=name, first_step=r['steps'][0], median_grad_norm_first_150=sorted(r['grad_norm'][:150])[75],
                              max_grad_norm=max(r['grad_norm']), mean_loss_last_50=round(last, 4))), flush=True)
    atomic_write(RESULTS_DIR/'divergence_replay.json', lambda tmp: tmp.write_text(json.dumps(out) + '\n'))
