"Failure modes a careless or unlucky user meets: each is a one-line error that names the file or option, exits non-zero, and loses nothing."
import json, os, random, signal, subprocess, sys, time, zipfile
import pytest, torch
from ddpm_lab.data import DATA_DIR, atomic_write
from ddpm_lab.train import get_config, train
from ddpm_lab.pipeline import load_checkpoint, save_checkpoint, export_checkpoint

TINY = ['--preset', 'tiny']


def one_line_error(r, *words):
    "A user error: exit 2, no traceback, one line on stderr that contains every word."
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]
    line = [l for l in r.stderr.splitlines() if 'error' in l][-1]
    for w in words: assert w in line, (w, line)


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp('tiny')
    train(get_config('tiny', steps=20), out=d / 'run')
    export_checkpoint(d / 'run' / 'ckpt.pt', d / 'tiny.pt')
    return d


@pytest.mark.parametrize('setting, word', [('ckpt_every=0', 'ckpt_every'), ('batch_size=0', 'batch_size'), ('steps=abc', 'steps'),
                                           ('lr=nan', 'lr'), ('steps=-5', 'steps'), ('amp=fp8', 'amp')])
def test_bad_settings_are_refused_when_parsed(cli, tmp_path, setting, word):
    r = cli('train', *TINY, '--out', tmp_path / 'run', '--set', setting)
    one_line_error(r, f'config {word}=')
    assert not (tmp_path / 'run').exists()   # refused before any work


@pytest.mark.parametrize('w', ['nan', 'inf', '-inf'])
def test_non_finite_guidance_is_refused(cli, tmp_path, tiny_ckpt, w):
    r = cli('sample', '--ckpt', tiny_ckpt / 'tiny.pt', '--labels', DATA_DIR / 'test.json', '--out', tmp_path, f'--w={w}')
    assert r.returncode == 2 and 'finite number' in r.stderr and not list(tmp_path.iterdir())


def test_eta_for_the_ancestral_sampler_is_refused(cli, tmp_path, tiny_ckpt):
    r = cli('sample', '--ckpt', tiny_ckpt / 'tiny.pt', '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--sampler', 'ddpm', '--eta', '0.7')
    one_line_error(r, 'eta=0.7', 'ddpm')


def test_diverging_run_names_no_phantom_checkpoint(cli, tmp_path):
    r = cli('train', *TINY, '--out', tmp_path, '--set', 'lr=1e9', 'steps=60', 'ckpt_every=5', 'warmup=1', 'grad_clip=null')
    one_line_error(r)
    msg = r.stderr
    if (tmp_path / 'ckpt.pt').exists():   # whatever was kept is finite and is the step the message names
        ck = load_checkpoint(tmp_path / 'ckpt.pt')
        assert f"(step {ck['step']}) was kept" in msg
        assert all(torch.isfinite(v).all() for v in ck['model'].values() if v.is_floating_point())
    else: assert 'no checkpoint was written' in msg


def test_non_finite_weights_are_never_saved(tmp_path):
    state = dict(config=get_config('tiny'), model={'w': torch.tensor([1., float('nan')])}, ema=None, step=3)
    with pytest.raises(FloatingPointError, match='NaN or inf'): save_checkpoint(tmp_path / 'ckpt.pt', state)
    assert not list(tmp_path.iterdir())


def _damage(path):
    "Flip bytes inside the largest tensor record of a torch zip file (stored uncompressed, so the archive stays readable)."
    with zipfile.ZipFile(path) as z: info = max((i for i in z.infolist() if '/data/' in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    n_name, n_extra = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], 'little'), int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], 'little')
    start = info.header_offset + 30 + n_name + n_extra   # the local header (its own extra field pads for alignment), then the bytes
    for i in range(start + 8, start + 40): raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_damaged_checkpoint_is_an_error_not_black_images(cli, tmp_path, tiny_ckpt):
    bad = tmp_path / 'bad.pt'; bad.write_bytes((tiny_ckpt / 'tiny.pt').read_bytes()); _damage(bad)
    r = cli('sample', '--ckpt', bad, '--labels', DATA_DIR / 'test.json', '--out', tmp_path / 'out')
    one_line_error(r, 'damaged')
    assert not (tmp_path / 'out').exists() or not list((tmp_path / 'out').glob('*.png'))


