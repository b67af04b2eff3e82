"Training engine: learning, exact resume, SIGTERM, NaN guard, refusal to overwrite, multi-process torchrun."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch
import ddpm_lab.train as T
from ddpm_lab.train import get_config, train
from ddpm_lab.pipeline import load_pipeline, load_checkpoint
from ddpm_lab.sampling import sample
from ddpm_lab.data import encode


def _high_freq(x):
    "Mean absolute difference of neighbouring pixels: large for noise, small for scenes."
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()).item() / 2


@pytest.mark.parametrize('overrides', [{}, dict(pred='edm')])
def test_tiny_learns_and_samples_are_not_noise(tmp_path, overrides):
    "The tiny preset (eps-prediction), and with EDM's preconditioning (pred='edm': scaled input, mixed target), learns smooth scenes."
    res = train(get_config('tiny', **overrides), out=tmp_path)
    L = torch.tensor(res['losses'])
    assert res['finished'] and res['step'] == 300
    assert L[-30:].mean() < 0.4 * L[:10].mean(), (L[:10].mean(), L[-30:].mean())
    pipe = load_pipeline(res['ckpt'])
    imgs, _ = T.training_data(pipe.config)
    x = sample(pipe, encode([['gray cube', 'red sphere']] * 16), sampler='ddim', steps=20, w=0.5, seed=0)
    noise = torch.randn_like(x).clamp(-1, 1)
    data = imgs[:16].float() / 127.5 - 1
    assert _high_freq(x) < 0.5 * _high_freq(noise)  # smooth images, not noise
    assert abs(x.mean() - data.mean()) < 0.25       # a gray floor, like the data


def test_edm_refuses_min_snr_weighting():
    with pytest.raises(ValueError, match="min_snr=5.0 with pred='edm': set min_snr=null"): get_config('cpu', pred='edm')
    assert get_config('cpu', pred='edm', min_snr=None)['pred'] == 'edm'


def test_resume_equals_uninterrupted(tmp_path):
    c = get_config('tiny', steps=40, ckpt_every=10)
    full = train(c, out=tmp_path / 'full')['losses']
    part = train(c, out=tmp_path / 'part', until=25)
    assert part['step'] == 25 and not part['finished']
    rest = train(c, out=tmp_path / 'part', resume=True)
    assert rest['finished'] and rest['losses'] == full
    a, b = load_checkpoint(tmp_path / 'full' / 'ckpt.pt'), load_checkpoint(tmp_path / 'part' / 'ckpt.pt')
    assert all(torch.equal(a['ema'][k], b['ema'][k]) for k in a['ema'])


def test_sigterm_saves_a_checkpoint_that_resumes(tmp_path):
    cmd = [sys.executable, '-m', 'ddpm_lab.cli', 'train', '--preset', 'tiny', '--out', str(tmp_path),
           '--set', 'steps=100000', 'ckpt_every=100000', 'log_every=5']   # no checkpoint but the one SIGTERM writes
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    log, waited = tmp_path / 'log.jsonl', 0
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        assert p.poll() is None and waited < 600, 'training did not start'
        time.sleep(0.2); waited += 0.2
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 130 and 'checkpoint saved' in out and 'Traceback' not in out, out[-2000:]
    step = load_checkpoint(tmp_path / 'ckpt.pt')['step']
    assert step >= 10
    res = train(dict(load_checkpoint(tmp_path / 'ckpt.pt')['config'], steps=step + 5), out=tmp_path, resume=True)
    assert res['finished'] and res['step'] == step + 5


def test_existing_run_is_not_overwritten(tmp_path):
    train(get_config('tiny', steps=5), out=tmp_path)
    before = (tmp_path / 'ckpt.pt').read_bytes()
    with pytest.raises(ValueError, match='--resume'):
        train(get_config('tiny', steps=5), out=tmp_path)
    assert (tmp_path / 'ckpt.pt').read_bytes() == before


def test_resume_with_other_config_is_refused(tmp_path):
    train(get_config('tiny', steps=5), out=tmp_path)
    with pytest.raises(ValueError, match=r"config differs in \['lr'\]"):
        train(get_config('tiny', steps=10, lr=1e-4), out=tmp_path, resume=True)


