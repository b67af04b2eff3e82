"""The recipe log (issue 22.3): every diffusion recipe tried, under both judges, on the course's files and our own.

Each recipe is one training run and the `evaluate_seeds` summary of its checkpoint (sampling seeds 0-4, the
checkpoint's default sampler). Training minutes and images/s come from the run's log.jsonl when its folder is here
(`--runs`); the first shipped checkpoint's run folder was not kept, so its entry carries the figures measured when
it was trained and no summary. The log is kept in results/recipes.json: a recipe whose run or summary is not on this
machine keeps its committed entry (with its `changes` text from here). Recipes are chosen on heldout.json and novel.json, under
the lower of the two judges; test.json and new_test.json are reported, never used to choose.
Usage: PYTHONPATH=. python bench/recipe_log.py [--runs /work/bgout]
"""
import argparse, json
from pathlib import Path
from ddpm_lab.data import RESULTS_DIR, atomic_write
from ddpm_lab.pipeline import load_checkpoint

AVX512 = '2-core AMD EPYC (AVX-512 BF16), two threads'
XEON = '2-core Intel Xeon (AMX BF16), two threads'
XEON_1 = '2-core Intel Xeon (AMX BF16), one thread'
EPYC_AVX2 = '2-core AMD EPYC (AVX2 only), two threads, alone'
H200_SHARED = 'one NVIDIA H200 (bf16, torch.compile), shared with three other training runs (bench/gpu_recipe.py); scored on a 2-core AMD EPYC (AVX-512 BF16)'
H200_ALONE = 'one NVIDIA H200 alone (bf16, torch.compile; bench/gpu_recipe.py --runs gpu); scored on a 2-core AMD EPYC (AVX-512 BF16)'
EPYC_AVX2_PAUSED = '2-core AMD EPYC (AVX2 only), two threads (one for the first 56 steps), paused while tests ran'

def scored(name, changes, folder, machine, threads=2):
    "A recipe trained into folder/run and scored by evaluate_seeds into folder/eval (the layout of the runs since the second judge)."
    return dict(name=name, changes=changes, run=f'{folder}/run', summary=f'{folder}/eval/summary.json', threads=threads, machine=machine)

