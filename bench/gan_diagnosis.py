"""Why the cpu GAN did not learn its labels, and a recipe that does (issue 23.3; notebook 06, last section).

Runs report D's DCGAN at the `cpu` GAN preset (32x32, batch 64), 1000 steps, with these generator losses:
  lambda1            0.8 x adversarial + 1.0 x classifier (report D: 0.2), the shipped evaluator in the loss
  lambda5            0.8 x adversarial + 5.0 x classifier, the shipped evaluator in the loss
  lambda5_judge2     the same with the second judge (data/weights/judge2.pth) in the loss instead: the evaluator that
                     scores it never took part in its training
  classifier_only    no adversarial term (0 x adversarial + 1.0 x classifier): how fast the classifier alone teaches
and two recipes whose label signal is learnt from real images during the game, with no frozen classifier in the loss
(so both judges are independent of the training), at the cpu preset's full 2500 steps:
  acgan              D reads the image alone and has a 24-label head trained on real labels; both weigh its BCE by 10
                     (at weight 1 its head had learnt little by step 500: 0.28 on renders of test.json)
  projection         projection discriminator (label embedding dotted with D's features), spectral norm
  acgan_spectral     acgan with spectral norm in D instead of BatchNorm (the cpu_acgan GAN preset)
  acgan_5000         acgan trained on to 5000 steps (continues the finished acgan run in a folder of its own)
  acgan_spectral_5000  acgan_spectral trained on to 5000 steps, the same way
  acgan_spectral_ema   acgan_spectral with an EMA copy of G (decay 0.999) that generates; its raw G, scored beside
                     it, is acgan_spectral's recipe and seed trained again (bit for bit only on the same CPU)
  acgan_cbn_ema      acgan_spectral_ema with the labels entering G through conditional BatchNorm (g_cond='cbn': every
                     BatchNorm's scale and shift linear in the labels) instead of only at its input
  acgan_resnet_ema   acgan_spectral_ema with a residual discriminator (d_arch='resnet', d_width=32: notebook 06, "A
                     residual discriminator") instead of the DCGAN one
  acgan_resnet_batch_ema  acgan_resnet_ema with BatchNorm instead of spectral norm in D (the better classifier of
                     bench/gan_head_probe.py)
(Report D's own weight, 0.2, is notebook 07's `cpu` GAN row: 2500 steps, 0.097 / 0.095.)
Each run lives in RUNS/<name> and resumes where it stopped; its log.jsonl records, every 50 steps, the pull of each
term (the norm of its weighted gradient at the generated images, gan.term_pulls). A finished run is scored over
sampling seeds 0-4 on the four evaluation files under both judges (saved in RUNS/<name>/eval and reused; a run with
an EMA copy of G is scored with it, and its raw G in RUNS/<name>/eval_raw). Runs recorded in results/gan_diagnosis.json
are read from there unless their folder holds a newer score.
`python bench/gan_diagnosis.py` runs (or resumes) what is missing, then writes results/gan_diagnosis.json and prints
a markdown table; `--only NAME` trains and scores one run and writes nothing else (two processes share the work).
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/gan_diagnosis.py [--only NAME] [--runs runs/gan_diagnosis]
"""
import argparse, json, platform, shutil
from pathlib import Path
import torch
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, normalize
from ddpm_lab.pipeline import load_checkpoint
from ddpm_lab.gan import get_gan_config, train_gan, as_generator, make_discriminator, load_generator, generate, with_defaults
from ddpm_lab.evaluation import evaluate_seeds, reference, course_accuracy, JUDGE2_PATH

RUNS = {'lambda1': dict(cls_weight=1.0, steps=1000), 'lambda5': dict(cls_weight=5.0, steps=1000),
        'lambda5_judge2': dict(cls_weight=5.0, steps=1000, evaluator=str(JUDGE2_PATH)),
        'classifier_only': dict(adv_weight=0., cls_weight=1.0, steps=1000),
        'acgan': dict(d_head='acgan', aux_weight=10., cls_weight=0., steps=2500),
        'projection': dict(d_head='projection', d_norm='spectral', cls_weight=0., steps=2500),
        'acgan_spectral': dict(d_head='acgan', aux_weight=10., d_norm='spectral', cls_weight=0., steps=2500),
        'acgan_5000': dict(d_head='acgan', aux_weight=10., cls_weight=0., steps=5000, start='acgan'),
        'acgan_spectral_5000': dict(d_head='acgan', aux_weight=10., d_norm='spectral', cls_weight=0., steps=5000, start='acgan_spectral'),
        'acgan_spectral_ema': dict(d_head='acgan', aux_weight=10., d_norm='spectral', cls_weight=0., steps=2500, g_ema=0.999),
        'acgan_cbn_ema': dict(d_head='acgan', aux_weight=10., d_norm='spectral', cls_weight=0., steps=2500, g_ema=0.999, g_cond='cbn'),
        'acgan_resnet_ema': dict(d_head='acgan', aux_weight=10., d_norm='spectral', cls_weight=0., steps=2500, g_ema=0.999, d_arch='resnet', d_width=32),
        'acgan_resnet_batch_ema': dict(d_head='acgan', aux_weight=10., d_norm='batch', cls_weight=0., steps=2500, g_ema=0.999, d_arch='resnet', d_width=32)}
SEEDS = [0, 1, 2, 3, 4]


