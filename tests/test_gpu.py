"GPU paths: the precision the GPU has hardware for (bf16, or fp16 with a gradient scaler) and channels_last on CUDA, torch.compile, resume, sampling, NCCL. Skipped without CUDA."
import os, shutil, subprocess, sys
import pytest, torch
from ddpm_lab.train import get_config, train
from ddpm_lab.pipeline import load_pipeline
from ddpm_lab.sampling import sample
from ddpm_lab.data import encode

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_tiny_learns_on_gpu_with_its_precision_and_channels_last(tmp_path):
    res = train(get_config('tiny', channels_last=True), out=tmp_path)
    L = torch.tensor(res['losses'])
    assert res['finished'] and L.isfinite().all()
    assert L[-30:].mean() < 0.4 * L[:10].mean(), (L[:10].mean(), L[-30:].mean())


def test_fp16_with_gradient_scaler_learns_and_resumes(tmp_path):
    "The T4 path: fp16 autocast with a gradient scaler, whose state is saved and restored."
    from ddpm_lab.pipeline import load_checkpoint
    c = get_config('tiny', amp='fp16', steps=60, ckpt_every=10)
    assert train(c, out=tmp_path, until=30)['step'] == 30
    ck = load_checkpoint(tmp_path / 'ckpt.pt')
    assert ck['config']['amp'] == 'fp16' and ck['scaler']['scale'] > 0
    res = train(c, out=tmp_path, resume=True)
    L = torch.tensor(res['losses'])
    assert res['finished'] and L.isfinite().all() and L[-20:].mean() < 0.5 * L[:10].mean()


def test_compiled_training_follows_eager(tmp_path):
    c = get_config('tiny', steps=30)
    eager = torch.tensor(train(c, out=tmp_path / 'eager')['losses'])
    compiled = torch.tensor(train({**c, 'compile': True}, out=tmp_path / 'compiled')['losses'])
    assert torch.allclose(compiled[:10], eager[:10], rtol=0.05), (compiled[:10], eager[:10])   # bf16 rounding differs


def test_resume_on_gpu_follows_uninterrupted(tmp_path):
    c = get_config('tiny', steps=40, ckpt_every=10)
    full = torch.tensor(train(c, out=tmp_path / 'full')['losses'])
    assert train(c, out=tmp_path / 'part', until=25)['step'] == 25
    rest = torch.tensor(train(c, out=tmp_path / 'part', resume=True)['losses'])
    assert torch.allclose(rest, full, rtol=0.02), (rest - full).abs().max()   # cuDNN kernels are not bit-exact


def test_gpu_sampling_matches_cpu(tmp_path):
    res = train(get_config('tiny', steps=50), out=tmp_path)
    cond = encode([['gray cube', 'red sphere'], ['blue cylinder']] * 4)
    x = {}
    for dev in ('cpu', 'cuda'):
        x[dev] = sample(load_pipeline(res['ckpt'], device=dev), cond.to(dev), sampler='ddim', steps=20, w=2.0, seed=0).cpu()
    assert (x['cuda'] - x['cpu']).abs().mean() < 0.02   # same noise (drawn on the CPU); TF32 convolutions differ slightly


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='NCCL needs one GPU per process')
def test_torchrun_nccl(tmp_path):
    n = torch.cuda.device_count()
    torchrun = shutil.which('torchrun', path=os.path.dirname(sys.executable)) or shutil.which('torchrun')
    cmd = [torchrun, '--standalone', f'--nproc_per_node={n}', '-m', 'ddpm_lab.cli', 'train', '--preset', 'tiny',
           '--out', str(tmp_path), '--set', 'steps=20', f'batch_size={8 * n}']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'{n} process(es) on cuda' in r.stdout + r.stderr
