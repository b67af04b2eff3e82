"""The EMA rate (issue 22.3's lever, and issue 24.3's suspected grain source): several decays from one training run.

Trains the `cpu` preset from scratch with training seed 2 (the shipped checkpoint is seed 42, the recipe log's second
seed is 1) and keeps, beside the preset's own EMA (decay 0.999), more EMA copies of the same weights with other
decays, updated after every optimiser step exactly as the preset's (`ddpm_lab.train.ema_update`, same warm-up; a
copy of the preset's with the preset's own decay matches it bit for bit, checked on the tiny preset). One
run thus gives every decay the same trajectory, so their differences are the EMA's alone. When training ends, each
decay's weights are written into a checkpoint of their own (the run's, with `ema` replaced and `config['ema']` set)
and scored like every recipe (`evaluate_seeds`: sampling seeds 0-4, four files, both judges, grain and floor colour),
each into its own folder, where bench/recipe_log.py reads them. A decay whose weights equal the preset's bit for bit
is said so and not scored: `ema_update` warms the decay up as min(decay, (1 + step) / (10 + step)), below 0.9985
for the preset's 6000 steps, so every decay above that trains the same average (docs/results.md, the recipe log). The preset's decay is the recipe log's
`cpu, training seed 2`.
Resumable: the extra EMAs are saved beside the run's checkpoint at every checkpoint step; `evaluate_seeds` reuses
seeds already scored (`--seeds 0 1 2` first gives a quick look; a later call with all five adds the rest).
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/ema_rates.py [--runs runs/ema_rates] [--seeds 0 1 2 3 4]
       -> prints each decay's summary line; the recipe log (bench/recipe_log.py --runs RUNS/..) tabulates them
"""
import argparse, copy
from pathlib import Path
import torch
from ddpm_lab.data import atomic_write
from ddpm_lab.pipeline import load_checkpoint, save_checkpoint
from ddpm_lab.train import Callback, ema_update, get_config, train
from ddpm_lab.evaluation import evaluate_seeds, EVAL_FILES

SEED, DECAYS = 2, (0.9995, 0.9998, 0.998)   # besides the preset's own 0.999; the first two: is the warm-up really what decides?


class MoreEMAs(Callback):
    "EMA copies of the model with other decays, updated after every step as the loop updates its own, saved at its checkpoint steps."
    def __init__(self, path, decays): self.path, self.decays, self.emas = Path(path), decays, None
    def after_step(self, r):
        if self.emas is None and not self.path.is_file(): self.emas = self._copies(r.ema, r.step); return
        if self.emas is None: self.emas = self._saved(r)
        for d, e in self.emas.items(): ema_update(e, r.model, d, r.step - 1)   # the loop's own update used the step before its increment
        if r.lead and r.step % r.cfg['ckpt_every'] == 0: self.save(r)
    def after_fit(self, r):
        if r.lead and self.emas is not None: self.save(r)
    def _copies(self, ema, step):
        "At a fresh run's first step: copies of the loop's EMA, which its warm-up (decay min(d, 1/10) at step 0) made what each decay's would be."
        assert step == 1 and ema is not None, 'start the extra EMAs with a fresh run of a preset with an EMA'
        return self._like(ema)
    def _like(self, ema): return {d: copy.deepcopy(ema) for d in self.decays}
    def _saved(self, r):
        "The copies saved by a resumed run."
        saved, emas = torch.load(self.path, map_location='cpu', weights_only=True), self._like(r.ema)
        if saved['step'] != r.step - 1: print(f'\nextra EMAs saved at step {saved["step"]}, resuming at {r.step - 1}', flush=True)
        for d, e in emas.items(): e.load_state_dict(saved['emas'][str(d)])
        return emas
    def save(self, r):
        state = dict(step=r.step, emas={str(d): e.state_dict() for d, e in self.emas.items()})
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))


def with_ema(ck, ema, decay, out):
    "A checkpoint at `out`: the run's contents `ck` (load_checkpoint) with one extra decay's weights `ema` as its EMA."
    ck = dict(ck, ema=ema, config=dict(ck['config'], ema=decay))
    ck.pop('checksum', None); Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, ck)
    return out


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--runs', default='runs/ema_rates')
    P.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    a = P.parse_args()
    runs, cfg = Path(a.runs), get_config('cpu', seed=SEED)
    run, extra = runs / 'run', runs / 'run' / 'more_emas.pt'
    if not (run / 'ckpt.pt').is_file() or load_checkpoint(run / 'ckpt.pt')['step'] < cfg['steps']:
        train(cfg, out=run, resume=(run / 'ckpt.pt').is_file(), callbacks=[MoreEMAs(extra, DECAYS)])
    ckpts, ck, saved = {cfg['ema']: (run / 'ckpt.pt', runs / 'eval')}, load_checkpoint(run / 'ckpt.pt'), torch.load(extra, weights_only=True)['emas']
    for d in DECAYS:
        if all(torch.equal(v, saved[str(d)][k]) for k, v in ck['ema'].items()):   # the warm-up min(d, (1 + step) / (10 + step)) held both below d all run
            print(f"EMA {d}: the same weights as the preset's {cfg['ema']}, bit for bit; not scored again", flush=True); continue
        ckpts[d] = with_ema(ck, saved[str(d)], d, runs / f'ema{d}' / 'ckpt.pt'), runs / f'ema{d}' / 'eval'
    for d, (ck, out) in ckpts.items():
        s = evaluate_seeds(ck, seeds=a.seeds, out=out)
        print(f'EMA {d}: ' + ', '.join(f"{Path(f).stem} {s['files'][f]['accuracy']['mean']:.3f} / {s['files'][f]['judge2']['mean']:.3f}"
                                       f" grain {s['files'][f]['grain']['mean']:.2f}" for f in EVAL_FILES), flush=True)


if __name__ == '__main__':
    main()