RECIPES = [   # name, what it changes against the cpu preset (the uniform-step rows below it: against `cpu, uniform steps`), where its run and summary are
    scored('cpu', 'the cpu preset: 32x32, 2x2 patches, logit-normal steps shifted to the clean end (t_logit=[-1, 1.5]), 6000 steps (the run of the shipped checkpoint, scored before its fp16 export; results/headline.json scores the export)',
           'shift1', f'{XEON_1}, beside sampling jobs', threads=1),
    scored('cpu, training seed 1', 'the cpu preset with seed=1: its second training seed',
           'shift1_s1', f'{XEON_1}, beside sampling jobs', threads=1),
    scored('cpu, training seed 2', 'the cpu preset with seed=2 (bench/ema_rates.py), trained in fp32 (no bf16 on an AVX2 EPYC): its third training seed',
           'ema_rates', EPYC_AVX2_PAUSED),
    dict(name='cpu, EMA 0.998 (training seed 2)', changes='ema=0.998 instead of 0.999: the run of training seed 2 averaged along the same trajectory '
         'with a decay that binds from step 4490 on (the warm-up bound stays below 0.999 all run; bench/ema_rates.py)',
         run='ema_rates/run', summary='ema_rates/ema0.998/eval/summary.json', threads=2, machine=EPYC_AVX2_PAUSED),
    scored('cpu, --fit 30', 'the cpu preset fitted to 30 minutes of the CPU it ran on (--fit 30): the student\'s command, batch 64, the schedule shortened to the steps that fit',
           'fit30/b64', EPYC_AVX2),
    scored('cpu, --fit 30, batch 32', 'the same with batch_size=32, lr=1.41e-3 (lr scaled by the square root of the batch), warmup=400',
           'fit30/b32', EPYC_AVX2),
    scored('cpu, --fit 30, batch 16', 'the same with batch_size=16, lr=1e-3, warmup=800',
           'fit30/b16', EPYC_AVX2),
    scored('cpu, --fit 30, narrow, batch 32', 'a narrower network, channels [48, 96, 96] with GroupNorm groups 16 (3.1M parameters against 5.5M), '
           'at batch_size=32, lr=1.41e-3, warmup=400, fitted to 30 minutes (--fit 30, steps 5-20 timed: 4567 steps) of an AVX-512 EPYC, another CPU than the rows above',
           'fit30/narrow32', f'{AVX512}; pytest and notebook tests ran beside it for about 10 of its minutes'),
    scored('cpu, --fit 30, two-pass fit', 'the student\'s command (--fit 30) on an AVX-512 EPYC with the two-pass fit: steps 5-20 gave '
           '4344 steps, steps 20-434 gave 3805 (they ran 1.15x slower than the probe)', 'fit30ab/base', f'{AVX512}; short notebook and unit tests beside it (a few minutes in all)'),
    scored('cpu, --fit 30, EDM preconditioning', "pred='edm' (Karras et al. 2022, sigma_data 0.5: the network sees x_t / D and predicts F, "
           "x0 = sigma_d^2 a x_t / D^2 + s sigma_d F / D; v-prediction is the same with sigma_d = 1) and EDM's uniform loss on F (min_snr off), "
           "at the row above's 3805 steps (steps=3805, not fitted), on the same CPU",
           'fit30ab/edm', f'{AVX512}; unit and notebook tests beside it for part of its minutes'),
    dict(name='gpu, H200', changes='the gpu preset: the cpu network at batch 512 (lr 2e-3, warm-up 400), compiled, fitted to 4.5 minutes of an H200 shared with three '
         'other training runs: 1967 steps, 2.6x the images of the cpu preset in a third of its updates; its exported fp16 checkpoint, scored on a CPU',
         run='gpu/gpu/gpu', summary='gpu/gpu/gpu/eval_cpu/summary.json', threads='H200, shared', machine=H200_SHARED),
    dict(name='gpu64, H200', changes='the same at 64x64 natively (the gpu64 preset: 4x4 patches), beside it on the same GPU: 2003 steps',
         run='gpu/gpu/gpu64', summary='gpu/gpu/gpu64/eval_cpu/summary.json', threads='H200, shared', machine=H200_SHARED),
    dict(name='gpu, H200 alone', changes='the gpu preset alone on an H200, fitted to 6 minutes: 8952 steps of 512 (4.6M images, 4.6x the updates of the '
         'shared run above); its exported fp16 checkpoint, scored on a CPU',
         run='gpu_alone/run', summary='gpu_alone/eval_cpu/summary.json', threads='H200, alone', machine=H200_ALONE),
    scored('cpu, t_logit [-1.5, 1.5]', 'a still stronger shift, t_logit=[-1.5, 1.5]: 61% of the training steps in the nearly clean quarter (t/T < 0.25) against 47%',
           'shift15', f'{XEON_1}, beside another training run and two CI runs', threads=1),
    scored('cpu, t_logit [-0.5, 1.5]', 'a milder shift, t_logit=[-0.5, 1.5]: the preset shipped in f1eb09c (git history)',
           'cpu6000', f'{XEON}, alone'),
    scored('cpu, t_logit [-0.5, 1.5], training seed 1', 'the same with seed=1: its second training seed',
           'steps6000_s1', f'{XEON}, alone'),
    scored('cpu, 4000 steps', 't_logit=[-0.5, 1.5] and steps=4000: the preset shipped in 56164db (git history), 256k images',
           'cpu_new', f'{XEON}, alone'),
    scored('cpu, 4000 steps, training seed 1', 'the same with seed=1: its second training seed',
           'lowlogit_s1', f'{AVX512}, alone'),
    scored('cpu, 4000 steps, seed 42 on the EPYC', 'cpu, 4000 steps again, on the AVX-512 EPYC: the first run of the low-noise recipe (t_logit=[-0.5, 1.5])',
           'lowlogit', f'{AVX512}, alone'),
    dict(name='cpu, uniform steps', changes='4000 uniform training steps (t_logit=None, steps=4000): the cpu preset until 2026-12-02 (its checkpoint: 7301cf0 in the git history)',
         training=dict(minutes=30.1, img_s=143, steps=4000, images=256_000, threads=2, machine='2-core AMD EPYC, alone', note='measured when it was trained')),
    scored('cpu, uniform steps, training seed 1', 'the same with seed=1 (bench/grain_training.py): its second training seed',
           'grain_training', '2-core AMD EPYC, one thread, sharing the cores with two other jobs', threads=1),
    dict(name='cpu64', changes='size 64, 4x4 patches (the cpu64 preset, uniform steps): the same network and grids at the course size',
         run='cpu64', summary='cpu64_eval/summary.json', threads=1, machine='2-core AMD EPYC, one thread, sharing the cores with one or two other jobs'),
    scored('cpu, four renders', 'uniform steps, on four renders of train.json (seeds 0-3, 72k scenes; bench/fresh_renders.py): 3.6 passes over the data instead of 14',
           'fresh_renders', EPYC_AVX2),
    scored('cpu, lr 3e-3', 'uniform steps and lr=3e-3 instead of 2e-3 (the same warm-up and cosine decay to a tenth)',
           'lr3e-3', f'{AVX512}; pytest ran beside it for about 7 of its minutes'),
    scored('cpu, logit-normal steps', 't_logit=[0, 1]: training steps drawn logit-normal around the middle (Esser et al. 2024)',
           'logitnormal', f'{AVX512}, alone'),
    scored('cpu, p_uncond 0.2', 'uniform steps and p_uncond=0.2: the null label in one training row in five instead of ten',
           'puncond0.2', f'{AVX512}; a one-thread sampling job ran beside it for about 13 of its minutes'),
]
FILES = ('test.json', 'new_test.json', 'heldout.json', 'novel.json')
OURS = ('heldout.json', 'novel.json')


