"A student's path: notebooks from any folder (and Colab's install cell), one device convention, the course's real-data layout, the hand-in."
import configparser, json, os, subprocess, sys
from pathlib import Path
import pytest, torch
import ddpm_lab.data as D
import ddpm_lab.train as T
from ddpm_lab.data import DATA_DIR, get_device, device_precision
from ddpm_lab.train import get_config, train, fast_path
from ddpm_lab.pipeline import load_checkpoint, export_checkpoint

ROOT = Path(__file__).resolve().parents[1]
NBS = sorted((ROOT / 'nbs').glob('*.ipynb'))
cells = lambda nb: [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']

# one real cell per notebook (a unique piece of its source) that reads files: run after the setup cell from a foreign folder
REAL_CELL = {'00_data': "train = read_labels(DATA_DIR / 'train.json')", '00a_render': "train = read_labels(DATA_DIR / 'train.json'); test = read_labels", '01_schedule': "sch = Schedule.from_name('linear', 1000)\nprint(sch)",
             '02_unet': 'blk = ConvBlock(3, 16, residual=True)', '02a_pipeline': "cpu = load_pipeline(DATA_DIR/'weights'/'cpu.pt')", '03_train': 'from matplotlib.image import imread',
             '04_sampling': 'from ddpm_lab.data import DATA_DIR, show_grid, normalize', '05_evaluation': 'hist = json.loads(EVALUATOR_PATH',
             '07_ablations': 'from ddpm_lab.data import RESULTS_DIR as RESULTS', '06_gan': "cfg = get_gan_config('tiny', cls_weight_end=0.5)",
             '08_cli': "a = P.parse_args(['render'", 'index': 'from ddpm_lab.data import DATA_DIR, encode, show_grid'}
PRELUDE = """import json, math, tempfile, time, torch, matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from pathlib import Path
from IPython.display import display, Markdown, Image
from fastcore.test import *"""


def test_every_notebook_starts_with_the_setup_cell():
    ini = configparser.ConfigParser(delimiters=['=']); ini.read(ROOT / 'settings.ini')
    git_url = ini['DEFAULT']['git_url']
    assert {nb.stem for nb in NBS} == set(REAL_CELL)
    for nb in NBS:
        first = cells(nb)[0]
        assert first.startswith('# Setup: in Colab'), nb.name
        assert f"REPO = '{git_url}'" in first, f'{nb.name}: REPO must be settings.ini git_url {git_url}'
        assert 'get_device()' in first and 'pip' in first


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_setup_and_a_real_cell_run_from_another_folder(nb, tmp_path):
    "The setup cell, the notebook's exports (as the package holds them) and one real cell, run from a folder outside the repository."
    src = cells(nb)
    real = [c for c in src if REAL_CELL[nb.stem] in c]
    assert len(real) == 1, f'{nb.name}: the real cell {REAL_CELL[nb.stem]!r} is gone; pick another'
    mod = next((c.split()[-1] for c in src if c.startswith('#| default_exp')), None)
    exports = f'import ddpm_lab.{mod} as _m; globals().update({{k: v for k, v in vars(_m).items() if not k.startswith("__")}})' if mod else ''
    script = '\n\n'.join([src[0], PRELUDE, exports, real[0]])   # exports: what the notebook's export cells define, private names too
    (tmp_path / 'run.py').write_text(script)
    r = subprocess.run([sys.executable, 'run.py'], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'ddpm_lab on cpu' in r.stdout or 'ddpm_lab on cuda' in r.stdout


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert get_device() == torch.device('cuda') and get_device('auto') == torch.device('cuda')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: True)
    assert get_device() == torch.device('mps')
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    assert get_device() == torch.device('cpu') and get_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='no CUDA GPU'): get_device('cuda')


@pytest.mark.parametrize('cc, name, want', [((7, 5), 'T4', 'fp16'), ((7, 0), 'V100', 'fp16'), ((8, 0), 'A100', 'bf16'), ((8, 9), 'L4', 'bf16'), ((9, 0), 'H100', 'bf16')])
def test_gpu_precision_follows_the_hardware(monkeypatch, cc, name, want):
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *a: cc)
    cuda = torch.device('cuda')
    assert device_precision(cuda) == want
    assert fast_path(get_config('cpu'), cuda) == (want, True)
    if want == 'fp16':
        with pytest.raises(ValueError, match='no bf16 units'): fast_path(get_config('cpu', amp='bf16'), cuda)
    assert fast_path(get_config('cpu', amp='fp32'), cuda) == ('fp32', True)


def test_fp16_needs_cuda_and_mps_trains_in_fp32():
    with pytest.raises(ValueError, match='needs a CUDA GPU'): fast_path(get_config('tiny', amp='fp16'), torch.device('cpu'))
    assert fast_path(get_config('tiny'), torch.device('mps')) == ('fp32', True)


def test_the_precision_is_printed_and_recorded(tmp_path, capsys):
    train(get_config('tiny', steps=3, amp='fp32'), out=tmp_path, device='cpu')
    assert 'on cpu (fp32, channels_last)' in capsys.readouterr().out
    assert load_checkpoint(tmp_path / 'ckpt.pt')['config']['amp'] == 'fp32'
    assert json.loads((tmp_path / 'config.json').read_text())['amp'] == 'fp32'


