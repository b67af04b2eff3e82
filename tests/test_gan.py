"The GAN's classifier term: its gradient reaches the generator, it can teach the labels alone, and training logs how hard it pulls."
import json
import pytest, torch
from ddpm_lab.data import DATA_DIR, encode, read_labels
from ddpm_lab.evaluation import load_evaluator, predict, course_accuracy
from ddpm_lab.gan import (get_gan_config, make_generator, make_discriminator, frozen_classifier, d_loss, g_loss, g_weights, generate,
                          fit_to_classifier, term_pulls, train_gan, load_generator)

TEST = encode(read_labels(DATA_DIR / 'test.json'))


def test_the_classifier_gradient_reaches_every_generator_weight_and_no_classifier_weight():
    cfg = get_gan_config('tiny', adv_weight=0., cls_weight=1.)
    torch.manual_seed(1)
    G, D, clf = make_generator(cfg), make_discriminator(cfg), frozen_classifier(device='cpu')
    total, _ = g_loss(D, clf, G(torch.randn(4, cfg['z_dim']), TEST[:4]), TEST[:4], cfg, step=0)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in clf.parameters())


def test_the_classifier_term_alone_raises_the_evaluators_accuracy():
    torch.manual_seed(0)
    G, ev = make_generator(get_gan_config('tiny')), load_evaluator()
    acc = lambda: course_accuracy(predict(ev, generate(G, TEST)), TEST)
    before = acc()
    losses = fit_to_classifier(G, frozen_classifier(device='cpu'), TEST, steps=200)   # 0.53-0.72 from 0.10-0.11 over init seeds 0-2 on an AVX2 EPYC
    assert acc() > before + 0.25 and losses[-1] < losses[0] / 2


