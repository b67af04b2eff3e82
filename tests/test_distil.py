"Guidance distillation (`ddpm-lab distil`, sampling.distil_guidance): the exported network samples unguided, a stopped run resumes to the same weights, and bad inputs get clear errors."
import pytest, torch
from ddpm_lab.data import DATA_DIR
from ddpm_lab.pipeline import load_checkpoint
from ddpm_lab.sampling import distil_guidance
from ddpm_lab.train import get_config, train


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp('teacher')
    return train(get_config('tiny', steps=6, sample_every=0), out=out / 'run')['ckpt']


def test_distil_from_the_command_line_then_sample_unguided(cli, teacher, tmp_path):
    r = cli('distil', '--ckpt', teacher, '--out', tmp_path / 'd', '--steps', '3', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    student = tmp_path / 'd' / 'distilled.pt'
    assert r.stdout.strip().endswith(str(student))
    cfg = load_checkpoint(student)['config']
    assert cfg['sampling']['w'] == 0 and cfg['distilled']['w'] == 3 and cfg['distilled']['steps'] == 3 and cfg['distilled']['minutes'] >= 0
    assert all(v.dtype == torch.float16 for v in load_checkpoint(student)['model'].values() if v.is_floating_point())
    r = cli('sample', '--ckpt', student, '--labels', DATA_DIR / 'test.json', '--out', tmp_path / 's', '--steps', '5')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / 's').glob('test_ddpm5_w0_seed0.png'))) == 1   # its own recommendation: no guidance


def test_a_stopped_distillation_continues_to_the_same_weights(teacher, tmp_path):
    straight = load_checkpoint(distil_guidance(teacher, tmp_path / 'a', w=2., steps=4, every=1, progress=False))
    distil_guidance(teacher, tmp_path / 'b', w=2., steps=2, every=1, progress=False)
    resumed = load_checkpoint(distil_guidance(teacher, tmp_path / 'b', w=2., steps=4, every=1, progress=False))
    assert all(torch.equal(straight['model'][k], resumed['model'][k]) for k in straight['model'])
    assert torch.load(tmp_path / 'b' / 'ckpt.pt', weights_only=True)['log'] == torch.load(tmp_path / 'a' / 'ckpt.pt', weights_only=True)['log']


def test_distillation_refuses_what_it_cannot_do(cli, teacher, tmp_path):
    distil_guidance(teacher, tmp_path / 'a', w=2., steps=1, progress=False)
    with pytest.raises(ValueError, match='choose another out folder'): distil_guidance(teacher, tmp_path / 'a', w=4., steps=1, progress=False)
    with pytest.raises(ValueError, match='distilled already'): distil_guidance(tmp_path / 'a' / 'distilled.pt', tmp_path / 'b', steps=1, progress=False)
    with pytest.raises(ValueError, match='w > 0'): distil_guidance(teacher, tmp_path / 'c', w=0., progress=False)
    r = cli('distil', '--ckpt', teacher, '--out', tmp_path / 'd', '--w', 'nan')
    assert r.returncode == 2 and 'not a finite weight > 0' in r.stderr and 'Traceback' not in r.stderr
    r = cli('distil', '--ckpt', DATA_DIR / 'weights' / 'evaluator.pth', '--out', tmp_path / 'e')
    assert r.returncode == 2 and 'not a ddpm_lab diffusion checkpoint' in r.stderr


def test_a_low_passed_target_is_recorded_differs_from_plain_guidance_and_resumes_only_as_itself(cli, teacher, tmp_path):
    plain = load_checkpoint(distil_guidance(teacher, tmp_path / 'plain', w=2., steps=2, progress=False))
    r = cli('distil', '--ckpt', teacher, '--out', tmp_path / 'low', '--w', '2', '--steps', '2', '--blur', '1', '--blur-below', '0.5', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    low = load_checkpoint(tmp_path / 'low' / 'distilled.pt')
    assert 'blur' not in plain['config']['distilled']   # plain guidance keeps the keys of files distilled before the option
    assert low['config']['distilled']['blur'] == 1 and low['config']['distilled']['blur_below'] == 0.5
    assert any(not torch.equal(plain['model'][k], low['model'][k]) for k in plain['model'])
    with pytest.raises(ValueError, match='choose another out folder'): distil_guidance(teacher, tmp_path / 'low', w=2., steps=3, progress=False)
    with pytest.raises(ValueError, match='blur is a sigma'): distil_guidance(teacher, tmp_path / 'x', w=2., blur=-1., progress=False)
    r = cli('distil', '--ckpt', teacher, '--out', tmp_path / 'y', '--blur-below', '0')
    assert r.returncode == 2 and 'not a time in (0, 1]' in r.stderr and 'Traceback' not in r.stderr
