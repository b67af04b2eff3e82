"Two judges, clean samples and our own label lists (issue 24): the second judge's file, kinds of error, cleanliness, evaluate under both judges."
import json, torch, pytest
from ddpm_lab.data import DATA_DIR, LABELS, HELDOUT_FILES, encode, read_labels, own_label_lists
from ddpm_lab.render import render
from ddpm_lab.evaluation import (JUDGE2_PATH, ceiling, EVAL_FILES, build_evaluator, save_evaluator, load_evaluator, predict, course_accuracy,
                                 hits, error_kinds, grain, saturation, cleanliness, evaluate)
from conftest import run_cli


def test_second_judge_round_trip_carries_its_architecture(tmp_path):
    torch.manual_seed(0)
    j = build_evaluator('regnet_y_400mf').eval()
    path = save_evaluator(j, tmp_path/'j.pth', half=True, arch='regnet_y_400mf')
    raw = torch.load(path, weights_only=True)
    assert raw['arch'] == 'regnet_y_400mf' and raw['model']['fc.0.weight'].shape == (24, 440)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(predict(load_evaluator(path), x), predict(j.half().float(), x), atol=2e-3, rtol=0)
    assert 'arch' not in torch.load(save_evaluator(build_evaluator(), tmp_path/'course.pth'), weights_only=True)   # the course format stays as it was


def test_judge_file_without_its_arch_or_with_an_unknown_one_says_which(tmp_path):
    sd = build_evaluator('regnet_y_400mf').state_dict()
    torch.save({'model': sd}, tmp_path/'no_arch.pth')          # read as the course's resnet18: every tensor is wrong
    with pytest.raises(ValueError, match="not a resnet18 evaluator.*missing"): load_evaluator(tmp_path/'no_arch.pth')
    torch.save({'model': sd, 'arch': 'vgg11'}, tmp_path/'vgg.pth')
    with pytest.raises(ValueError, match="'vgg11' is not one of resnet18, regnet_y_400mf"): load_evaluator(tmp_path/'vgg.pth')


def test_unknown_architecture_is_refused_before_rendering(tmp_path):
    r = run_cli('train-evaluator', '--arch', 'vgg11', '--out', tmp_path/'e.pth', '--scenes', 2, '--epochs', 1)
    assert r.returncode == 2 and "unknown evaluator architecture 'vgg11'; valid evaluator architectures: resnet18, regnet_y_400mf" in r.stderr
    assert 'render' not in r.stderr and not list(tmp_path.iterdir())


def test_the_shipped_second_judge_is_another_family_near_the_ceiling():
    raw = torch.load(JUDGE2_PATH, weights_only=True)
    assert raw['arch'] == 'regnet_y_400mf' and raw['meta']['config']['jitter'] is False and raw['meta']['config']['seed'] != 0
    for f in ('test.json', 'new_test.json'):   # measured again, not read from the file: 0.978 / 0.975 at 64x64
        measured = ceiling(JUDGE2_PATH, DATA_DIR / f, size=64)
        assert measured >= 0.97 and abs(measured - raw['meta']['ceiling'][f'{f}@64']) < 1e-6, (f, measured)
    assert type(load_evaluator(JUDGE2_PATH)).__name__ == 'RegNet' and JUDGE2_PATH.stat().st_size < 10e6


def test_error_kinds_pair_each_miss_with_the_label_that_took_its_place():
    t = encode([['red cube', 'blue sphere'], ['gray cylinder'], ['green sphere', 'cyan cube', 'yellow cylinder']])
    s = torch.zeros(3, 24)
    s[0, [LABELS.index('red cube'), LABELS.index('blue cube')]] = 1          # blue sphere -> blue cube: shape only
    s[1, LABELS.index('red cylinder')] = 1                                    # gray cylinder -> red cylinder: colour only
    s[2, [LABELS.index('purple sphere'), LABELS.index('brown cube'), LABELS.index('gray cube')]] = 1
    # image 3 misses all three: green sphere -> purple sphere (colour), cyan cube -> brown cube (colour), yellow cylinder -> gray cube (both)
    assert error_kinds(s, t) == {'colour': 3, 'shape': 1, 'both': 1}
    assert sum(error_kinds(s, t).values()) == int(t.sum()) - int(hits(s, t).sum())
    assert error_kinds(t, t) == {'colour': 0, 'shape': 0, 'both': 0}