def test_training_logs_the_pull_of_both_terms(tmp_path):
    train_gan(get_gan_config('tiny', steps=20), out=tmp_path)
    log = [json.loads(l) for l in (tmp_path / 'log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in log] == [10, 20] and all(r['pull_adv'] > 0 and r['pull_cls'] > 0 for r in log)


def test_pulls_weigh_each_term_and_a_term_without_gradient_pulls_nothing():
    fake = torch.randn(2, 3, 8, 8, requires_grad=True)
    adv, cls = (fake ** 2).sum(), fake.sum()
    p = term_pulls(fake, dict(adv=adv, cls=cls), dict(adv=0.5, cls=2.))
    assert torch.isclose(torch.tensor(p['adv']), (fake.detach()).norm()) and abs(p['cls'] - 2 * 384 ** 0.5) < 1e-4
    assert term_pulls(fake, dict(adv=adv, cls=torch.zeros(())), dict(adv=1., cls=0.))['cls'] == 0.
    assert g_weights(get_gan_config('cpu', d_head='acgan', aux_weight=3.), 0)['aux'] == 3. and g_weights(get_gan_config('cpu'), 0)['aux'] == 0.


def test_an_acgan_discriminator_learns_labels_from_real_images_only():
    cfg = get_gan_config('tiny', d_head='acgan', aux_weight=2.)
    torch.manual_seed(0)
    D, bce = make_discriminator(cfg), torch.nn.functional.binary_cross_entropy_with_logits
    x, fake, c = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1, TEST[:4]
    (real, labels), (gen, _) = D(x, c), D(fake, c)
    plain = bce(real, torch.ones(4)) + bce(gen, torch.zeros(4))
    assert torch.isclose(d_loss(D, x, fake, c, cfg['aux_weight']), plain + 2. * bce(labels, c))
    assert torch.equal(D(x, TEST[4:8])[1], labels)          # the label head reads the image alone


def test_a_projection_discriminator_scores_an_image_by_its_labels():
    torch.manual_seed(0)
    D = make_discriminator(get_gan_config('tiny', d_head='projection', d_norm='spectral')).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad(): a, b = D(x, TEST[:2]), D(x, TEST[2:4])
    assert a.shape == (2,) and not torch.allclose(a, b)


def test_an_unknown_discriminator_head_names_the_valid_ones():
    with pytest.raises(ValueError, match='valid d_heads: concat, projection, acgan'): make_discriminator(get_gan_config('cpu', d_head='wgan'))


def test_conditional_batchnorm_starts_as_the_plain_generator_and_carries_the_label_alone():
    torch.manual_seed(0)
    plain, cbn = make_generator(get_gan_config('tiny')), make_generator(get_gan_config('tiny', g_cond='cbn'))
    cbn.load_state_dict(plain.state_dict(), strict=False)
    z, c = torch.randn(2, 32), TEST[:2]
    plain.eval(); cbn.eval()
    with torch.no_grad():
        assert torch.equal(plain(z, c), cbn(z, c))                   # zero-initialised scale and shift
        for p in cbn.cbn.parameters(): p.normal_(0, 0.5)
        torch.nn.init.zeros_(cbn.embed[0].weight); torch.nn.init.zeros_(cbn.embed[0].bias)   # no label beside the noise
        assert not torch.allclose(cbn(z, TEST[:2]), cbn(z, TEST[2:4]))
    with pytest.raises(ValueError, match='valid g_conds: input, cbn'): make_generator(get_gan_config('tiny', g_cond='film'))


def test_an_ema_generator_is_saved_resumed_and_generates(tmp_path):
    cfg = get_gan_config('tiny', steps=20, g_ema=0.9)
    train_gan(cfg, out=tmp_path / 'a')
    ck = torch.load(tmp_path / 'a' / 'ckpt.pt', weights_only=True)
    G, _ = load_generator(tmp_path / 'a' / 'ckpt.pt', device='cpu')
    raw = make_generator(cfg); raw.load_state_dict(ck['model'])
    assert all(torch.equal(v, ck['ema'][k]) for k, v in G.state_dict().items())
    assert not torch.equal(generate(G, TEST[:4]), generate(raw, TEST[:4]))
    train_gan(cfg | dict(steps=40), out=tmp_path / 'b')                       # uninterrupted ...
    train_gan(cfg | dict(steps=40), out=tmp_path / 'a', resume=True)          # ... and resumed: the same EMA
    ema = lambda d: torch.load(tmp_path / d / 'ckpt.pt', weights_only=True)['ema']
    assert all(torch.allclose(v, ema('b')[k]) for k, v in ema('a').items())


def test_a_checkpoint_written_before_the_new_keys_resumes_and_loads(tmp_path):
    old_keys = ('d_head', 'aux_weight', 'g_cond', 'g_ema')
    train_gan(get_gan_config('tiny', steps=10), out=tmp_path)
    ck = torch.load(tmp_path / 'ckpt.pt', weights_only=True)
    for k in old_keys: del ck['config'][k]
    torch.save(ck, tmp_path / 'ckpt.pt')
    assert train_gan(get_gan_config('tiny', steps=20), out=tmp_path, resume=True)['step'] == 20
    assert load_generator(tmp_path / 'ckpt.pt', device='cpu')[1]['g_cond'] == 'input'


def test_a_residual_discriminator_reads_labels_as_the_dcgan_one_does():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for head in ('concat', 'projection', 'acgan'):
        D = make_discriminator(get_gan_config('tiny', d_arch='resnet', d_head=head, d_norm='spectral')).eval()
        with torch.no_grad(): a, b = D(x, TEST[:2]), D(x, TEST[2:4])
        if head == 'acgan': assert a[1].shape == (2, 24) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])   # both heads read the image alone
        else: assert a.shape == (2,) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="unknown d_arch 'resnt' \\(did you mean 'resnet'\\?\\)"): make_discriminator(get_gan_config('tiny', d_arch='resnt'))


def test_a_residual_discriminator_run_resumes_exactly(tmp_path):
    cfg = get_gan_config('tiny', steps=8, d_arch='resnet', d_head='acgan', d_norm='spectral', cls_weight=0.)
    full = train_gan(cfg, out=tmp_path / 'full')['losses']
    train_gan(cfg, out=tmp_path / 'half', until=4)
    half = train_gan(cfg, out=tmp_path / 'half', resume=True)['losses']
    assert half == full and len(full['aux']) == 8



def test_a_gan_whose_loss_turns_nan_stops_as_a_diverged_run_keeping_its_last_checkpoint(tmp_path, monkeypatch):
    import ddpm_lab.gan as gan
    from ddpm_lab.pipeline import load_checkpoint
    from ddpm_lab.train import TrainingDiverged
    real, calls = gan.d_loss, []
    def nan_after_14_updates(*a, **k):
        calls.append(1)
        return real(*a, **k) * (float('nan') if len(calls) > 14 else 1.)
    monkeypatch.setattr(gan, 'd_loss', nan_after_14_updates)
    with pytest.raises(TrainingDiverged, match=r'non-finite at step 14 .*last good checkpoint .* \(step 10\) was kept') as e:
        train_gan(get_gan_config('tiny', steps=30, ckpt_every=10, sample_every=0), out=tmp_path)
    assert e.value.step == 14   # so an ablation sweep records the run as diverged and goes on (test_sweeps.py)
    assert load_checkpoint(tmp_path / 'ckpt.pt')['step'] == 10   # the NaN state was never written
