"""Can training take the grain away at its source? A term that makes the two predictions agree, or guidance distilled.

Guidance multiplies the disagreement out_c - out_u of the conditional and unconditional predictions
(bench/grain_sources.py), and in the last steps that disagreement's fine detail is the grain. This fine-tunes the
shipped checkpoint from its weights once per arm, every arm on the same batches, noise and steps (paired):
- `control`: the preset's own loss; what further training alone does to the grain;
- `agree L`: the same loss plus L times the mean square of the disagreement's fine detail in the space of predicted
  clean images, sigma_t * highpass(out_c - out_u) (x0 = a x_t - sigma_t v, highpass = the image minus its Gaussian blur,
  sigma 1 px), over the conditioned samples at t < T/2, where the grain is made. The unconditional prediction is one
  more forward pass on those samples, and the gradient flows through both;
- `distil W`: guidance distillation (Meng et al. 2023, at one fixed weight): the conditional prediction regresses, with
  the preset's weighting over t, on the frozen shipped network's guided prediction (1+W) out_c - W out_u at the same
  noised images, so the result samples with one forward pass a step and no guidance (w = 0, its recommended setting).
  Guidance multiplies whatever the two predictions disagree on; a student fits the guided output instead, and the
  question is whether it keeps the fine detail that is grain. `distil W blur S [below T]` distils a target whose
  guidance direction is low-passed with a Gaussian of S pixels (at times t <= T; sampling.cfg_model's blur), the
  sampling-side cut of bench/grain_sources.py moved into the network. Its sampling time is measured beside the shipped
  checkpoint's on test.json (guided: a doubled batch a step), alternated in one process.
Each arm runs `--steps` steps at the preset's final learning rate (lr * lr_min, reached by a linear warm-up over the
first WARMUP steps, since a fresh AdamW's first steps are full-size), with an EMA of decay EMA started from the shipped
weights and its checkpoint every 100 steps (resumable). The EMA weights of each arm, and the shipped checkpoint,
sample test.json + heldout.json (96 lists, DDPM 50, w = 3, a distilled arm w = 0, sampling seed 0): grain and floor colour against renders
(evaluation.cleanliness) and both judges' accuracy; --also-w samples each arm at more guidance weights. --confirm
ARM ... scores arms (or 'shipped') over sampling seeds 0-4 on our own lists (heldout + novel, both judges; score = the
lower judge, bench/choose_sampler.py's rule) and their differences from the shipped checkpoint seed by seed. Rows go
to results/grain_agreement.json as they are measured; a rerun skips what it has.
Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python bench/grain_agreement.py [--arms control 'agree 300'] [--steps 1000] [--also-w W ...]
       [--confirm ARM ...] [--runs runs/grain_agreement]
(an arm: about 28 minutes for the control, 50 with the term, at one thread of an AVX2 EPYC beside another job)
(a distilled arm: 48-52 minutes, `ddpm-lab distil`'s loop; the committed results: --arms control 'agree 300' 'distil 3'
 'distil 3 blur 1' 'distil 3 blur 1 below 0.2' --also-w 6 12 --confirm shipped control 'agree 300' 'distil 3' 'distil 3 blur 1'
 'distil 3 blur 1 below 0.2')
"""
import argparse, copy, json, statistics, time
from pathlib import Path
import torch
from torchvision.transforms.v2.functional import gaussian_blur
from ddpm_lab.ablations import machine
from ddpm_lab.data import DATA_DIR, RESULTS_DIR, atomic_write, encode, file_md5, normalize, read_labels
from ddpm_lab.evaluation import JUDGE2_PATH, cleanliness, course_accuracy, load_evaluator, predict, reference
from ddpm_lab.pipeline import load_checkpoint, load_pipeline, save_checkpoint
from ddpm_lab.sampling import distil_guidance, sample
from ddpm_lab.train import ema_update, min_snr_weight, step_seed, training_data, training_steps
from choose_sampler import FILES as OWN, judged_cells, run as seed_run, score

SHIPPED = DATA_DIR / 'weights' / 'cpu.pt'
FILES = ('test.json', 'heldout.json')
HALF = 0.5   # the term covers t < HALF * T
WARMUP, EMA, STEPS = 100, 0.998, 1000


def highpass(d): return d - gaussian_blur(d, 5, 1.0)


