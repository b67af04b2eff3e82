"Failure modes of ddpm_lab.sampling: bad arguments are refused with messages that say what is valid."
import pytest
import torch
from ddpm_lab.schedule import Schedule
from ddpm_lab.pipeline import Pipeline
from ddpm_lab.sampling import GaussianOracle, sample, sample_labels_file, timesteps

SCH = Schedule.from_name('cosine', 50)
ORACLE = GaussianOracle(SCH, mu=0.2, std=0.5)
COND = torch.zeros(2, 24)


def run(model=ORACLE, schedule=SCH, pred='eps', **kw):
    "sample() of a pipeline of 8x8 images with these arguments: the oracle, DDIM 5 steps, w = 0.5 unless changed."
    return sample(Pipeline(model, schedule, pred, size=8), **{**dict(cond=COND, sampler='ddim', steps=5, w=0.5), **kw})


def test_runs():
    x = run()
    assert x.shape == (2, 3, 8, 8) and x.abs().max() <= 1


def test_unknown_sampler_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown sampler 'euler'.*; valid samplers: ddpm, ddim, dpm\+\+"):
        run(sampler='euler')


@pytest.mark.parametrize('steps', [0, -3, 51, 1000, 2.5])
def test_steps_out_of_range(steps):
    with pytest.raises(ValueError, match='steps must be an integer from 1 to T=50'):
        run(steps=steps)
    with pytest.raises(ValueError, match='from 1 to T=50'):
        timesteps(50, steps)


@pytest.mark.parametrize('cond', [torch.zeros(24), torch.zeros(2, 23), torch.zeros(2, 24, 1), [[0.] * 24]])
def test_wrong_cond_shape(cond):
    with pytest.raises(ValueError, match=r'cond must be a \(B, '):
        run(cond=cond)


def test_cond_width_checked_against_model():
    class Net(torch.nn.Module):
        n_classes = 10
        def forward(self, x, t, c): return x
    with pytest.raises(ValueError, match=r'cond must be a \(B, 10\)'):
        run(model=Net())


def test_unknown_prediction_type():
    with pytest.raises(ValueError, match='unknown prediction type .score..*; valid prediction types: eps, x0, v'):
        run(pred='score')


def test_eps_refused_on_zero_terminal_snr():
    sz = Schedule.from_name('linear', 50, zero_snr=True)
    with pytest.raises(ValueError, match="needs pred='v', 'x0' or 'edm'"):
        run(schedule=sz, model=GaussianOracle(sz), pred='eps')
    run(schedule=sz, model=GaussianOracle(sz, pred='v'), pred='v')  # v works


@pytest.mark.parametrize('eta', [-0.1, 1.5])
def test_eta_out_of_range(eta):
    with pytest.raises(ValueError, match=r'eta must be in \[0, 1\]'):
        run(eta=eta)


def test_sde_solver_is_seeded_noisy_and_finite_at_zero_snr():
    a, b, ode = run(sampler='dpm++', eta=1., seed=3), run(sampler='dpm++', eta=1., seed=3), run(sampler='dpm++', seed=3)
    assert torch.equal(a, b) and not torch.equal(a, run(sampler='dpm++', eta=1., seed=4))  # the seed fixes the noise
    assert (a - ode).abs().max() > 1e-3   # eta=1 draws fresh noise, eta=0 does not
    sz = Schedule.from_name('linear', 50, zero_snr=True)   # first step from lambda = -inf
    assert run(schedule=sz, model=GaussianOracle(sz, pred='v'), pred='v', sampler='dpm++', eta=1.).isfinite().all()


def test_train_format_file_refused(tmp_path):
    f = tmp_path / 'train_like.json'
    f.write_text('{"a.png": ["red cube"]}')
    with pytest.raises(ValueError, match='train-format file'):
        sample_labels_file(tmp_path / 'missing.pt', f, tmp_path / 'out')


