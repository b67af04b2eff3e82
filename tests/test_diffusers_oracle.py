"""Independent oracle: our schedules, samplers and guidance against Hugging Face diffusers, a library nobody here wrote.

Two layers:
* the *math*, in float64: our step functions (ddim_step, ddpm_step, dpmpp_2m_step) and diffusers' `scheduler.step`
  are driven step by step with the same model outputs and the same injected noise. diffusers keeps its tables in
  float32, so (after checking those tables against ours at float32 precision) its scheduler is handed our float64
  tables; any remaining difference is then in the step formulas, and DDIM/DDPM agree to ~1e-15.
* the *plumbing*, in float32: `sample()` itself (trailing timesteps, model time, eps/x0/v conversion, guidance,
  RowNoise) against a diffusers loop that uses diffusers' own float32 tables, the same x_T and the same per-image
  generators (diffusers' `randn_tensor` draws row i from generator i, exactly as RowNoise does).

diffusers is a test dependency: without it this module is skipped.
"""
import pytest
import torch

diffusers = pytest.importorskip('diffusers')
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr as hf_rescale_zero_terminal_snr
from ddpm_lab.schedule import Schedule, make_betas, rescale_zero_terminal_snr
from ddpm_lab.pipeline import Pipeline
from ddpm_lab.sampling import (GaussianOracle, Oracle, RowNoise, cfg_model, ddim_step, ddpm_step, dpmpp_2m_step,
                               sample, timesteps)

# diffusers' own DPMSolverMultistepScheduler.set_timesteps trips a numpy-2 DeprecationWarning (np.array(tensor, copy=False))
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning:diffusers')

HF_PRED = dict(eps='epsilon', x0='sample', v='v_prediction')
SHAPE, B = (3, 8, 8), 3

# Tolerances.
# F32_TABLE: diffusers stores betas / alphas_cumprod in float32 (linspace and cumprod done in float32); ours are
#   float64. One float32 rounding is 6e-8 relative; a float32 cumprod over T=1000 factors drifts up to ~T * 6e-8
#   (measured: 1.3e-5 relative, 8e-7 absolute after the zero-SNR shift).
# F64: same tables, float64 step formulas that differ only in the order of operations, over 50 steps
#   (measured: 2e-15).
# DPM: diffusers' DPMSolverMultistepScheduler.step casts `sample` to float32 ("upcast", a downcast for float64
#   input) before the update, so even with float64 tables and inputs it is float32-precise per step (measured: 8e-7).
# E2E: sample() runs in float32 against diffusers' own float32 tables: float32 rounding amplified by 1/sqrt(alpha_bar)
#   in the x0 prediction at the noisiest steps (measured: 1.3e-5).
# A real error in a formula (a wrong coefficient, a skipped level, an off-by-one timestep) moves samples by >= 1e-3.
F32_TABLE = dict(rtol=5e-5, atol=1e-6)
F64 = dict(rtol=1e-12, atol=1e-12)
DPM = dict(rtol=1e-6, atol=3e-6)
E2E = dict(rtol=1e-5, atol=5e-5)


def hf_config(kind, T, zero_snr=False):
    "diffusers constructor arguments for our schedule `kind`."
    if kind == 'linear': sched = dict(beta_schedule='linear', beta_start=1e-4, beta_end=0.02)
    elif kind == 'linear_scaled': sched = dict(beta_schedule='linear', beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)
    elif kind == 'cosine': sched = dict(beta_schedule='squaredcos_cap_v2')
    else: raise ValueError(kind)
    return dict(num_train_timesteps=T, rescale_betas_zero_snr=zero_snr, **sched)


def ddim(kind, T, pred, zero_snr=False, clip=False):
    return DDIMScheduler(**hf_config(kind, T, zero_snr), prediction_type=HF_PRED[pred], timestep_spacing='trailing',
                         clip_sample=clip, set_alpha_to_one=True)

def ddpm(kind, T, pred, zero_snr=False, clip=False):
    return DDPMScheduler(**hf_config(kind, T, zero_snr), prediction_type=HF_PRED[pred], timestep_spacing='trailing',
                         clip_sample=clip, variance_type='fixed_small')

def dpm(kind, T, pred, zero_snr=False, sde=False, **kw):
    # final_sigmas_type='zero': the last step lands on sigma=0 (alpha_bar=1), as ours does; with 'zero' diffusers also
    # forces that last step to first order, which for sigma=0 returns the x0 prediction exactly, like our ab_s == 1 branch.
    return DPMSolverMultistepScheduler(**hf_config(kind, T, zero_snr), prediction_type=HF_PRED[pred], solver_order=2,
                                       algorithm_type='sde-dpmsolver++' if sde else 'dpmsolver++', solver_type='midpoint',
                                       timestep_spacing='trailing', final_sigmas_type='zero', **kw)