def losses(net, sched, x0, c, cfg, g, agree):
    "The preset's diffusion loss (train.diffusion_loss, same random draws) and the agreement term."
    B = x0.shape[0]
    t = training_steps(B, sched.T, cfg['t_logit'], g, x0.device)
    noise = torch.randn(x0.shape, generator=g, device=x0.device)
    keep = torch.rand(B, generator=g, device=x0.device) >= cfg['p_uncond']
    xt = sched.q_sample(x0, t, noise)
    inp, tm = sched.model_input(cfg['pred'], xt, t), sched.model_time(t)
    out = net(inp, tm, c * keep[:, None])
    err = (out.float() - sched.target(cfg['pred'], x0, noise, t)).pow(2).mean((1, 2, 3))
    main = (err * min_snr_weight(sched.snr(t).float(), cfg['min_snr'], cfg['pred'])).mean()
    sel = keep & (t < HALF * sched.T)
    if not agree or not sel.any(): return main, torch.zeros(())
    out_u = net(inp[sel], tm[sel], torch.zeros_like(c[sel]))
    sigma = (1 - sched.at(sched.alpha_bar, t[sel], x0)).sqrt().float()
    term = (sigma * highpass(out[sel].float() - out_u.float())).pow(2).mean((1, 2, 3)).sum() / B
    return main, term


def parse(arm):
    "An arm's kind and number: 'control' -> ('control', 0.), 'agree 300' -> ('agree', 300.), 'distil 3' (or 'distil 3 blur 1 ...') -> ('distil', 3.)."
    kind, _, rest = arm.partition(' ')
    value, _, extra = rest.partition(' ')
    if kind not in ('control', 'agree', 'distil') or (kind == 'control') != (value == '') or (extra and kind != 'distil'):
        raise SystemExit(f"unknown arm {arm!r}: use 'control', 'agree L', 'distil W' or 'distil W blur S [below T]'")
    return kind, float(value or 0)


def low_pass(arm):
    "The low-pass of a distilled arm's target (sampling.cfg_model's blur): 'distil 3 blur 1 below 0.2' -> dict(blur=1., blur_below=0.2); none: blur 0."
    words = arm.split()[2:]
    opts = dict(zip(words[::2], words[1::2]))
    if len(words) % 2 or set(opts) - {'blur', 'below'}: raise SystemExit(f"unknown arm {arm!r}: use 'distil W blur S [below T]'")
    return dict(blur=float(opts.get('blur', 0)), blur_below=float(opts.get('below', 1)))


def finetune(arm, steps, folder):
    "Fine-tune the shipped weights for `steps` steps (resumable); returns the exported EMA checkpoint."
    kind, value = parse(arm)
    if kind == 'distil': return distil_guidance(SHIPPED, folder, w=value, steps=steps, ema=EMA, warmup=WARMUP, device='cpu', **low_pass(arm))   # the library's loop, the same draws
    final = folder / 'final.pt'
    if final.is_file(): return final
    pipe = load_pipeline(SHIPPED, device='cpu'); cfg, sched = pipe.config, pipe.schedule
    net = pipe.net.train(); ema = copy.deepcopy(net).eval()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg['lr'] * cfg['lr_min'], betas=cfg['adam_betas'], weight_decay=0.)
    imgs, conds = training_data(cfg)
    ckpt, step, log = folder / 'ckpt.pt', 0, []
    if ckpt.is_file():
        ck = load_checkpoint(ckpt)
        net.load_state_dict(ck['model']); ema.load_state_dict(ck['ema']); opt.load_state_dict(ck['opt'])
        step, log = ck['step'], ck['log']
    g, t0 = torch.Generator(), time.time() - (ck.get('seconds', 0) if ckpt.is_file() else 0)
    while step < steps:
        seed = step_seed(cfg['seed'], 0, step); g.manual_seed(seed)
        idx = torch.randint(len(imgs), (cfg['batch_size'],), generator=g)
        main, term = losses(net, sched, normalize(imgs[idx]), conds[idx], cfg, g, value)
        for group in opt.param_groups: group['lr'] = cfg['lr'] * cfg['lr_min'] * min(1., (step + 1) / WARMUP)
        opt.zero_grad(set_to_none=True)
        (main + value * term).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg['grad_clip'])
        opt.step(); step += 1
        ema_update(ema, net, EMA, 10**6)   # 10**6: as if late in a run, the full decay from the first step
        log.append([main.item(), term.item()])
        if step % 100 == 0 or step == steps:
            save_checkpoint(ckpt, dict(config=cfg, model=net.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step, log=log, seconds=time.time() - t0))
            m = torch.tensor(log[-100:]).mean(0)
            print(f'{arm}: step {step} loss {m[0]:.5f} disagreement {m[1]:.2e} ({time.time() - t0:.0f} s)', flush=True)
    save_checkpoint(final, dict(config=cfg | dict(finetune=dict(arm=arm, steps=steps, half=HALF, warmup=WARMUP, ema=EMA, minutes=round((time.time() - t0) / 60, 1))),
                                model=ema.state_dict(), ema=None, step=cfg['steps'] + steps))
    return final