def test_precision_settings_do_not_block_resume(tmp_path, monkeypatch):
    "An explicit-setting run resumes under 'auto' and keeps the precision it ran with, without measuring again."
    train(get_config('tiny', steps=10, amp=True, channels_last=False), out=tmp_path)
    monkeypatch.setattr(T, 'bf16_speedup', lambda *a: pytest.fail('a resumed run must not measure again'))
    res = train(get_config('tiny', steps=15), out=tmp_path, resume=True)
    assert res['finished'] and res['step'] == 15 and len(res['losses']) == 15
    ran = load_checkpoint(tmp_path / 'ckpt.pt')['config']
    assert (ran['amp'], ran['channels_last']) == ('bf16', False)   # True: bf16, as older configs wrote it


@pytest.mark.parametrize('speedup, chosen', [(1.7, ('bf16', False)), (1.05, ('fp32', True)), (0.7, ('fp32', True))])
def test_auto_precision_follows_the_measurement(tmp_path, monkeypatch, speedup, chosen):
    "'auto' on a CPU takes bf16 (then NCHW) only when it measured at least 10% faster, and records the choice."
    monkeypatch.setattr(T, '_BF16_FASTER', {})
    monkeypatch.setattr(T, 'bf16_speedup', lambda *a: speedup)
    train(get_config('tiny', steps=2), out=tmp_path)
    ran = load_checkpoint(tmp_path / 'ckpt.pt')['config']
    assert (ran['amp'], ran['channels_last']) == chosen
    assert T.fast_path(get_config('tiny', channels_last=True), torch.device('cpu')) == (chosen[0], True)   # a forced layout stays


def test_fit_times_again_from_step_20_to_a_tenth_of_the_length(tmp_path, monkeypatch):
    "The first fit times steps 5-20; the second times from there to a tenth of its length (at least twice 15 steps), once."
    calls = []
    def fake(done, timed, seconds, minutes): calls.append((done, timed)); return 400 if len(calls) == 1 else 90
    monkeypatch.setattr(T, 'fitted_steps', fake)
    res = train(get_config('tiny', steps=10**6), out=tmp_path, fit=0.5)
    assert calls == [(20, 15), (50, 30)] and res['finished'] and res['step'] == 90
    assert load_checkpoint(tmp_path / 'ckpt.pt')['config']['steps'] == 90


def test_fit_sets_the_length_and_resume_keeps_it(tmp_path, monkeypatch):
    "fit times steps 5-20 and sets the step count there (37: the second timing would end at step 50, past the run); a resumed run keeps that count."
    monkeypatch.setattr(T, 'fitted_steps', lambda *a: 37)   # timing-free
    part = train(get_config('tiny'), out=tmp_path, fit=0.5, until=30)
    assert not part['finished'] and load_checkpoint(tmp_path / 'ckpt.pt')['config']['steps'] == 37
    monkeypatch.setattr(T, 'fitted_steps', lambda *a: pytest.fail('a resumed run must not fit again'))
    rest = train(get_config('tiny'), out=tmp_path, fit=0.5, resume=True)
    assert rest['finished'] and rest['step'] == 37 and len(rest['losses']) == 37
    with pytest.raises(ValueError, match='warm-up of at least 20 steps'):
        train(get_config('tiny', warmup=5), out=tmp_path / 'short', fit=1)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real, calls = T.diffusion_loss, []
    def flaky(*a, **k):
        calls.append(1)
        loss = real(*a, **k)
        return loss * float('nan') if len(calls) > 25 else loss
    monkeypatch.setattr(T, 'diffusion_loss', flaky)
    with pytest.raises(FloatingPointError, match='at step 25.*last good checkpoint') as e:
        train(get_config('tiny', steps=100, ckpt_every=10, amp='fp32'), out=tmp_path)   # amp set: no precision probe calls the loss first
    assert isinstance(e.value, T.TrainingDiverged) and e.value.step == 25   # so a sweep records it and goes on
    ck = load_checkpoint(tmp_path / 'ckpt.pt')
    assert ck['step'] == 20 and all(torch.isfinite(v).all() for v in ck['model'].values() if v.is_floating_point())


