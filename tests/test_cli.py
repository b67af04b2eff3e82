"The ddpm-lab command line: help, presets, training, sampling from a checkpoint, and clear errors."
import json
import pytest, torch
from ddpm_lab.data import DATA_DIR


def test_help_explains_every_command(cli):
    r = cli('--help')
    assert r.returncode == 0
    for cmd in ('render', 'presets', 'train', 'sample', 'evaluate', 'train-evaluator', 'export', 'distil', 'quickstart'):
        assert cmd in r.stdout
    r = cli('train', '--help')
    assert '--resume' in r.stdout and '--minutes' in r.stdout


def test_presets_lists_all(cli):
    r = cli('presets')
    assert r.returncode == 0
    for p in ('tiny', 'cpu', 'contextunet', 'unet2d', 'best'):
        assert p in r.stdout


def test_unknown_preset_names_valid_ones(cli, tmp_path):
    r = cli('train', '--preset', 'huge', '--out', tmp_path)
    assert r.returncode == 2 and 'valid presets: tiny, cpu' in r.stderr and 'Traceback' not in r.stderr


def test_missing_checkpoint_is_a_clear_error(cli, tmp_path):
    r = cli('sample', '--ckpt', tmp_path / 'nope.pt', '--labels', DATA_DIR / 'test.json', '--out', tmp_path)
    assert r.returncode == 2 and 'no checkpoint at' in r.stderr


def test_train_export_sample_round_trip(cli, tmp_path):
    r = cli('train', '--preset', 'tiny', '--out', tmp_path / 'run', '--set', 'steps=30')
    assert r.returncode == 0, r.stderr[-2000:]
    r = cli('train', '--preset', 'tiny', '--out', tmp_path / 'run', '--set', 'steps=40', '--resume')
    assert r.returncode == 0 and json.loads(r.stdout[r.stdout.index('{'):])['step'] == 40
    r = cli('export', '--ckpt', tmp_path / 'run' / 'ckpt.pt', '--out', tmp_path / 'small.pt')
    assert r.returncode == 0, r.stderr[-2000:]
    r = cli('sample', '--ckpt', tmp_path / 'small.pt', '--labels', DATA_DIR / 'test.json', DATA_DIR / 'new_test.json',
            '--out', tmp_path / 'samples', '--steps', '10', '--sampler', 'ddim')
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ('test', 'new_test'):
        assert len(list((tmp_path / 'samples').glob(f'{f}_ddim10_*.png'))) == 1
        assert len(list((tmp_path / 'samples').glob(f'{f}_ddim10_*.pt'))) == 1


def test_train_fit_fills_a_time_budget(cli, tmp_path):
    r = cli('train', '--preset', 'tiny', '--out', tmp_path / 'run', '--fit', '0.05')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'steps fill 0.05 minutes' in r.stdout
    res = json.loads(r.stdout[r.stdout.index('{'):])
    assert res['finished'] and res['step'] == torch.load(tmp_path / 'run' / 'ckpt.pt', weights_only=True)['config']['steps'] >= 21


def test_sample_from_shipped_checkpoint(cli, tmp_path):
    ckpt = DATA_DIR / 'weights' / 'cpu.pt'
    assert ckpt.is_file() and ckpt.stat().st_size <= 20 * 2**20
    r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--steps', '10', '--sampler', 'dpm++')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(tmp_path.glob('test_dpm++10_w*.png'))) == 1
    r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--steps', '10', '--sampler', 'dpm++', '--eta', '1')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list(tmp_path.glob('test_dpm++10_eta1_*.png'))) == 1   # the SDE solver's grid beside the ODE's


def test_evaluator_file_given_as_diffusion_checkpoint(cli, tmp_path):
    torch.save({'model': {'fc.0.weight': torch.zeros(24, 512)}}, tmp_path / 'checkpoint.pth')
    r = cli('sample', '--ckpt', tmp_path / 'checkpoint.pth', '--labels', DATA_DIR / 'test.json', '--out', tmp_path)
    assert r.returncode == 2 and 'evaluator weight file' in r.stderr


def test_python_api_and_command_line_share_the_sampling_defaults():
    "One source: every sampling function and command leaves sampler, steps and w unset (None), so they come from the loaded pipeline; the shipped checkpoint's pipeline samples with the setting results/headline.json measured."
    import inspect, json
    from ddpm_lab.pipeline import SAMPLING_DEFAULTS, load_pipeline
    from ddpm_lab.sampling import sample, sample_labels_file, demo_figure
    from ddpm_lab.evaluation import evaluate, handin, denoising_row
    from ddpm_lab.cli import build_parser
    for fn in (sample, sample_labels_file, demo_figure, evaluate, handin, denoising_row):
        assert {k: inspect.signature(fn).parameters[k].default for k in SAMPLING_DEFAULTS} == dict.fromkeys(SAMPLING_DEFAULTS), fn.__name__
    P = build_parser()
    for cmd in (['sample', '--ckpt', 'c', '--out', 'o', '--labels', 'l'], ['evaluate', '--ckpt', 'c', '--out', 'o'], ['submit', '--ckpt', 'c', '--out', 'o'], ['quickstart']):
        a = P.parse_args(cmd)
        assert {k: getattr(a, k) for k in SAMPLING_DEFAULTS} == dict.fromkeys(SAMPLING_DEFAULTS), cmd[0]
    shipped = load_pipeline(DATA_DIR / 'weights' / 'cpu.pt', device='cpu').sampling
    head = json.loads((DATA_DIR.parent / 'results' / 'headline.json').read_text()) if (DATA_DIR.parent / 'results').is_dir() else None
    if head: assert {k: head[k] for k in SAMPLING_DEFAULTS} == shipped

def test_guidance_ramp_from_the_command_line(cli, tmp_path):
    "--ramp reaches the sampler with the checkpoint's w (its own file tag, recorded in the .pt); a w given alone is a constant weight."
    ckpt = DATA_DIR / 'weights' / 'cpu.pt'
    for flags, tag, ramp in ((['--ramp'], 'w3ramp', True), (['--w', '2'], 'w2', False), (['--w', '2', '--ramp'], 'w2ramp', True)):
        r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--steps', '4', '--sampler', 'ddim', *flags)
        assert r.returncode == 0, r.stderr[-2000:]
        saved = torch.load(tmp_path / f'test_ddim4_{tag}_seed0.pt', weights_only=True)
        assert saved['ramp'] is ramp and saved['w'] == float(tag[1]), flags

def test_guidance_interval_from_the_command_line(cli, tmp_path):
    "--interval LO HI reaches the sampler (its own file tag) and a reversed or out-of-range interval is a one-line error."
    ckpt = DATA_DIR / 'weights' / 'cpu.pt'
    r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--steps', '4', '--sampler', 'ddim', '--interval', '0.5', '1')
    assert r.returncode == 0, r.stderr[-2000:]
    saved = torch.load(next(tmp_path.glob('test_ddim4_w3_t0.5-1_seed0.pt')), weights_only=True)
    assert saved['interval'] == [0.5, 1.] and len(saved['images']) == 32
    r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--interval', '0.6', '0.4')
    assert r.returncode == 2 and '0 <= lo <= hi <= 1' in r.stderr and 'Traceback' not in r.stderr
    r = cli('sample', '--ckpt', ckpt, '--labels', DATA_DIR / 'test.json', '--out', tmp_path, '--interval', '0.5', '2')
    assert r.returncode == 2 and 'a time in [0, 1]' in r.stderr