class LabelGauss(Oracle):
    "Exact denoiser for data ~ N(mu(c), std^2) per pixel, mu(c) = c @ m: the label moves the mean, so guidance matters."
    def __init__(self, schedule, pred='eps', std=0.5):
        super().__init__(schedule, pred)
        self.std, self.m = std, torch.linspace(-0.6, 0.6, 24, dtype=torch.float64)
    def x0_mean(self, x, ab, c):
        mu = (c.double() @ self.m).view(-1, *[1] * (x.ndim - 1))
        return mu + ab.sqrt() * self.std ** 2 / (ab * self.std ** 2 + 1 - ab) * (x - ab.sqrt() * mu)


def cond(rows=B):
    c = torch.zeros(rows, 24)
    for i in range(rows): c[i, (5 * i) % 24] = 1.
    return c


def gens(seed, rows=B): return [torch.Generator().manual_seed(1000 * seed + r) for r in range(rows)]

def row_randn(generators, dtype=torch.float64):
    "Draw one image per generator, exactly as diffusers' randn_tensor does with a list of generators."
    return torch.cat([torch.randn((1, *SHAPE), generator=g, dtype=dtype) for g in generators])


def give_hf_tables(sched, S):
    "Hand a DDIM/DDPM scheduler our float64 alpha-bar table (diffusers' own is float32; compared in the table tests)."
    sched.alphas_cumprod = S.alpha_bar.clone()
    sched.one = sched.final_alpha_cumprod = torch.tensor(1., dtype=torch.float64)


def ours_loop(S, net, pred, steps, x, c, update):
    "Float64 step-by-step driver of our step functions, in the order sampling._sample_batch uses them (no clipping)."
    ts, abar = timesteps(S.T, steps), S.alpha_bar.tolist() + [1.0]   # abar[-1]: clean data
    for i, t in enumerate(ts):
        out = net(x, S.model_time(torch.full((len(x),), t)), c)
        x0 = S.to_eps_x0(pred, out, x, t)[1]
        x = update(i, x, x0, abar[t], abar[ts[i + 1] if i + 1 < steps else -1])
    return x


def hf_time(t, T, rows):
    """Network time of diffusers' integer timestep t: our documented convention (t+1)/T, written out here rather than
    taken from Schedule.model_time, so that a change there shows up against diffusers' timesteps."""
    return torch.full((rows,), (t + 1) / T, dtype=torch.float32)


def hf_loop(sched, S, net, steps, x, c, step_kw=lambda i: {}):
    sched_ts = sched.timesteps.tolist()
    assert sched_ts == timesteps(S.T, steps)
    for i, t in enumerate(sched_ts):
        out = net(x, hf_time(t, S.T, len(x)), c)
        x = sched.step(out, t, x, **step_kw(i)).prev_sample
    return x


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize('T', [1000, 100])
@pytest.mark.parametrize('kind', ['linear', 'linear_scaled', 'cosine'])
@pytest.mark.parametrize('cls', [DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler])
def test_betas_and_alpha_bar_match_diffusers(cls, kind, T):
    S, hf = Schedule.from_name(kind, T), cls(**hf_config(kind, T))
    assert hf.betas.dtype == torch.float32   # why the tolerance is float32's
    torch.testing.assert_close(hf.betas.double(), S.betas, rtol=1e-6, atol=0)
    torch.testing.assert_close(hf.alphas_cumprod.double(), S.alpha_bar, **F32_TABLE)
    if kind == 'cosine':   # diffusers builds the cosine betas in Python floats (float64), then rounds to float32 once
        torch.testing.assert_close(hf.betas, S.betas.float(), rtol=2 ** -23, atol=0)


@pytest.mark.parametrize('T', [1000, 100])
@pytest.mark.parametrize('kind', ['linear', 'cosine'])
def test_zero_terminal_snr_matches_diffusers(kind, T):
    S = Schedule.from_name(kind, T, zero_snr=True)
    # diffusers' Algorithm-1 function applied to our float64 betas: identical up to the order of float64 operations
    betas = make_betas(kind, T)
    torch.testing.assert_close(hf_rescale_zero_terminal_snr(betas.clone()), rescale_zero_terminal_snr(betas), rtol=1e-12, atol=1e-14)
    for cls in (DDPMScheduler, DDIMScheduler):
        hf = cls(**hf_config(kind, T, zero_snr=True))
        torch.testing.assert_close(hf.alphas_cumprod.double(), S.alpha_bar, **F32_TABLE)
        assert hf.alphas_cumprod[-1] == 0 and S.alpha_bar[-1] == 0 and S.betas[-1] == 1
    # DPM-Solver cannot hold alpha_bar = 0 (its sigma = sqrt((1-ab)/ab) would be inf): it substitutes 2**-24
    hf = DPMSolverMultistepScheduler(**hf_config(kind, T, zero_snr=True))
    assert hf.alphas_cumprod[-1] == 2 ** -24
    torch.testing.assert_close(hf.alphas_cumprod[:-1].double(), S.alpha_bar[:-1], **F32_TABLE)