def pulls(folder):
    "Mean pulls of G's loss terms over the logged steps of a run, early (first 500 steps) and late (the rest)."
    log = [json.loads(l) for l in (Path(folder) / 'log.jsonl').read_text().splitlines()]
    mean = lambda rows, k: sum(r.get(k, 0.) for r in rows) / max(1, len(rows))
    parts = dict(early=[r for r in log if r['step'] <= 500], late=[r for r in log if r['step'] > 500])
    return {p: dict(adv=mean(rows, 'pull_adv'), cls=mean(rows, 'pull_cls'), aux=mean(rows, 'pull_aux'), steps=len(rows) * 50) for p, rows in parts.items() if rows}


def head_accuracy(folder):
    "An ACGAN's label head as a classifier: its accuracy on 4 renders of each test file, and on G's images of them (seed 0)."
    ck = load_checkpoint(Path(folder) / 'ckpt.pt')
    if ck['config'].get('d_head') != 'acgan': return None
    D = make_discriminator(with_defaults(ck['config'])); D.load_state_dict(ck['disc']); D.eval()
    G, _ = load_generator(Path(folder) / 'ckpt.pt', device='cpu')
    head = lambda x, c: course_accuracy(D(x, c)[1], c)
    acc = {}
    with torch.no_grad():
        for f in ('test.json', 'new_test.json'):
            imgs, c = reference(DATA_DIR / f, 4, ck['config']['size'])
            acc[f] = dict(renders=round(head(normalize(imgs), c), 4), generated=round(head(generate(G, c[:len(c) // 4]), c[:len(c) // 4]), 4))
    return acc


def scores(summary_file):
    "Mean and spread per file under both judges, from an evaluate_seeds summary."
    summ = json.loads(Path(summary_file).read_text())
    return {f: dict(evaluator=v['accuracy']['mean'], evaluator_std=v['accuracy']['std'],
                    judge2=v['judge2']['mean'], judge2_std=v['judge2']['std']) for f, v in summ['files'].items()}


def run(name, runs):
    "Train (or resume) one run to the end and score it; returns its record."
    folder = Path(runs) / name
    if not (folder / 'eval' / 'summary.json').is_file():   # a run already scored is read back, wherever it was trained
        cfg = {k: v for k, v in RUNS[name].items() if k != 'start'}
        if 'start' in RUNS[name] and not folder.exists():   # continue a finished shorter run in a folder of its own
            folder.mkdir(parents=True)
            for f in ('ckpt.pt', 'log.jsonl'): shutil.copyfile(Path(runs) / RUNS[name]['start'] / f, folder / f)
        res = train_gan(get_gan_config('cpu', **cfg), out=folder, resume=True)
        evaluate_seeds(as_generator(res['ckpt'], device='cpu'), SEEDS, out=folder / 'eval')
        if cfg.get('g_ema'): evaluate_seeds(as_generator(res['ckpt'], device='cpu', ema=False), SEEDS, out=folder / 'eval_raw')
    steps = json.loads((folder / 'log.jsonl').read_text().splitlines()[-1])['step']
    changes = {k: Path(v).name if k == 'evaluator' else v for k, v in RUNS[name].items() if k != 'start'}
    rec = dict(run=name, changes=changes, steps=steps, pulls=pulls(folder), label_head=head_accuracy(folder), files=scores(folder / 'eval' / 'summary.json'))
    return rec | (dict(raw_g=scores(folder / 'eval_raw' / 'summary.json')) if RUNS[name].get('g_ema') else {})


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--only', choices=list(RUNS))
    P.add_argument('--runs', default='runs/gan_diagnosis')
    a = P.parse_args()
    if a.only: return run(a.only, a.runs)
    path = RESULTS_DIR / 'gan_diagnosis.json'
    done = {r['run']: r for r in json.loads(path.read_text())['runs']} if path.is_file() else {}
    fresh = lambda n: (Path(a.runs) / n / 'eval' / 'summary.json').is_file() or n not in done
    recs = [run(n, a.runs) if fresh(n) else done[n] for n in RUNS]
    meta = dict(machine=f'{platform.machine()} CPU, torch {torch.__version__}', preset='cpu GAN (32x32, batch 64), steps as each run says', seeds=SEEDS)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(dict(meta=meta, runs=recs), indent=1)))
    print('| G loss | pull adv / cls / aux (steps <= 500) | pull adv / cls / aux (later) | file | evaluator | judge2 |\n|---|---|---|---|---|---|')
    for r in recs:
        p = lambda part: ' / '.join(f"{r['pulls'][part][k]:.3f}" for k in ('adv', 'cls', 'aux')) if part in r['pulls'] else '-'
        for f, v in r['files'].items():
            print(f"| {r['run']} | {p('early')} | {p('late')} | {f} | {v['evaluator']:.3f} ± {v['evaluator_std']:.3f} | {v['judge2']:.3f} ± {v['judge2_std']:.3f} |")
        for f, v in r.get('raw_g', {}).items():
            print(f"| {r['run']}, raw G | | | {f} | {v['evaluator']:.3f} ± {v['evaluator_std']:.3f} | {v['judge2']:.3f} ± {v['judge2_std']:.3f} |")
    print('\n| ACGAN run | label head on renders (test / new_test) | label head on its G images (test / new_test) |\n|---|---|---|')
    for r in recs:
        h = r['label_head']
        if h: print(f"| {r['run']} | {h['test.json']['renders']:.3f} / {h['new_test.json']['renders']:.3f} | {h['test.json']['generated']:.3f} / {h['new_test.json']['generated']:.3f} |")


if __name__ == '__main__':
    main()