def test_cleanliness_is_one_for_renders_and_grows_with_noise():
    lists = read_labels(DATA_DIR/'test.json')[:16]
    a, b = render(lists, size=32, seed=1), render(lists, size=32, seed=2)
    c = cleanliness(a, b)
    assert 0.8 < c['grain'] < 1.25 and 0.8 < c['saturation'] < 1.25, c
    noisy = (a / 127.5 - 1 + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert cleanliness(noisy, b)['grain'] > 2 and cleanliness(noisy, b)['saturation'] > 1.5
    flat = torch.full((2, 3, 8, 8), 128, dtype=torch.uint8)
    assert grain(flat) == 0 and saturation(flat) == 0


def test_our_label_lists_are_held_out_and_novel():
    own = own_label_lists()
    assert own == {f: read_labels(DATA_DIR/f) for f in HELDOUT_FILES} and set(HELDOUT_FILES) <= set(EVAL_FILES)
    scenes = {frozenset(v) for v in read_labels(DATA_DIR/'train.json').values()}
    tests = [frozenset(l) for f in ('test.json', 'new_test.json') for l in read_labels(DATA_DIR/f)]
    assert len(own['heldout.json']) == 64 and len({frozenset(l) for l in own['heldout.json']}) == 64
    assert all(frozenset(l) in scenes and frozenset(l) not in tests for l in own['heldout.json'])
    assert len(own['novel.json']) == 64 and len({frozenset(l) for l in own['novel.json']}) == 64
    assert all(len(set(l)) == 3 and frozenset(l) not in scenes for l in own['novel.json'])


def test_evaluate_scores_both_judges_and_cleanliness(tmp_path):
    from ddpm_lab.train import get_config
    from ddpm_lab.pipeline import make_model, save_checkpoint, load_pipeline
    from ddpm_lab.sampling import sample
    torch.manual_seed(0)
    cfg = get_config('tiny')
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg, model=make_model(cfg).state_dict(), ema=None, step=0))
    lists = [['red cube'], ['blue sphere', 'gray cylinder'], ['cyan cube', 'yellow sphere', 'green cylinder']]
    (tmp_path/'few.json').write_text(json.dumps(lists))
    ev, j2 = build_evaluator().eval(), build_evaluator('regnet_y_400mf').eval()
    res = evaluate(tmp_path/'ckpt.pt', evaluator=ev, judge2=j2, labels_files=[tmp_path/'few.json'], steps=2, w=1.0, seed=3, n_renders=2)
    pipe = load_pipeline(tmp_path/'ckpt.pt')
    imgs = sample(pipe, encode(lists), sampler='ddpm', steps=2, w=1.0, seed=3)
    (r,) = res['results']
    assert r['accuracy'] == course_accuracy(predict(ev, imgs), encode(lists))
    assert r['judge2']['accuracy'] == course_accuracy(predict(j2, imgs), encode(lists))
    assert r['judge2']['errors'] == error_kinds(predict(j2, imgs), encode(lists)) and set(r['errors']) == {'colour', 'shape', 'both'}
    assert r['grain'] > 0 and r['saturation'] > 0


def test_evaluate_seeds_reuses_the_seeds_saved_in_its_folder(tmp_path, monkeypatch):
    "Two processes can share the seeds of one summary: a seed whose results are already in OUT/seed<S> is read, not sampled again, unless the settings, judges, recommended sampling or weights differ."
    import ddpm_lab.evaluation as E
    from ddpm_lab.train import get_config
    from ddpm_lab.pipeline import make_model, save_checkpoint, load_checkpoint
    cfg = get_config('tiny')
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg, model=make_model(cfg).state_dict(), ema=None, step=0))
    (tmp_path/'one.json').write_text(json.dumps([['red cube'], ['blue sphere', 'gray cylinder']]))
    kw = dict(evaluator=build_evaluator().eval(), judge2=build_evaluator('regnet_y_400mf').eval(), labels_files=[tmp_path/'one.json'], steps=2, n_renders=1)
    first = E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **kw)
    monkeypatch.setattr(E, 'evaluate', lambda *a, **k: pytest.fail('a saved seed must not be sampled again'))
    assert E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **kw) == first
    with pytest.raises(pytest.fail.Exception): E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **(kw | dict(steps=3)))   # other settings: sampled again
    E.save_evaluator(kw['judge2'], tmp_path/'j2.pth', arch='regnet_y_400mf')
    with pytest.raises(pytest.fail.Exception): E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **(kw | dict(judge2=tmp_path/'j2.pth')))   # another judge: scored again
    same = load_checkpoint(tmp_path/'ckpt.pt')['model']
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg, model=same, ema=None, step=0))   # written again, the same: still reused
    assert E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **kw) == first
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg | dict(sampling=dict(w=1.0)), model=same, ema=None, step=0))
    with pytest.raises(pytest.fail.Exception): E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **kw)   # it now recommends another w: sampled again
    torch.manual_seed(1)
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg, model=make_model(cfg).state_dict(), ema=None, step=0))
    with pytest.raises(pytest.fail.Exception): E.evaluate_seeds(tmp_path/'ckpt.pt', (0, 1), out=tmp_path/'eval', **kw)   # other weights under the same name: sampled again