@pytest.mark.parametrize('T, steps', [(1000, 50), (1000, 25), (1000, 7), (1000, 1), (1000, 1000), (100, 30), (50, 50)])
def test_trailing_timesteps_match_diffusers(T, steps):
    for hf in (ddim('linear', T, 'eps'), ddpm('linear', T, 'eps'), dpm('linear', T, 'eps')):
        hf.set_timesteps(steps)
        assert hf.timesteps.tolist() == timesteps(T, steps), type(hf).__name__
    # (diffusers' DDIMScheduler.step steps from t to t - T // steps, not to the next entry of its own trailing list,
    #  so its trajectories only follow the timesteps above when steps divides T; the DDIM tests use such steps.)


# ---------------------------------------------------------------- guidance

@pytest.mark.parametrize('w', [0., 0.5, 3.])
def test_cfg_matches_diffusers_guider(w):
    from diffusers.guiders import ClassifierFreeGuidance
    S = Schedule.from_name('linear', 1000)
    model, c = LabelGauss(S), cond()
    x, t = torch.randn(B, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64), S.model_time(torch.tensor([999, 500, 20]))
    ours = cfg_model(model, w)(x, t, c)
    out_c, out_u = model(x, t, c), model(x, t, torch.zeros_like(c))
    # diffusers' convention: uncond + guidance_scale * (cond - uncond), guidance_scale = 1 + w (w=0 -> scale 1: no guidance)
    theirs = ClassifierFreeGuidance(guidance_scale=1 + w).forward(out_c, out_u).pred
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-13)
    # the paper's ("original") formulation cond + w * (cond - uncond) is ours term for term
    assert torch.equal(ours, ClassifierFreeGuidance(guidance_scale=w, use_original_formulation=True).forward(out_c, out_u).pred)
    if w: assert (ours - out_c).abs().max() > 1e-3   # the model does depend on the label


# ---------------------------------------------------------------- samplers, float64, step by step

@pytest.mark.parametrize('kind, zero_snr, pred, eta', [('linear', False, 'eps', 0.), ('linear', False, 'v', 0.),
                                                       ('cosine', False, 'x0', 0.), ('linear', True, 'v', 0.),
                                                       ('cosine', False, 'eps', 0.5), ('cosine', True, 'v', 1.)])
def test_ddim_trailing_50_matches_diffusers(kind, zero_snr, pred, eta):
    T, steps = 1000, 50
    S = Schedule.from_name(kind, T, zero_snr=zero_snr)
    net, c = GaussianOracle(S, mu=0.2, std=0.5, pred=pred), cond()
    xT = row_randn(gens(1))
    z = [row_randn(gens(100 + i)) for i in range(steps)]   # injected noise (unused when eta=0)
    ours = ours_loop(S, net, pred, steps, xT, c, lambda i, x, x0, ab_t, ab_s: ddim_step(x, x0, ab_t, ab_s, z[i], eta))
    hf = ddim(kind, T, pred, zero_snr)
    hf.set_timesteps(steps)
    give_hf_tables(hf, S)
    theirs = hf_loop(hf, S, net, steps, xT, c, lambda i: dict(eta=eta, variance_noise=z[i] if eta else None))
    torch.testing.assert_close(ours, theirs, **F64)
    assert ours.std() > 0.3   # a real sample, not a collapsed one


@pytest.mark.parametrize('kind, zero_snr, pred, steps', [('linear', False, 'eps', 50), ('cosine', False, 'v', 50),
                                                        ('linear', False, 'x0', 20), ('linear', True, 'v', 50),
                                                        ('cosine', False, 'eps', 7)])