def measure(ckpt, cond, refs, judges, w=3.):
    "Grain, floor colour and both judges' accuracy of one checkpoint's samples of the 96 lists (DDPM 50, seed 0)."
    t0 = time.time()
    x = sample(load_pipeline(ckpt, device='cpu'), cond, sampler='ddpm', steps=50, w=w, seed=0)
    c = cleanliness(x, refs)
    acc = {name: round(course_accuracy(predict(j, x), cond), 4) for name, j in judges.items()}
    return dict(grain=round(c['grain'], 3), floor_colour=round(c['saturation'], 3), **acc, seconds=round(time.time() - t0))


def speed(ckpt, repeats=3):
    "Seconds to sample test.json's 32 lists (DDPM 50, the hand-in's batch): the shipped checkpoint guided (a doubled batch a step) and `ckpt` unguided, alternated, median of `repeats`."
    cond = encode(read_labels(DATA_DIR / 'test.json'))
    pipes = dict(shipped=(load_pipeline(SHIPPED, device='cpu'), 3.), distilled=(load_pipeline(ckpt, device='cpu'), 0.))
    times = {k: [] for k in pipes}
    for _ in range(repeats):
        for k, (pipe, w) in pipes.items():
            t0 = time.perf_counter(); sample(pipe, cond, sampler='ddpm', steps=50, w=w, seed=0); times[k].append(time.perf_counter() - t0)
    med = {k: round(statistics.median(v), 1) for k, v in times.items()}
    return dict(seconds=med, ratio=round(med['shipped'] / med['distilled'], 2), threads=torch.get_num_threads(), repeats=repeats)


def weights(arm, runs):
    "The exported weights of a fine-tuned arm under the runs folder."
    return Path(runs) / arm.replace(' ', '_') / ('distilled.pt' if parse(arm)[0] == 'distil' else 'final.pt')


def sampling_w(arm):
    "The guidance weight an arm samples with: 3, the default, and 0 for a distilled network (one pass a step: its own output is guided)."
    return 0. if arm != 'shipped' and parse(arm)[0] == 'distil' else 3.


def per_seed(summ):
    "Each judge's accuracy per sampling seed, the mean of our two lists (the seeds share their noise across arms: paired)."
    return {j: [round(sum(summ['files'][f][j]['values'][i] for f in OWN) / len(OWN), 4) for i in range(len(summ['seeds']))] for j in ('accuracy', 'judge2')}


def paired_lines(res, base='shipped'):
    "Per confirmed arm and judge: the mean over seeds of its difference from `base` on the same seed, with its standard error."
    def cell(arm, j):
        d = [a - b for a, b in zip(res['confirm'][arm]['per_seed'][j], res['confirm'][base]['per_seed'][j])]
        return f'{statistics.mean(d):+.3f} ± {statistics.stdev(d) / len(d) ** 0.5:.3f}'
    return ['| weights | evaluator: difference | judge2: difference |', '|---|---|---|'] + [
        f"| {describe(arm, res['meta']['steps'])} | {cell(arm, 'accuracy')} | {cell(arm, 'judge2')} |" for arm in res['confirm'] if arm != base]


def blurred(arm):
    "How a distilled arm's target low-passes its guidance direction, in words ('' for plain guidance)."
    lp = low_pass(arm)
    if not lp['blur']: return ''
    when = '' if lp['blur_below'] == 1 else f" while t <= {lp['blur_below']:g}"
    return f", direction low-passed (sigma {lp['blur']:g} px{when})"


def describe(row, steps):
    "A row's label in the docs: which weights, and the guidance weight when it is not the default's 3."
    arm, _, w = row.partition(', w = ')
    kind, value = ('shipped', 0) if arm == 'shipped' else parse(arm)
    what = dict(shipped='shipped, as it is', control=f'+ {steps} steps, the preset\'s loss', agree=f'+ {steps} steps, loss + {value:g} x agreement',
                distil=f'+ {steps} steps distilled from its own guidance at w = {value:g}{blurred(arm)}, sampled unguided')[kind]
    return what + (f', sampled at w = {w}' if w else '')


def table_lines(res):
    "The markdown table of the one-seed rows: per arm, grain, floor colour and both judges on the 96 lists."
    return ['| weights | grain | floor colour | evaluator | judge2 |', '|---|---|---|---|---|'] + [
        f"| {describe(arm, res['meta']['steps'])} | {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |" for arm, r in res['rows'].items()]


