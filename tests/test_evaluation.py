"Course-format evaluator files, the course metric and the Frechet distance (fast: random weights, no rendering)."
import json, os, torch, pytest
from torch import nn
from ddpm_lab.data import LABELS, encode
from ddpm_lab.evaluation import (build_evaluator, load_evaluator, save_evaluator, predict, eval_input, course_accuracy,
                                 per_image_accuracy, hits, breakdown, confusion, frechet_distance, frechet_from_stats, evaluate)

@pytest.fixture(scope='module')
def evaluator():
    torch.manual_seed(0)
    return build_evaluator().eval()

@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 64, 64, generator=g) * 2 - 1
    y = encode([['red cube'], ['blue sphere', 'gray cylinder'], ['cyan cube', 'yellow sphere', 'green cylinder'],
                ['purple cube'], ['brown sphere', 'red cylinder'], ['gray cube', 'gray sphere', 'gray cylinder']])
    return x, y

def test_course_file_any_path_reproduces_scores(evaluator, batch, tmp_path):
    x, y = batch
    with torch.no_grad(): want = evaluator(x)
    path = save_evaluator(evaluator, tmp_path/'some where'/'deep'/'checkpoint.pth')
    raw = torch.load(path, weights_only=True)
    assert list(raw)[0] == 'model' and set(raw) <= {'model', 'checksum'} and raw['model']['fc.0.weight'].shape == (24, 512) and raw['model']['fc.0.bias'].shape == (24,)
    loaded = load_evaluator(path, device='cpu')
    assert not loaded.training and next(loaded.parameters()).device.type == 'cpu'
    got = predict(loaded, x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert course_accuracy(got, y) == course_accuracy(want, y)
    assert [p.name for p in path.parent.iterdir()] == ['checkpoint.pth']   # no temporary file left behind

def test_half_precision_round_trip(evaluator, batch, tmp_path):
    x, _ = batch
    full, half = save_evaluator(evaluator, tmp_path/'f.pth'), save_evaluator(evaluator, tmp_path/'h.pth', half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert torch.load(half, weights_only=True)['model']['conv1.weight'].dtype == torch.float16
    loaded = load_evaluator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad(): torch.testing.assert_close(predict(loaded, x), evaluator(x), rtol=0, atol=1e-2)
    resaved = torch.load(save_evaluator(loaded, tmp_path/'again.pth'), weights_only=True)['model']
    assert resaved['fc.0.weight'].dtype == torch.float32      # back to the course format

def test_save_replaces_existing_file(evaluator, tmp_path):
    p = tmp_path/'checkpoint.pth'; p.write_text('old')
    save_evaluator(evaluator, p)
    assert load_evaluator(p) is not None and sorted(os.listdir(tmp_path)) == ['checkpoint.pth']

def test_wrong_head_names_tensors_and_shapes(tmp_path):
    bad = build_evaluator(); bad.fc = nn.Sequential(nn.Linear(512, 10), nn.Sigmoid())
    torch.save({'model': bad.state_dict()}, tmp_path/'ten.pth')
    with pytest.raises(ValueError, match=r"fc\.0\.weight expected \(24, 512\) found \(10, 512\)") as e: load_evaluator(tmp_path/'ten.pth')
    assert 'ten.pth' in str(e.value) and 'fc.0.bias expected (24,) found (10,)' in str(e.value)

def test_plain_linear_head_reports_missing_and_unexpected(tmp_path):
    m = build_evaluator(); m.fc = nn.Linear(512, 24)
    torch.save({'model': m.state_dict()}, tmp_path/'plain.pth')
    with pytest.raises(ValueError) as e: load_evaluator(tmp_path/'plain.pth')
    assert 'missing: fc.0.weight (24, 512), fc.0.bias (24,)' in str(e.value) and 'unexpected: fc.weight (24, 512)' in str(e.value)

def test_missing_model_key_lists_keys(evaluator, tmp_path):
    torch.save({'state_dict': evaluator.state_dict(), 'epoch': 3}, tmp_path/'nokey.pth')
    with pytest.raises(ValueError, match="key 'model'.*found keys 'state_dict', 'epoch'"): load_evaluator(tmp_path/'nokey.pth')
    torch.save(evaluator.state_dict(), tmp_path/'bare.pth')
    with pytest.raises(ValueError, match=r"bare state dict: save it as \{'model': state_dict\}"): load_evaluator(tmp_path/'bare.pth')
    torch.save([1, 2], tmp_path/'list.pth')
    with pytest.raises(ValueError, match='found a list'): load_evaluator(tmp_path/'list.pth')
    torch.save({'model': torch.zeros(3)}, tmp_path/'tensor.pth')
    with pytest.raises(ValueError, match="found 'model' holding a Tensor"): load_evaluator(tmp_path/'tensor.pth')

def test_not_a_torch_file_names_it(tmp_path):
    for name, data in [('notes.txt', b'hello, not weights'), ('empty.pth', b''), ('image.png', b'\x89PNG\r\n\x1a\n' + bytes(100))]:
        (tmp_path/name).write_bytes(data)
        with pytest.raises(ValueError, match='not a torch weight file') as e: load_evaluator(tmp_path/name)
        assert str(tmp_path/name) in str(e.value)
    with pytest.raises(FileNotFoundError, match='nowhere.pth'): load_evaluator(tmp_path/'nowhere.pth')

class _Payload:
    "Unpickling this would create a file: weights_only loading must refuse it before it runs."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (open, (self.marker, 'w'))

def test_pickled_code_is_refused_not_run(tmp_path):
    marker = tmp_path/'pwned'
    torch.save({'model': {'conv1.weight': _Payload(str(marker))}}, tmp_path/'evil.pth')
    with pytest.raises(ValueError, match='needs pickled code') as e: load_evaluator(tmp_path/'evil.pth')
    assert 'evil.pth' in str(e.value) and not marker.exists()

def test_eval_input_upsamples_32_and_reads_uint8():
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8); x[:, 0] = 255
    z = eval_input(x)
    assert z.shape == (2, 3, 64, 64) and z.dtype == torch.float32
    assert torch.equal(z[:, 0], torch.ones(2, 64, 64)) and torch.equal(z[:, 1], -torch.ones(2, 64, 64))

def _scores(rows):
    "(N,24) scores with the given {label: score} per image, 0 elsewhere."
    s = torch.zeros(len(rows), 24)
    for i, r in enumerate(rows):
        for l, v in r.items(): s[i, LABELS.index(l)] = v
    return s

def test_course_accuracy_is_hits_over_all_labels_not_mean_of_images():
    y = encode([['red cube'], ['blue sphere', 'gray cylinder', 'cyan cube']])
    s = _scores([{'red cube': .9}, {'blue sphere': .8, 'blue cube': .7, 'yellow cube': .7, 'gray cylinder': .6}])
    assert hits(s, y).sum(1).tolist() == [1, 1]
    assert course_accuracy(s, y) == pytest.approx(2 / 4)
    assert per_image_accuracy(s, y) == pytest.approx((1 + 1 / 3) / 2)

def test_course_accuracy_more_cases():
    y = encode([['red cube', 'red sphere'], ['gray cylinder'], ['green cube', 'brown sphere', 'cyan cylinder']])
    perfect = y * 0.9 + 0.05
    assert course_accuracy(perfect, y) == 1.0 and per_image_accuracy(perfect, y) == 1.0
    # image 1: top-2 = {red cube, blue cube} -> 1 hit; image 2: miss; image 3: all three -> 3 hits
    s = _scores([{'red cube': .99, 'blue cube': .98, 'red sphere': .97}, {'gray cube': .9, 'gray cylinder': .8},
                 {'green cube': .5, 'brown sphere': .5, 'cyan cylinder': .5}])
    assert course_accuracy(s, y) == pytest.approx(4 / 6)             # test.json steps in 1/72, new_test in 1/84
    assert per_image_accuracy(s, y) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert course_accuracy(1 - perfect, y) == 0.0
    with pytest.raises(ValueError, match='no true label'): course_accuracy(s, torch.zeros(3, 24))

def test_breakdown_and_confusion():
    y = encode([['red cube'], ['blue sphere', 'gray cylinder', 'cyan cube']])
    s = _scores([{'red cube': .9}, {'blue sphere': .8, 'blue cube': .7, 'yellow cube': .7, 'gray cylinder': .6}])
    b = breakdown(s, y)
    assert b['count'] == pytest.approx({1: 1.0, 3: 1 / 3})
    assert b['shape'] == pytest.approx({'cube': 0.5, 'sphere': 1.0, 'cylinder': 0.0})
    assert b['color'] == pytest.approx({'gray': 0.0, 'red': 1.0, 'blue': 1.0, 'cyan': 0.0})
    assert b['label']['cyan cube'] == 0 and 'green cube' not in b['label']
    C = confusion(s, y)
    assert C.sum() == 4 and C.diag().sum() == 2
    assert C[LABELS.index('cyan cube'), LABELS.index('blue cube')] == 0.5

def test_frechet_closed_form_diagonal():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(16, generator=g, dtype=torch.float64) + .05, torch.rand(16, generator=g, dtype=torch.float64) + .05
    m1, m2 = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    want = ((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert frechet_from_stats(m1, torch.diag(a), m2, torch.diag(b)) == pytest.approx(want.item(), rel=1e-10)
    Q = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64)).Q   # rotating both changes nothing
    assert frechet_from_stats(Q @ m1, Q @ torch.diag(a) @ Q.T, Q @ m2, Q @ torch.diag(b) @ Q.T) == pytest.approx(want.item(), rel=1e-9)

def test_frechet_distance_on_features():
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(40, 512, generator=g), torch.randn(32, 512, generator=g) * 1.5 + 0.2   # singular covariances
    d = frechet_distance(f1, f2)
    assert d > 0 and d == pytest.approx(frechet_distance(f2, f1), rel=1e-8)
    assert frechet_distance(f1, f1) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(f1, f1 + 1) == pytest.approx(512, rel=1e-8)             # a shift adds |mu1 - mu2|^2

def test_evaluate_end_to_end(tmp_path):
    "A tiny untrained checkpoint through evaluate: sampled images are scored exactly as sample + predict would."
    from ddpm_lab.train import get_config
    from ddpm_lab.pipeline import make_model, save_checkpoint, load_pipeline
    from ddpm_lab.sampling import sample
    torch.manual_seed(0)
    cfg = get_config('tiny')
    save_checkpoint(tmp_path/'ckpt.pt', dict(config=cfg, model=make_model(cfg).state_dict(), ema=None, step=0))
    lists = [['red cube'], ['blue sphere', 'gray cylinder'], ['cyan cube', 'yellow sphere', 'green cylinder'], ['purple cube']]
    (tmp_path/'few.json').write_text(json.dumps(lists))
    ev = build_evaluator()
    res = evaluate(tmp_path/'ckpt.pt', evaluator=ev, labels_files=[tmp_path/'few.json'], steps=2, w=1.0, seed=3,
                   n_renders=2, out=tmp_path/'eval')
    pipe = load_pipeline(tmp_path/'ckpt.pt')
    imgs = sample(pipe, encode(lists), sampler='ddpm', steps=2, w=1.0, seed=3)
    (r,) = res['results']
    assert r['file'] == 'few.json' and r['accuracy'] == course_accuracy(predict(ev, imgs), encode(lists))
    assert 0 <= r['ceiling'] <= 1 and r['frechet'] >= 0 and r['frechet_floor'] >= 0 and r['sample_seconds'] > 0
    assert (tmp_path/'eval'/'few.png').is_file()
    assert json.loads((tmp_path/'eval'/'results.json').read_text()) == json.loads(json.dumps(res))