def test_damaged_evaluator_is_an_error(tmp_path):
    from ddpm_lab.evaluation import build_evaluator, save_evaluator, load_evaluator
    f = save_evaluator(build_evaluator(), tmp_path / 'ev.pth', half=True); _damage(f)
    with pytest.raises(ValueError, match='damaged'): load_evaluator(f)


def test_output_that_is_a_file_fails_before_sampling(cli, tmp_path, tiny_ckpt):
    f = tmp_path / 'taken'; f.write_text('mine')
    for cmd in (['sample', '--labels', DATA_DIR / 'test.json'], ['evaluate'], ['submit']):
        t0 = time.time()
        r = cli(*cmd, '--ckpt', tiny_ckpt / 'tiny.pt', '--out', f)
        one_line_error(r, 'existing file')
        assert f.read_text() == 'mine'
    r = cli('train', *TINY, '--out', f)
    one_line_error(r, 'existing file')


def test_export_refuses_to_replace_a_training_checkpoint(cli, tmp_path, tiny_ckpt):
    run = tiny_ckpt / 'run' / 'ckpt.pt'
    before = run.read_bytes()
    one_line_error(cli('export', '--ckpt', tiny_ckpt / 'tiny.pt', '--out', run), 'resumable training checkpoint')
    one_line_error(cli('export', '--ckpt', run, '--out', run), 'being exported')
    assert run.read_bytes() == before


def test_full_disk_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    f = tmp_path / 'ckpt.pt'; f.write_bytes(b'old')
    def full(obj, path, *a, **k):
        open(path, 'wb').write(b'partial'); raise RuntimeError('[enforce fail at inline_container.cc:642] . PytorchStreamWriter failed writing file data/0: file write failed')
    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(OSError, match='nothing was replaced'): atomic_write(f, lambda tmp: torch.save({}, tmp))
    assert f.read_bytes() == b'old' and [p.name for p in tmp_path.iterdir()] == ['ckpt.pt']


def test_bad_label_files_name_themselves(cli, tmp_path, tiny_ckpt):
    empty = tmp_path / 'empty.json'; empty.write_text('')
    one_line_error(cli('sample', '--ckpt', tiny_ckpt / 'tiny.pt', '--labels', empty, '--out', tmp_path / 'o'), 'empty.json', 'not valid JSON')
    none = tmp_path / 'none.json'; none.write_text('[]')
    one_line_error(cli('sample', '--ckpt', tiny_ckpt / 'tiny.pt', '--labels', none, '--out', tmp_path / 'o'), 'none.json', 'no label lists')


def test_one_entry_label_file_evaluates(tmp_path, tiny_ckpt):
    from ddpm_lab.evaluation import evaluate
    one = tmp_path / 'one.json'; one.write_text(json.dumps([['red cube', 'blue sphere']]))
    res = evaluate(tiny_ckpt / 'tiny.pt', labels_files=[one], steps=5, n_renders=2)
    assert res['results'][0]['frechet_floor'] is None and 0 <= res['results'][0]['accuracy'] <= 1


def test_long_label_files_run_in_batches_with_the_same_images(tiny_ckpt):
    from ddpm_lab.pipeline import load_pipeline
    from ddpm_lab.sampling import sample
    from ddpm_lab.data import encode, read_labels
    pipe = load_pipeline(tiny_ckpt / 'tiny.pt', device='cpu')
    cond = encode(read_labels(DATA_DIR / 'test.json') * 3)   # 96 lists
    kw = dict(sampler='ddpm', steps=5, w=2., seed=7)
    assert torch.equal(sample(pipe, cond, batch_size=40, **kw), sample(pipe, cond, batch_size=96, **kw))