def test_missing_checkpoint_named(tmp_path):
    f = tmp_path / 'conds.json'
    f.write_text('[["red cube"], ["blue sphere", "gray cylinder"]]')
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        sample_labels_file(tmp_path / 'missing.pt', f, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()  # nothing written


def test_unknown_label_in_file_named(tmp_path):
    f = tmp_path / 'conds.json'
    f.write_text('[["red cube"], ["pink sphere"]]')
    with pytest.raises(ValueError, match="unknown label 'pink sphere'"):
        sample_labels_file(tmp_path / 'missing.pt', f, tmp_path / 'out')


def test_labels_file_end_to_end(tmp_path):
    "A tiny randomly initialised checkpoint goes through load_model, sampling and both output files."
    from ddpm_lab.train import get_config
    from ddpm_lab.pipeline import make_model, save_checkpoint
    cfg = get_config('tiny')
    save_checkpoint(tmp_path / 'tiny.pt', dict(config=cfg, model=make_model(cfg).state_dict(), ema=None, step=0))
    f = tmp_path / 'conds.json'
    f.write_text('[["red cube"], ["blue sphere", "gray cylinder"], ["yellow cube", "red sphere", "cyan cylinder"]]')
    res = sample_labels_file(tmp_path / 'tiny.pt', f, tmp_path / 'out', sampler='ddpm', steps=3, w=1.0, seed=2, device='cpu')
    assert res['grid'].is_file() and res['tensors'].is_file() and res['n'] == 3 and res['seconds'] > 0
    saved = torch.load(res['tensors'], weights_only=True)
    assert saved['images'].dtype == torch.uint8 and saved['images'].shape == (3, 3, cfg['size'], cfg['size'])
    assert saved['cond'].sum(1).tolist() == [1., 2., 3.]
    again = sample_labels_file(tmp_path / 'tiny.pt', f, tmp_path / 'again', sampler='ddpm', steps=3, w=1.0, seed=2, device='cpu')
    assert torch.equal(torch.load(again['tensors'], weights_only=True)['images'], saved['images'])  # same seed, same images

class Linear(torch.nn.Module):
    "A network whose label moves its output smoothly (eps = x / 3 + the first three labels as a colour), so guidance changes the samples; records its batch sizes."
    n_classes = 24
    def __init__(self): super().__init__(); self.sizes = []
    def forward(self, x, t, c): self.sizes.append(x.shape[0]); return x / 3 + c[:, :3, None, None]

INTERVAL_COND = torch.tensor([[1., 0., 0.] + [0.] * 21, [0., 1., 1.] + [0.] * 21])


def test_guidance_interval_limits_guidance_to_its_times():
    "interval=(0, 1) is plain guidance; an interval that no step's time falls in ((0, 0): times are in (0, 1]) is the unguided model; a partial one lies between and differs from both."
    kw = dict(model=Linear(), cond=INTERVAL_COND, sampler='ddpm', steps=10, w=4., seed=1, clip=False)
    plain, full, none = run(**kw), run(**kw, interval=(0., 1.)), run(**kw, interval=(0., 0.))
    assert torch.equal(plain, full) and torch.equal(none, run(**{**kw, 'w': 0.}))
    part = run(**kw, interval=(0.5, 1.))
    assert (part - plain).abs().max() > 1e-2 and (part - none).abs().max() > 1e-2


def test_guidance_interval_skips_the_null_pass_outside():
    "Outside the interval each step is one forward pass of the plain batch, so a shorter interval also samples faster."
    model = Linear()
    run(model=model, cond=INTERVAL_COND, sampler='ddim', steps=10, w=2., interval=(0.55, 1.))   # times 1.0, 0.9, ..., 0.1
    assert model.sizes == [4] * 5 + [2] * 5


@pytest.mark.parametrize('interval', [(0.6, 0.4), (-0.1, 1.), (0., 1.5), (0.5,)])
def test_guidance_interval_out_of_range(interval):
    with pytest.raises(ValueError, match=r'guidance interval must be two times \(lo, hi\) with 0 <= lo <= hi <= 1'):
        run(interval=interval)


class HandRamp(torch.nn.Module):
    "Guidance with weight 2 w t written out by hand around a model: what ramp=True must compute."
    def __init__(self, model, w): super().__init__(); self.model, self.w = model, w
    def forward(self, x, t, c):
        out_c, out_u = self.model(x, t, c), self.model(x, t, torch.zeros_like(c))
        return out_c + 2 * self.w * t.view(-1, 1, 1, 1) * (out_c - out_u)


def test_ramp_guides_with_two_w_t():
    "ramp=True samples exactly what a network guided by hand with weight 2 w t samples unguided, and differs from a constant w."
    kw = dict(cond=INTERVAL_COND, sampler='ddpm', steps=10, seed=1, clip=False)
    ramped = run(model=Linear(), w=4., ramp=True, **kw)
    assert torch.allclose(ramped, run(model=HandRamp(Linear(), 4.), w=0., **kw), atol=1e-5)
    assert (ramped - run(model=Linear(), w=4., ramp=False, **kw)).abs().max() > 1e-2


def test_a_given_w_is_constant_unless_a_ramp_is_asked_for():
    "A pipeline recommending a ramp: sample() without w uses it, a w of one's own is the classic constant weight (the course's --w 0.5 means what its formula says)."
    pipe = Pipeline(Linear(), SCH, 'eps', size=8, sampling=dict(sampler='ddpm', steps=10, w=4., ramp=True))
    kw = dict(cond=INTERVAL_COND, seed=1, clip=False)
    assert torch.equal(sample(pipe, **kw), run(model=Linear(), sampler='ddpm', steps=10, w=4., ramp=True, **kw))
    assert torch.equal(sample(pipe, w=4., **kw), run(model=Linear(), sampler='ddpm', steps=10, w=4., ramp=False, **kw))


@pytest.mark.parametrize('ramp', ['yes', 1, 0.5])
def test_ramp_must_be_a_bool(ramp):
    with pytest.raises(ValueError, match=r'ramp must be True \(weight 2 w t\) or False'):
        run(ramp=ramp)