def test_ddpm_ancestral_subset_matches_diffusers(kind, zero_snr, pred, steps):
    T = 1000
    S = Schedule.from_name(kind, T, zero_snr=zero_snr)
    net, c = GaussianOracle(S, mu=0.2, std=0.5, pred=pred), cond()
    xT = row_randn(gens(1))
    ours_gens, hf_gens, zs = gens(7), gens(7), []   # same seeds: diffusers draws from one copy, we from the other
    def update(i, x, x0, ab_t, ab_s):
        zs.append(row_randn(ours_gens))
        return ddpm_step(x, x0, ab_t, ab_s, zs[-1])
    ours = ours_loop(S, net, pred, steps, xT, c, update)
    hf = ddpm(kind, T, pred, zero_snr)
    hf.set_timesteps(steps)   # a subset of the T levels: step from t to the next scheduled t (previous_timestep)
    give_hf_tables(hf, S)
    theirs = hf_loop(hf, S, net, steps, xT, c, lambda i: dict(generator=hf_gens))
    # diffusers clamps the posterior variance at >= 1e-20, so on the last step (alpha_bar_prev = 1, variance 0) it still
    # adds sqrt(1e-20) * z = 1e-10 * z where ours adds nothing: a deliberate guard on its side, added back here.
    torch.testing.assert_close(ours + 1e-10 * zs[-1], theirs, **F64)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
    assert ours.std() > 0.3


def hf_dpm_float64(hf, abar):
    "Replace the float32 sigmas diffusers' set_timesteps computes by float64 ones from the same alpha-bars."
    ab = torch.tensor([abar[t] for t in hf.timesteps.tolist()], dtype=torch.float64)
    hf.sigmas = torch.cat([((1 - ab) / ab).sqrt(), torch.zeros(1, dtype=torch.float64)])


def run_dpm(kind, T, pred, steps, zero_snr=False, sde=False, substitute=True, **hf_kw):
    "(ours, diffusers) after `steps` DPM-Solver++ 2M steps, float64 tables on both sides, same x_T and noise."
    S = Schedule.from_name(kind, T, zero_snr=zero_snr)
    hf_abar = S.alpha_bar.tolist()
    if zero_snr: hf_abar[-1] = 2 ** -24   # the value diffusers substitutes for alpha_bar = 0 (see test_dpmpp_zero_snr)
    if substitute:   # our step functions and the oracle (which reads S) see the same table as diffusers
        S.alpha_bar = torch.tensor(hf_abar, dtype=torch.float64)
    net, c = GaussianOracle(S, mu=0.2, std=0.5, pred=pred), cond()
    xT = row_randn(gens(1))
    # diffusers casts variance_noise to float32: draw it in float32 so that both sides see the same values
    z = [row_randn(gens(100 + i), torch.float32).double() for i in range(steps)]
    eta, prev = (1. if sde else 0.), []
    def update(i, x, x0, ab_t, ab_s):
        x, p = dpmpp_2m_step(x, x0, ab_t, ab_s, prev[0] if prev else None, eta, z[i] if sde else 0.)
        prev[:] = [p]
        return x
    ours = ours_loop(S, net, pred, steps, xT, c, update)
    hf = dpm(kind, T, pred, zero_snr, sde, **hf_kw)
    hf.set_timesteps(steps)
    hf_dpm_float64(hf, hf_abar)
    theirs = hf_loop(hf, S, net, steps, xT, c, lambda i: dict(variance_noise=z[i]) if sde else {})
    return ours, theirs