def lower_judge(mean):
    "The score recipes are chosen on: the lower of the two judges' means over our own lists; mean(file, judge) -> accuracy."
    return min(sum(mean(f, j) for f in OURS) / len(OURS) for j in ('evaluator', 'judge2'))


def training(run):
    "Minutes, mean images/s, steps and images seen of a run folder, from its log.jsonl (logged every 50 steps; the exact step count from its ckpt.pt when there is one)."
    log = [json.loads(l) for l in (Path(run) / 'log.jsonl').read_text().splitlines()]
    cfg = json.loads((Path(run) / 'config.json').read_text())
    per = [log[0]['step']] + [b['step'] - a['step'] for a, b in zip(log, log[1:])]
    seconds = sum(n * cfg['batch_size'] / r['img_s'] for n, r in zip(per, log))
    steps = load_checkpoint(Path(run) / 'ckpt.pt')['step'] if (Path(run) / 'ckpt.pt').is_file() else log[-1]['step']
    return dict(minutes=round(seconds / 60, 1), img_s=round(log[-1]['step'] * cfg['batch_size'] / seconds, 1),
                steps=steps, images=steps * cfg['batch_size'])


def entry(recipe, runs):
    "A recipe's log entry from its run and its summary, or None when they are not on this machine."
    at = lambda p: Path(p) if Path(p).is_absolute() else Path(runs) / p
    if 'summary' not in recipe or not at(recipe['summary']).is_file() or ('run' in recipe and not at(recipe['run']).is_dir()): return None
    summ = json.loads(at(recipe['summary']).read_text())
    train = recipe.get('training') or dict(training(at(recipe['run'])), threads=recipe['threads'], machine=recipe['machine'])
    judged = lambda f, j: dict(mean=round(summ['files'][f][j]['mean'], 4), std=round(summ['files'][f][j]['std'], 4))
    files = {f: dict(evaluator=judged(f, 'accuracy'), judge2=judged(f, 'judge2'), grain=round(summ['files'][f]['grain']['mean'], 2),
                     floor_colour=round(summ['files'][f]['saturation']['mean'], 2)) for f in FILES}
    lower = lower_judge(lambda f, j: files[f][j]['mean'])
    return dict(name=recipe['name'], changes=recipe['changes'], training=train, training_seeds=1, size=summ['size'],
                sampling={k: summ[k] for k in ('sampler', 'steps', 'w')}, seeds=summ['seeds'], files=files, score=round(lower, 4))


def committed(recipe, kept):
    "A recipe's entry in the committed log (None if it has none), with its `changes` text from RECIPES."
    return kept[recipe['name']] | dict(changes=recipe['changes']) if recipe['name'] in kept else None


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--runs', default='runs/recipes')
    a = P.parse_args()
    path = RESULTS_DIR / 'recipes.json'
    kept = {e['name']: e for e in json.loads(path.read_text())} if path.is_file() else {}
    log = [e for e in (entry(r, a.runs) or committed(r, kept) for r in RECIPES) if e]
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(log, indent=1)))
    cell = lambda e, f, j: f"{e['files'][f][j]['mean']:.3f} ± {e['files'][f][j]['std']:.3f}"
    print('| recipe | size | minutes | img/s | images | ' + ' | '.join(f'{Path(f).stem} (ev / j2)' for f in FILES) + ' | grain | floor colour | score |')
    print('|---' * (8 + len(FILES)) + '|')
    for e in log:
        t = e['training']
        where = f"{t['threads']} thr." if isinstance(t['threads'], int) else t['threads']   # CPU threads, or the GPU
        print(f"| {e['name']} | {e['size']} | {t['minutes']} ({where}) | {t['img_s']} | {t['images'] // 1000}k | "
              + ' | '.join(f"{cell(e, f, 'evaluator')} / {cell(e, f, 'judge2')}" for f in FILES)
              + f" | {e['files']['heldout.json']['grain']} | {e['files']['heldout.json']['floor_colour']} | **{e['score']:.3f}** |")
    for name in dict.fromkeys(e['name'] for e in log):   # in table order   # a recipe with more training seeds: the mean over them, per file and judge
        runs = [e for e in log if e['name'] == name or e['name'].startswith(f'{name}, training seed')]
        if len(runs) > 1:
            mean = lambda f, j: sum(e['files'][f][j]['mean'] for e in runs) / len(runs)
            print(f"\n{name}, mean of {len(runs)} training seeds: " + ', '.join(
                f"{Path(f).stem} {mean(f, 'evaluator'):.3f} / {mean(f, 'judge2'):.3f}" for f in FILES) + ' (evaluator / judge2)')


if __name__ == '__main__':
    main()