def test_every_model_command_takes_device(cli):
    for cmd in ('train', 'sample', 'evaluate', 'submit', 'train-evaluator', 'quickstart', 'ablate'):
        assert '--device' in cli(cmd, '--help').stdout, cmd


def test_cache_goes_to_a_writable_folder_for_an_installed_package(tmp_path, monkeypatch):
    pkg = tmp_path / 'site-packages' / 'ddpm_lab'; (pkg / '_data').mkdir(parents=True)
    loc = D._locations(pkg)
    assert loc['data'] == pkg / '_data' and not loc['clone']
    monkeypatch.delenv('DDPM_LAB_CACHE', raising=False); monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert D._cache_dir(loc) == tmp_path / 'cache' / 'ddpm_lab'   # never inside the installed package
    assert D._locations(ROOT / 'ddpm_lab')['clone'] and D._locations(ROOT / 'ddpm_lab')['data'] == ROOT / 'data'


def test_missing_label_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='DDPM_LAB_DATA'): D.load_vocab(tmp_path / 'objects.json')


def test_shipped_weights_are_never_overwritten(tmp_path):
    from ddpm_lab.evaluation import train_evaluator, EVALUATOR_PATH
    before = EVALUATOR_PATH.read_bytes()
    with pytest.raises(ValueError, match='shipped evaluator'): train_evaluator(EVALUATOR_PATH, n_scenes=8, epochs=1)
    assert EVALUATOR_PATH.read_bytes() == before
    for nb in NBS:   # no notebook cell writes under data/weights
        for c in cells(nb):
            assert 'train_evaluator(EVALUATOR_PATH' not in c and "--out data/weights" not in c and "weights'/'cpu.pt', out" not in c, nb.name


def course_folder(root, n=40):
    "A folder in the course's layout: CLEVR_train_NNNNNN_K.png at 320x240 RGBA, and a train.json naming them."
    from PIL import Image
    from ddpm_lab.render import render
    train_json = json.loads((DATA_DIR / 'train.json').read_text())
    names = list(train_json)[:n]
    imgs = render([train_json[k] for k in names], size=(240, 320), keys=names)
    for k, im in zip(names, imgs):
        rgba = torch.cat([im, torch.full((1, 240, 320), 255, dtype=torch.uint8)])
        Image.fromarray(rgba.permute(1, 2, 0).numpy(), mode='RGBA').save(root / k)
    (root / 'train.json').write_text(json.dumps({k: train_json[k] for k in names}))
    return names


def test_the_course_layout_trains_and_the_course_evaluator_loads(cli, tmp_path):
    from ddpm_lab.data import ICLEVR
    from ddpm_lab.evaluation import build_evaluator, load_evaluator
    data = tmp_path / 'iclevr'; data.mkdir()
    names = course_folder(data)
    ds = ICLEVR(data, data / 'train.json', size=64)
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and -1 <= x.min() and x.max() <= 1 and y.sum() == 1   # CLEVR_train_000000_0: one object
    r = cli('train', '--preset', 'tiny', '--data', data, '--out', tmp_path / 'run', '--set', 'steps=2', 'batch_size=8', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(tmp_path / 'run' / 'ckpt.pt')['step'] == 2
    ev = build_evaluator()
    torch.save({'model': ev.state_dict()}, tmp_path / 'checkpoint.pth')   # exactly how the course's file is written
    assert load_evaluator(tmp_path / 'checkpoint.pth', device='cpu').fc[0].weight.shape == (24, 512)
    export_checkpoint(tmp_path / 'run' / 'ckpt.pt', tmp_path / 'tiny.pt')
    one = tmp_path / 'two.json'; one.write_text(json.dumps([['red cube'], ['blue sphere', 'gray cylinder']]))
    r = cli('evaluate', '--ckpt', tmp_path / 'tiny.pt', '--evaluator', tmp_path / 'checkpoint.pth', '--labels', one, '--out', tmp_path / 'ev', '--steps', '3')
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / 'ev' / 'results.json').read_text())['results'][0]['file'] == 'two.json'


def test_submit_writes_the_hand_in(cli, tmp_path):
    from PIL import Image
    train(get_config('tiny', steps=10), out=tmp_path / 'run')
    export_checkpoint(tmp_path / 'run' / 'ckpt.pt', tmp_path / 'tiny.pt')
    r = cli('submit', '--ckpt', tmp_path / 'tiny.pt', '--out', tmp_path / 'handin', '--steps', '9', '--frames', '8', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / 'handin'
    for f in ('test.png', 'new_test.png'): assert Image.open(out / f).size == (8 * 66 + 2, 4 * 66 + 2)   # 32 at 64x64 (tiny is 32x32)
    assert Image.open(out / 'denoising.png').size == (8 * 66 + 2, 66 + 2)
    table = (out / 'accuracy.md').read_text()
    assert '| test.json | 32 |' in table and '| new_test.json | 32 |' in table and 'shipped evaluator' in table