def confirm_lines(res):
    "The markdown table of the confirmed arms: each judge's mean ± std over seeds 0-4 on heldout and novel, cleanliness and the score."
    return ['| weights | heldout: evaluator | judge2 | novel: evaluator | judge2 | grain | floor colour | score |',
            '|---|---|---|---|---|---|---|---|'] + [f"| {describe(arm, res['meta']['steps'])} | {c['cells']} | {c['score']:.3f} |" for arm, c in res['confirm'].items()]


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--arms', nargs='+', default=['control', 'agree 300'], help="'control', 'agree L', 'distil W' or 'distil W blur S [below T]'")
    P.add_argument('--steps', type=int, default=STEPS)
    P.add_argument('--also-w', nargs='+', type=float, default=[], metavar='W', help='also sample each fine-tuned arm at these guidance weights')
    P.add_argument('--confirm', nargs='+', default=[], metavar='ARM')
    P.add_argument('--runs', default='runs/grain_agreement')
    P.add_argument('--json', default=str(RESULTS_DIR / 'grain_agreement.json'))
    a = P.parse_args()
    out = Path(a.json)
    res = json.loads(out.read_text()) if out.is_file() else dict(meta=dict(ckpt_md5=file_md5(SHIPPED), machine=machine(), steps=a.steps,
                                                                       sampling='DDPM 50, w = 3, sampling seed 0', lists=' + '.join(FILES)), rows={}, confirm={})
    save = lambda: atomic_write(out, lambda tmp: tmp.write_text(json.dumps(res, indent=1)))
    cond = encode(sum((read_labels(DATA_DIR / f) for f in FILES), []))
    refs = torch.cat([reference(DATA_DIR / f, 1, 32)[0] for f in FILES])
    judges = dict(evaluator=load_evaluator(), judge2=load_evaluator(JUDGE2_PATH))
    if 'shipped' not in res['rows']:
        res['rows']['shipped'] = dict(agree=None, **measure(SHIPPED, cond, refs, judges)); save()
        print('shipped', res['rows']['shipped'], flush=True)
    for arm in a.arms:
        if arm in res['rows']: continue
        kind, value = parse(arm)
        folder = Path(a.runs) / arm.replace(' ', '_'); folder.mkdir(parents=True, exist_ok=True)
        ckpt = finetune(arm, a.steps, folder)
        done = load_checkpoint(ckpt)['config']
        minutes = (done.get('finetune') or done['distilled']).get('minutes')   # None: a file written before the bench kept it
        res['rows'][arm] = dict(agree=value if kind == 'agree' else 0., **({'distil_w': value} if kind == 'distil' else {}),
                                train_minutes=minutes, **measure(ckpt, cond, refs, judges, sampling_w(arm))); save()
        print(arm, res['rows'][arm], flush=True)
    for arm in a.arms:   # the training log's first and last 100 steps: mean loss and mean agreement term (unweighted)
        if 'log' not in res['rows'][arm]:
            log = torch.tensor(torch.load(Path(a.runs) / arm.replace(' ', '_') / 'ckpt.pt', weights_only=True)['log'])
            log = log.reshape(len(log), -1)   # (loss, term) a step; a distilled arm logs its loss alone
            res['rows'][arm]['log'] = dict(first100=[round(v, 8) for v in log[:100].mean(0).tolist()], last100=[round(v, 8) for v in log[-100:].mean(0).tolist()])
            save()
        if parse(arm)[0] == 'distil' and 'speed' not in res['rows'][arm]:
            res['rows'][arm]['speed'] = speed(weights(arm, a.runs)); save()
            print(arm, 'sampling seconds', res['rows'][arm]['speed'], flush=True)
        for w in a.also_w if parse(arm)[0] != 'distil' else ():   # a distilled network sampled with guidance is guided twice
            label = f'{arm}, w = {w:g}'
            if label in res['rows']: continue
            res['rows'][label] = dict(agree=res['rows'][arm]['agree'], w=w, **measure(weights(arm, a.runs), cond, refs, judges, w)); save()
            print(label, res['rows'][label], flush=True)
    for arm in a.confirm:
        ckpt = SHIPPED if arm == 'shipped' else weights(arm, a.runs)
        summ = seed_run(ckpt, ('ddpm', 50, sampling_w(arm), False), [0, 1, 2, 3, 4], Path(a.runs) / arm.replace(' ', '_') / 'seeds')
        res['confirm'][arm] = dict(score=round(score(summ), 4), cells=judged_cells(summ), per_seed=per_seed(summ)); save()
        print(arm, res['confirm'][arm], flush=True)
    print('\n'.join(table_lines(res) + [''] + confirm_lines(res) + [''] + paired_lines(res)))

if __name__ == '__main__':
    main()