def test_torchrun_two_processes(tmp_path):
    torchrun = shutil.which('torchrun', path=os.path.dirname(sys.executable)) or shutil.which('torchrun')
    cmd = [torchrun, '--standalone', '--nproc_per_node=2', '-m', 'ddpm_lab.cli', 'train', '--preset', 'tiny',
           '--out', str(tmp_path), '--set', 'steps=20', 'ckpt_every=10', 'log_every=5']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(tmp_path / 'ckpt.pt')
    assert ck['step'] == 20 and len(ck['losses']) == 20
    assert all(torch.isfinite(torch.tensor(ck['losses'])))
    assert '2 process(es)' in r.stdout + r.stderr
    log = [json.loads(l) for l in (tmp_path / 'log.jsonl').read_text().splitlines()]
    assert [l['step'] for l in log] == [5, 10, 15, 20]


def _loss_times(factor, after):
    "diffusion_loss, multiplied by `factor` from call `after` on: a finite loss that jumps, as a diverged run's does."
    real, calls = T.diffusion_loss, []
    def jumpy(*a, **k):
        calls.append(1)
        return real(*a, **k) * (factor if len(calls) > after else 1.)
    return jumpy


def test_a_diverging_run_stops_before_its_next_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(T, 'diffusion_loss', _loss_times(50., 25))   # tiny: log_every 10
    with pytest.raises(T.TrainingDiverged, match=r'by step 30: .* is \d+x the lowest.*last good checkpoint .* \(step 20\) was kept') as e:
        train(get_config('tiny', steps=100, ckpt_every=10, amp='fp32'), out=tmp_path)   # amp set: no precision probe calls the loss first
    assert e.value.step == 30 and isinstance(e.value, FloatingPointError)   # the command line reports it in one line, as a NaN
    assert load_checkpoint(tmp_path / 'ckpt.pt')['step'] == 20             # nothing written after the jump
    assert [json.loads(l)['step'] for l in (tmp_path / 'log.jsonl').read_text().splitlines()] == [10, 20]


def test_the_divergence_guard_remembers_the_lowest_loss_across_a_resume(tmp_path, monkeypatch):
    train(get_config('tiny', steps=100, ckpt_every=10), out=tmp_path, until=20)
    monkeypatch.setattr(T, 'diffusion_loss', _loss_times(50., 0))   # jumps from the first step after the resume
    with pytest.raises(T.TrainingDiverged, match='by step 30'):     # the lowest window (before the resume) came back with the checkpoint
        train(get_config('tiny', steps=100, ckpt_every=10), out=tmp_path, resume=True)
    assert load_checkpoint(tmp_path / 'ckpt.pt')['step'] == 20


def test_diverge_none_turns_the_guard_off_and_bad_values_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(T, 'diffusion_loss', _loss_times(50., 25))
    assert train(get_config('tiny', steps=40, diverge=None, amp='fp32'), out=tmp_path)['finished']
    for bad in (1, 0.5, float('nan'), 'off'):
        with pytest.raises(ValueError, match='diverge'): get_config('tiny', diverge=bad)