@pytest.mark.parametrize('lower_order_final, euler_at_final', [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize('kind, pred, steps', [('linear', 'eps', 50), ('cosine', 'v', 50), ('linear', 'v', 10), ('cosine', 'x0', 7)])
def test_dpmpp_2m_matches_diffusers(kind, pred, steps, lower_order_final, euler_at_final):
    # With solver_order=2 and final_sigmas_type='zero', lower_order_final and euler_at_final change nothing: the last
    # step is first order anyway (forced by the zero final sigma) and `lower_order_second` only demotes third-order
    # steps. final_sigmas_type='sigma_min' can NOT match ours: its last step goes to alpha_bar[0] = 1 - beta_0 (one
    # training step of noise left) whereas ours ends on alpha_bar = 1, the predicted clean image.
    ours, theirs = run_dpm(kind, 1000, pred, steps, lower_order_final=lower_order_final, euler_at_final=euler_at_final)
    torch.testing.assert_close(ours, theirs, **DPM)
    assert ours.std() > 0.3


@pytest.mark.parametrize('kind, pred, steps', [('linear', 'eps', 50), ('cosine', 'v', 25), ('linear', 'x0', 10)])
def test_sde_dpmpp_2m_matches_diffusers(kind, pred, steps):
    # ours with eta=1 is diffusers' 'sde-dpmsolver++' (midpoint), given the same noise on every step
    ours, theirs = run_dpm(kind, 1000, pred, steps, sde=True)
    torch.testing.assert_close(ours, theirs, **DPM)
    ode, _ = run_dpm(kind, 1000, pred, steps)
    assert (ours - ode).abs().max() > 1e-2   # the injected noise did matter


@pytest.mark.parametrize('sde', [False, True])
def test_dpmpp_zero_snr(sde):
    # diffusers' DPM-Solver cannot start from alpha_bar = 0 and replaces it by 2**-24 (lambda = -8.3, not -inf); fed
    # the same substituted table, our step function agrees with it to float precision. With the true alpha_bar = 0 ours
    # takes h = inf on the first step (landing exactly on sqrt(ab_s) x0 + sqrt(1-ab_s) x) and its second step, whose
    # correction scales with h / h_prev = 0, is first order; diffusers' first step has a finite h and its second a
    # finite correction. The two then differ by design, by the size of the 2**-24 substitution, not by float error.
    ours, theirs = run_dpm('linear', 1000, 'v', 50, zero_snr=True, sde=sde)
    torch.testing.assert_close(ours, theirs, **DPM)
    # ...and with our true alpha_bar = 0 the substitution is all that separates us (measured: 2.5e-5 ODE, 2e-4 SDE)
    ours, theirs = run_dpm('linear', 1000, 'v', 50, zero_snr=True, sde=sde, substitute=False)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-3)
    assert (ours - theirs).abs().max() > 1e-6   # a real, if small, difference: not float error


# ---------------------------------------------------------------- sample() end to end, float32, diffusers' own tables

def hf_sample(hf, S, model, c, steps, w, eta, seed):
    "A diffusers-style loop: x_T and all step noise from per-image generators, CFG by diffusers' guider."
    # The generators are RowNoise's own (its seeding of image i by (seed, i) is our convention, not diffusers'): what is
    # compared is that sample() draws x_T and each step's noise from them in the order a diffusers loop does.
    from diffusers.guiders import ClassifierFreeGuidance
    guider = ClassifierFreeGuidance(guidance_scale=1 + w)
    noise = RowNoise(seed, range(len(c)), SHAPE, 'cpu')
    x = noise()
    hf.set_timesteps(steps)
    for t in hf.timesteps.tolist():
        tt = hf_time(t, S.T, len(c))
        out = guider.forward(model(x, tt, c), model(x, tt, torch.zeros_like(c))).pred
        # our DDIM step re-derives eps from the (clipped) x0, which is diffusers' use_clipped_model_output=True
        kw = dict(eta=eta, use_clipped_model_output=True) if isinstance(hf, DDIMScheduler) else {}
        x = hf.step(out, t, x, generator=noise.gens, **kw).prev_sample
    return x


@pytest.mark.parametrize('sampler, eta, steps, pred, kind, zero_snr, clip', [
    ('ddim', 0., 50, 'eps', 'linear', False, False), ('ddim', 0.5, 50, 'v', 'cosine', False, False),
    ('ddim', 0., 50, 'v', 'linear', True, False), ('ddim', 0., 50, 'eps', 'cosine', False, True),
    ('ddpm', 0., 50, 'eps', 'cosine', False, False), ('ddpm', 0., 20, 'v', 'linear', True, False),
    ('ddpm', 0., 50, 'x0', 'linear', False, True),
    ('dpm++', 0., 25, 'eps', 'linear', False, False), ('dpm++', 1., 25, 'v', 'cosine', False, False),
    ('dpm++', 0., 10, 'x0', 'linear', False, False)])
def test_sample_end_to_end_matches_diffusers(sampler, eta, steps, pred, kind, zero_snr, clip):
    # clip=True (x0 clamped to [-1, 1]) only for DDIM/DDPM: diffusers' DPM-Solver has dynamic thresholding, no clip_sample
    T, w, seed = 1000, 1.5, 3
    S = Schedule.from_name(kind, T, zero_snr=zero_snr)
    model, c = LabelGauss(S, pred, std=1.0 if clip else 0.5), cond()
    ours = sample(Pipeline(model, S, pred, SHAPE[-1]), c, sampler, steps, w, eta, seed=seed, clip=clip)
    hf = dict(ddim=ddim, ddpm=ddpm)[sampler](kind, T, pred, zero_snr, clip) if sampler != 'dpm++' else dpm(kind, T, pred, sde=eta > 0)
    theirs = hf_sample(hf, S, model, c, steps, w, eta, seed)
    torch.testing.assert_close(ours, theirs, **E2E)
    assert ours.std() > 0.3
    if clip:   # the clamp was active: without it the result is a different one
        assert (sample(Pipeline(model, S, pred, SHAPE[-1]), c, sampler, steps, w, eta, seed=seed, clip=False) - ours).abs().max() > 1e-2