def _train_cmd(out, *extra):
    return [sys.executable, '-m', 'ddpm_lab.cli', 'train', *TINY, '--out', str(out), *extra]


def test_one_run_per_output_folder(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    first = subprocess.Popen(_train_cmd(tmp_path, '--set', 'steps=100000', 'amp=fp32'), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):   # wait until the first run holds the folder
            if (tmp_path / '.lock.pid').exists(): break
            time.sleep(0.1)
        r = subprocess.run(_train_cmd(tmp_path, '--resume', '--set', 'steps=100000', 'amp=fp32'), env=env, capture_output=True, text=True, timeout=300)
        one_line_error(r, 'in use by another training run', f'process {first.pid}')
    finally:
        first.kill(); first.wait()
    r = subprocess.run(_train_cmd(tmp_path, '--resume', '--set', 'steps=5', 'amp=fp32'), env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]   # the dead owner's lock is taken over


def test_corrupt_image_in_data_names_the_file(cli, tmp_path):
    from PIL import Image
    names = {f'CLEVR_train_{i:06d}_0.png': ['red cube'] for i in range(40)}
    for n in names: Image.new('RGB', (32, 24), (90, 90, 90)).save(tmp_path / n)
    (tmp_path / 'CLEVR_train_000007_0.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
    (tmp_path / 'train.json').write_text(json.dumps(names))
    r = cli('train', *TINY, '--data', tmp_path, '--out', tmp_path / 'run', '--set', 'steps=2', 'batch_size=8')
    one_line_error(r, 'CLEVR_train_000007_0.png')


def _announced(out, *args, env):
    "Start a training process and wait for its announcement, after which the training loop starts: (process, stdout so far)."
    p = subprocess.Popen(_train_cmd(out, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [p.stdout.readline()]
    while lines[-1] and ' -> ' not in lines[-1]: lines.append(p.stdout.readline())
    return p, ''.join(lines)


def test_sigterm_at_random_points_resumes_bitwise(tmp_path):
    "Stopped by SIGTERM at random moments (before the loop and inside it) and resumed each time, a run ends with exactly the weights of an uninterrupted one."
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    args, steps = ['--set', 'steps=30', 'ckpt_every=1000', 'log_every=1000', 'amp=fp32'], 30
    p, _ = _announced(tmp_path / 'full', *args, env=env)
    t0 = time.time(); out, err = p.communicate(timeout=300); loop = time.time() - t0   # the loop's time at this machine's speed now
    assert p.returncode == 0, err[-2000:]
    cut, rng, stops = tmp_path / 'cut', random.Random(0), 0
    for attempt in range(7):                 # the stop times scale with the machine: nothing here assumes its speed
        done = load_checkpoint(cut / 'ckpt.pt')['step'] if (cut / 'ckpt.pt').exists() else 0
        if attempt % 3 == 0:                 # during start-up: the process dies before it has anything to save
            p = subprocess.Popen(_train_cmd(cut, '--resume', *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(rng.uniform(0., 0.5))
        else:                                # inside the loop, somewhere in the first 70% of what is left
            p, _ = _announced(cut, '--resume', *args, env=env)
            time.sleep(rng.uniform(0.1, 0.7) * loop * (steps - done) / steps)
        p.send_signal(signal.SIGTERM); p.communicate(timeout=120)
        stops += p.returncode == 130         # stopped in the loop, checkpoint written
    assert stops >= 2, f'only {stops} stops landed inside the training loop'
    p = subprocess.run(_train_cmd(cut, '--resume', *args), env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = load_checkpoint(tmp_path / 'full' / 'ckpt.pt'), load_checkpoint(cut / 'ckpt.pt')
    assert b['step'] == a['step'] == steps and b['opt']['state'][0]['step'] == a['opt']['state'][0]['step']
    for k in ('model', 'ema'):
        assert all(torch.equal(a[k][n], b[k][n]) for n in a[k]), k