def test_the_command_line_reports_a_diverged_run_in_one_line(tmp_path, monkeypatch, capsys):
    from ddpm_lab.cli import main
    monkeypatch.setattr(T, 'diffusion_loss', _loss_times(50., 25))
    with pytest.raises(SystemExit) as e:
        main(['train', '--preset', 'tiny', '--out', str(tmp_path), '--set', 'steps=100', 'ckpt_every=10', 'amp=fp32'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'ddpm-lab train: error: training diverged by step 30' in err and 'Traceback' not in err
    assert load_checkpoint(tmp_path / 'ckpt.pt')['step'] == 20


def test_the_extra_emas_of_bench_ema_rates_follow_the_loop_and_survive_a_resume(tmp_path, monkeypatch):
    "bench/ema_rates.py's copy with the preset's own decay equals the loop's EMA bit for bit, across an interruption."
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / 'bench'))
    from ema_rates import MoreEMAs, with_ema
    cfg, run = get_config('tiny', ema=0.9, ckpt_every=5), tmp_path / 'run'
    more = lambda: [MoreEMAs(run / 'more.pt', (0.9, 0.5))]
    train(cfg, out=run, until=7, callbacks=more())   # stopped between checkpoint steps: both files are written at step 7
    train(cfg, out=run, resume=True, until=13, callbacks=more())
    ck, extra = load_checkpoint(run / 'ckpt.pt'), torch.load(run / 'more.pt', weights_only=True)
    assert ck['step'] == extra['step'] == 13
    assert all(torch.equal(v, extra['emas']['0.9'][k]) for k, v in ck['ema'].items())
    assert any(not torch.equal(v, extra['emas']['0.5'][k]) for k, v in ck['ema'].items() if v.is_floating_point())
    slow = load_pipeline(with_ema(ck, extra['emas']['0.5'], 0.5, tmp_path / 'ema0.5' / 'ckpt.pt'))
    assert load_checkpoint(tmp_path / 'ema0.5' / 'ckpt.pt')['config']['ema'] == 0.5
    assert all(torch.equal(p, extra['emas']['0.5'][k]) for k, p in slow.net.state_dict().items())


def test_bench_grain_agreement_loss_is_the_loops_loss_plus_a_term_that_vanishes_when_the_predictions_agree(monkeypatch):
    "bench/grain_agreement.py's loss without the term equals train.diffusion_loss on the same random draws; its term is 0 for a network that ignores the label and positive for one that does not."
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / 'bench'))
    from grain_agreement import losses
    from ddpm_lab.pipeline import make_model
    from ddpm_lab.schedule import Schedule
    cfg = get_config('tiny', pred='v', min_snr=5.0, t_logit=[-1.0, 1.5])
    torch.manual_seed(0)
    net, sched = make_model(cfg), Schedule.from_name(cfg['schedule'], cfg['T'])
    x0, c = torch.rand(8, 3, cfg['size'], cfg['size']) * 2 - 1, encode([['red cube', 'blue sphere']] * 8)
    draw = lambda: torch.Generator().manual_seed(3)
    main, term = losses(net, sched, x0, c, cfg, draw(), agree=1.)
    torch.testing.assert_close(main, T.diffusion_loss(net, sched, x0, c, cfg, draw()))
    assert term > 0
    blind = lambda x, t, c: net(x, t, torch.zeros_like(c))
    assert losses(blind, sched, x0, c, cfg, draw(), agree=1.)[1] == 0


def test_bench_guidance_distillation_sees_the_control_arms_noised_inputs():
    "sampling.distil_loss (bench/grain_agreement.py's distil arms) draws the same times and noise as the control arm's loss from the same generator, so the arms stay paired; it is 0 for a student equal to its teacher at w = 0."
    from ddpm_lab.sampling import distil_loss
    from ddpm_lab.pipeline import make_model
    from ddpm_lab.schedule import Schedule
    cfg = get_config('tiny', pred='v', min_snr=5.0, t_logit=[-1.0, 1.5], p_uncond=0.)
    torch.manual_seed(0)
    net, sched = make_model(cfg), Schedule.from_name(cfg['schedule'], cfg['T'])
    x0, c = torch.rand(8, 3, cfg['size'], cfg['size']) * 2 - 1, encode([['red cube', 'blue sphere']] * 8)
    draw = lambda: torch.Generator().manual_seed(3)
    assert distil_loss(net, net, sched, x0, c, cfg, draw(), 0.) == 0
    seen = []
    spy = lambda x, t, c: seen.append((x, t)) or net(x, t, c)
    T.diffusion_loss(spy, sched, x0, c, cfg, draw()); distil_loss(spy, net, sched, x0, c, cfg, draw(), 3.)
    assert torch.equal(seen[0][0], seen[1][0]) and torch.equal(seen[0][1], seen[1][1])
