"""The GPU recipe (issue 22.5) as one prepared run on one GPU, for sessions whose GPU time is short.

Trains side by side, for the same MINUTES: the `gpu` and `gpu64` presets (their step count fitted to the minutes, so
the learning rate finishes its schedule) and the reports' systems `contextunet` and `unet2d` (their own schedule,
cut at the minutes, with a snapshot every MINUTES / SNAPSHOTS: accuracy against training images seen). The
processes share the GPU (under CUDA MPS where it starts), so every img/s printed is a run's share of a busy GPU,
not the GPU alone. Then every final checkpoint is scored over sampling seeds 0-4 and every snapshot over seed 0,
each seed a separate `evaluate` (both judges, the four label files, the checkpoint's recommended sampler).
Writes OUT/<run>/ (training runs, eval/ folders) and JSON (default results/gpu_recipe.json).
Usage: python bench/gpu_recipe.py [--minutes 4.5] [--budget SECONDS] [--runs gpu gpu64 contextunet unet2d] [--out runs/gpu]
       python bench/gpu_recipe.py --tiny     (the same plumbing on the tiny preset, any device, a few minutes)
"""
import argparse, json, multiprocessing as mp, platform, shutil, subprocess, sys, time, traceback
from pathlib import Path
import torch   # importing does not start CUDA: start_mps still comes first
from ddpm_lab.data import DATA_DIR
from ddpm_lab.evaluation import EVAL_FILES, REF_SEED, evaluate, evaluate_seeds, reference
from ddpm_lab.pipeline import export_checkpoint, load_checkpoint, make_model
from ddpm_lab.train import Callback, get_config, save_run, train, training_data
from ddpm_lab.unet import n_params
from recipe_log import lower_judge

RUNS = {'gpu': ('gpu', True, {}), 'gpu64': ('gpu64', True, {}),   # name: (preset, fitted to the minutes?, overrides)
        'contextunet': ('contextunet', False, {}), 'unet2d': ('unet2d', False, {})}
TINY = {'tiny_fit': ('tiny', True, dict(steps=10_000)), 'tiny_cut': ('tiny', False, dict(steps=10_000))}
SEEDS = (0, 1, 2, 3, 4)


def _config(spec):
    preset, fitted, overrides = spec
    return get_config(preset, **overrides), fitted


def prepare(specs):
    "Render (or find in the cache) every training set and the evaluation references before the GPU work starts."
    t0, sizes = time.time(), set()
    for spec in specs:
        cfg, _ = _config(spec)
        if cfg['size'] not in sizes: training_data(cfg); sizes.add(cfg['size'])
    for size in sizes:
        for f in EVAL_FILES: reference(DATA_DIR/f, 10, size); reference(DATA_DIR/f, 1, size, REF_SEED + 1)
    print(f'prepared training sets and references at sizes {sorted(sizes)} in {time.time() - t0:.0f} s', flush=True)


def start_mps():
    "Start the CUDA MPS daemon (or use one already running) so the processes' kernels can run side by side; stop it if a CUDA process cannot start under it."
    if not shutil.which('nvidia-cuda-mps-control'): return 'not installed'
    try:
        subprocess.run(['nvidia-cuda-mps-control', '-d'], timeout=30)   # exits 1 when a daemon runs already: the check below decides
        subprocess.run([sys.executable, '-c', 'import torch; assert torch.ones(2, device="cuda").sum().item() == 2'], timeout=120, check=True)
        return 'running'
    except Exception as e:
        subprocess.run(['nvidia-cuda-mps-control'], input=b'quit\n', timeout=30)
        return f'failed ({type(e).__name__}), stopped'


class Snapshots(Callback):
    "Every `every` seconds, the weights as an exported checkpoint snap<step>.pt (accuracy against images seen)."
    def __init__(self, every, out): self.every, self.out, self.next = every, Path(out), time.time() + every
    def after_step(self, r):
        if time.time() < self.next: return
        self.next += self.every
        save_run(r); export_checkpoint(r.ckpt, self.out/f'snap{r.step}.pt', half=False)


def measured(out):
    "The config a finished run ended with (its checkpoint's: fitted steps, resolved precision) and its img/s (the mean over the second half of its log)."
    log = out/'log.jsonl'
    log = [json.loads(l) for l in log.read_text().splitlines()] if log.is_file() else []   # none before log_every steps
    late = [r['img_s'] for r in log[len(log) // 2:]] or [0.]
    return dict(config=load_checkpoint(out/'ckpt.pt')['config'], img_s=sum(late) / len(late))


def train_run(name, spec, out, minutes, snapshots):
    "One training process: the run's record (steps, images, seconds, img/s, snapshots), or its error."
    torch.set_num_threads(2)
    cfg, fitted = _config(spec)
    out, t0, rec = Path(out)/name, time.time(), dict(name=name, preset=spec[0], fitted=fitted, overrides=spec[2], minutes=minutes)
    rec['params'] = n_params(make_model(cfg))
    kw = dict(fit=minutes, probe=(100, 100) if cfg['warmup'] >= 200 else (5, 15)) if fitted else \
         dict(minutes=minutes, callbacks=[Snapshots(60 * minutes / snapshots, out)])
    try:
        try: res = train(cfg, out=out, **kw)
        except Exception as e:
            if not cfg['compile']: raise
            rec['compile_error'] = f'{type(e).__name__}: {e}'[:500]            # run again eagerly in the time that is left
            left = max(0.5, minutes - (time.time() - t0) / 60)
            out = out.with_name(name + '_eager'); cfg['compile'] = False
            res = train(cfg, out=out, **dict(kw, fit=left) if fitted else dict(kw, minutes=left))
        m = measured(out)
        rec.update(out=str(out), config_batch=cfg['batch_size'], steps=res['step'], finished=res['finished'], images=res['step'] * cfg['batch_size'],
                   train_s=round(time.time() - t0, 1), img_s=round(m['img_s'], 1), amp=m['config']['amp'], compile=m['config']['compile'],
                   scheduled_steps=m['config']['steps'], final_loss=sum(res['losses'][-50:]) / len(res['losses'][-50:]),
                   snapshots=sorted(int(p.stem[4:]) for p in out.glob('snap*.pt')))
    except Exception: rec['error'] = traceback.format_exc()[-3000:]
    print(f"{name}: {json.dumps({k: v for k, v in rec.items() if k != 'overrides'})[:600]}", flush=True)
    return rec


def eval_task(ckpt, seed, out):
    "One sampling seed of one checkpoint under both judges (evaluate writes out/results.json); None, or the error."
    torch.set_num_threads(2)
    try: evaluate(ckpt, seed=seed, out=out); return None
    except Exception: return f'{ckpt} seed {seed}: ' + traceback.format_exc()[-1500:]


def summarise(ckpt, out, seeds):
    "The mean and spread over the seeds that finished (reused from their folders, nothing sampled again)."
    done = [s for s in seeds if (Path(out)/f'seed{s}'/'results.json').is_file()]
    if not done: return None
    s = evaluate_seeds(str(ckpt), done, out=str(out), device="cpu")   # str, as eval_task gave it: the name evaluate records
    return dict(seeds=done, files={f: dict(evaluator=v['accuracy']['mean'], evaluator_std=v['accuracy']['std'], judge2=v['judge2']['mean'],
                                            judge2_std=v['judge2']['std'], grain=v['grain']['mean']) for f, v in s['files'].items()})


def evaluate_all(recs, workers, deadline):
    "Score the final checkpoints (seeds 0-4) and the snapshots (seed 0) in `workers` processes, stopping at `deadline` (time.time())."
    jobs = []   # (ckpt, seeds, eval folder, record it belongs to, images seen)
    for rec in recs:
        if 'error' in rec: continue
        out = Path(rec['out'])
        jobs.append((out/'ckpt.pt', SEEDS, out/'eval', rec, rec['images']))
        jobs += [(out/f'snap{s}.pt', SEEDS[:1], out/f'eval_snap{s}', rec, s * rec['config_batch']) for s in rec['snapshots'] if s < rec['steps']]   # the last may be the final one
    tasks = [(str(c), s, str(o/f'seed{s}')) for c, seeds, o, *_ in jobs for s in seeds]
    tasks.sort(key=lambda t: t[1])   # every checkpoint's seed 0 first, so a deadline costs seeds, not checkpoints
    errors, pool = [], mp.get_context('spawn').Pool(workers)
    try:
        pending = [pool.apply_async(eval_task, t) for t in tasks]
        for p in pending:
            left = deadline - time.time()
            if left <= 0: break
            try:
                if (e := p.get(timeout=left)): errors.append(e)
            except mp.TimeoutError: break
    finally: pool.terminate()
    for ckpt, seeds, out, rec, images in jobs:
        s = summarise(ckpt, out, seeds)
        if s is None: continue
        entry = dict(images=images, **s)
        if ckpt.name == 'ckpt.pt': rec['final'] = entry
        else: rec.setdefault('curve', []).append(entry)
    return errors


def row(rec, e=None):
    "A table row for a run's final checkpoint, or (e: an entry of its curve) for one of its snapshots."
    final, e = e is None, e or rec.get('final')
    if not e: return f"| {rec['name']} | {rec.get('error', 'not scored').strip().splitlines()[-1][:120]} |"
    f = e['files']
    acc = ' | '.join(f"{f[k]['evaluator']:.3f} / {f[k]['judge2']:.3f}" for k in f)
    low = lower_judge(lambda k, j: f[k][j])
    name, minutes = (rec['name'], f"{rec['train_s'] / 60:.1f}") if final else (f"{rec['name']}, snapshot", '')
    return (f"| {name} | {rec['params'] / 1e6:.1f}M | {e['images'] // rec['config_batch']} | {e['images'] / 1e6:.2f}M | {minutes} | "
            f"{rec['img_s']:.0f} | {acc} | {low:.3f} | {len(e['seeds'])} |")


def main():
    P = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    P.add_argument('--minutes', type=float, default=4.5, help='training minutes of every run (they run at the same time)')
    P.add_argument('--runs', nargs='+', default=list(RUNS), choices=list(RUNS))
    P.add_argument('--snapshots', type=int, default=4, help='snapshots of the report systems along their minutes')
    P.add_argument('--eval-minutes', type=float, default=2.5, help='stop scoring after this long (the seeds done so far are kept)')
    P.add_argument('--budget', type=float, default=None, help='seconds the whole script may take: scoring stops 20 s before (a lease ends)')
    P.add_argument('--workers', type=int, default=10, help='evaluation processes')
    P.add_argument('--out', default='runs/gpu')
    P.add_argument('--json', default='results/gpu_recipe.json')
    P.add_argument('--tiny', action='store_true', help='check the plumbing on the tiny preset (any device)')
    a = P.parse_args()
    t0, specs = time.time(), TINY if a.tiny else {n: RUNS[n] for n in a.runs}
    if a.tiny: a.minutes, a.eval_minutes, a.workers, a.json = min(a.minutes, 1.0), min(a.eval_minutes, 4), 2, str(Path(a.out)/'gpu_recipe.json')
    mps = start_mps() if shutil.which('nvidia-smi') and len(specs) > 1 else 'not used'   # before this process touches CUDA
    prepare(specs.values())
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or 'cpu'
    print(f'{gpu}, torch {torch.__version__}, MPS {mps}; training {list(specs)} for {a.minutes} minutes side by side', flush=True)
    with mp.get_context('spawn').Pool(len(specs)) as pool:
        recs = pool.starmap(train_run, [(n, s, a.out, a.minutes, a.snapshots) for n, s in specs.items()])
    t_eval = time.time()
    errors = evaluate_all(recs, a.workers, min(t_eval + 60 * a.eval_minutes, t0 + (a.budget or 1e9) - 20))
    result = dict(command=' '.join(['python bench/gpu_recipe.py'] + sys.argv[1:]), device=gpu, torch=torch.__version__, mps=mps,
                  minutes=a.minutes, train_wall_s=round(t_eval - t0, 1), eval_wall_s=round(time.time() - t_eval, 1), runs=recs, eval_errors=errors)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(result, indent=1))
    names = ' | '.join(f'{f} ev / j2' for f in ('test', 'new_test', 'heldout', 'novel'))
    print(f'\n| run | params | steps | images | minutes | img/s (shared GPU) | {names} | lower judge, heldout+novel | seeds |\n|' + '---|' * 12)
    for rec in recs:
        print(row(rec))
        for e in sorted(rec.get('curve', []), key=lambda e: e['images']): print(row(rec, e))
    base = next((r for r in recs if r['name'] == 'contextunet' and r.get('img_s')), None)   # the reports' baseline, in this run
    if base: print("img/s against report A's ContextUnet in this run: " + ', '.join(f"{r['name']} {r['img_s'] / base['img_s']:.2f}x" for r in recs if r.get('img_s')))
    for e in errors: print('evaluation error:', e.strip().splitlines()[-1])
    print(f'wrote {a.json}; {time.time() - t0:.0f} s in all')


if __name__ == '__main__': main()
