"Data module: label validation, datasets and their failure modes, renderer determinism, render_dataset caching."
import json, os
import pytest, torch
from PIL import Image
import ddpm_lab.data as data_mod
import ddpm_lab.render as D
from ddpm_lab.data import DATA_DIR, LABELS, ICLEVR, check_labels, decode, encode, load_tensors, make_loader, read_labels
from ddpm_lab.render import random_label_lists, render, render_dataset


# ---- labels
def test_unknown_label_names_itself_lists_valid_ones_and_suggests():
    with pytest.raises(ValueError) as e: encode(['red cube', 'bleu sphere'])
    msg = str(e.value)
    assert "'bleu sphere'" in msg and "did you mean 'blue sphere'" in msg
    assert all(l in msg for l in LABELS)

@pytest.mark.parametrize('bad, match', [([], 'empty label list'), (['red cube', 'blue cube', 'red cube'], "'red cube' repeated"),
                                        ('red cube', 'list of labels'), ([['red cube'], []], 'empty label list')])
def test_bad_label_lists_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match): encode(bad)

def test_encode_decode_round_trip():
    lists = random_label_lists(200, max_objects=5, seed=3)
    c = encode(lists)
    assert c.shape == (200, 24) and c.sum(1).tolist() == [len(l) for l in lists]
    assert decode(c) == [sorted(l, key=LABELS.index) for l in lists]
    scores = c * 0.5 + torch.rand(c.shape, generator=torch.Generator().manual_seed(0)) * 0.4   # true labels score highest
    assert [decode(s, k=len(l)) for s, l in zip(scores, lists)] == decode(c)

@pytest.mark.parametrize('content, match', [('5', 'expected train format'), ('{"a.png": "red cube"}', "entry 'a.png'"),
                                            ('[["red cube"], ["red sphere", "purple cone"]]', 'entry 1'), ('{"a.png": []}', 'empty')])
def test_wrong_labels_file_names_file_and_entry(tmp_path, content, match):
    f = tmp_path / 'labels.json'; f.write_text(content)
    with pytest.raises(ValueError, match=match) as e: read_labels(f)
    assert str(f) in str(e.value)

def test_course_files_read():
    assert len(read_labels(DATA_DIR / 'train.json')) == 18009 and len(read_labels(DATA_DIR / 'new_test.json')) == 32


# ---- datasets
@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    return render_dataset(None, tmp_path_factory.mktemp('r') / 'rand', size=32, n_random=20, max_objects=3, progress=False)

def test_dataset_shapes_ranges_and_loader(rendered):
    ds = ICLEVR(rendered, rendered / 'labels.json', size=64)      # 32x32 files resized to 64
    x, c = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and -1 <= x.min() < x.max() <= 1
    assert c.shape == (24,) and c.sum() >= 1
    xb, cb = next(iter(make_loader(ds, 8, seed=1)))
    assert xb.shape == (8, 3, 64, 64) and torch.equal(cb, next(iter(make_loader(ds, 8, seed=1)))[1])

def test_load_tensors_caches_and_invalidates(rendered, monkeypatch, tmp_path):
    imgs, conds = load_tensors(rendered, rendered / 'labels.json', 32)
    assert imgs.shape == (20, 3, 32, 32) and imgs.dtype == torch.uint8 and conds.shape == (20, 24)
    ds = ICLEVR(rendered, rendered / 'labels.json', size=32)
    assert torch.allclose(imgs[5].float() / 127.5 - 1, ds[5][0], atol=1e-6)
    calls = []
    real = data_mod.read_image
    monkeypatch.setattr(data_mod, 'read_image', lambda p: calls.append(p) or real(p))
    assert torch.equal(load_tensors(rendered, rendered / 'labels.json', 32)[0], imgs) and not calls   # from the cache
    assert load_tensors(rendered, rendered / 'labels.json', 16)[0].shape == (20, 3, 16, 16) and len(calls) == 20  # other size
    sub = tmp_path / 'sub.json'; sub.write_text(json.dumps(dict(list(read_labels(rendered / 'labels.json').items())[:7])))
    assert load_tensors(rendered, sub, 32)[0].shape[0] == 7       # other labels file

def test_missing_image_names_the_file(tmp_path):
    Image.new('RGB', (8, 8)).save(tmp_path / 'a.png')
    (tmp_path / 'l.json').write_text(json.dumps({'a.png': ['red cube'], 'gone.png': ['blue cube']}))
    for fn in (lambda: ICLEVR(tmp_path, tmp_path / 'l.json'), lambda: load_tensors(tmp_path, tmp_path / 'l.json')):
        with pytest.raises(FileNotFoundError, match='gone.png'): fn()

def test_corrupt_image_names_the_file(tmp_path):
    Image.new('RGB', (8, 8)).save(tmp_path / 'a.png')
    (tmp_path / 'b.png').write_bytes(open(tmp_path / 'a.png', 'rb').read()[:40])    # truncated PNG
    (tmp_path / 'l.json').write_text(json.dumps({'a.png': ['red cube'], 'b.png': ['blue cube']}))
    with pytest.raises(OSError, match='b.png'): ICLEVR(tmp_path, tmp_path / 'l.json')[1]
    with pytest.raises(OSError, match='b.png'): load_tensors(tmp_path, tmp_path / 'l.json', 8)

def test_test_format_file_is_not_an_image_list():
    with pytest.raises(ValueError, match='test format'): ICLEVR(DATA_DIR, DATA_DIR / 'test.json')


# ---- renderer
def test_render_is_deterministic_and_batch_independent():
    lists = random_label_lists(6, max_objects=4, seed=5)
    x = render(lists, 32, seed=2)
    assert x.shape == (6, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x, render(lists, 32, seed=2, batch_size=4, workers=1))
    assert torch.equal(x[3:], render(lists[3:], 32, seed=2, keys=[3, 4, 5]))
    assert not torch.equal(x, render(lists, 32, seed=3))

def test_progressive_files_share_their_objects():
    names = ['CLEVR_train_000007_0.png', 'CLEVR_train_000007_1.png', 'CLEVR_train_000007_2.png']
    lists = [['red cube'], ['red cube', 'blue sphere'], ['red cube', 'blue sphere', 'gray cylinder']]
    _, info = render(lists, 32, keys=names, info=True)
    o = info['objects']
    assert o[1][:1] == o[0] and o[2][:2] == o[1]
    assert [(info['ids'][i] == k).any().item() for i in range(3) for k in range(i + 1)] == [True] * 6   # all visible

def test_objects_never_intersect():
    S = D.layout(random_label_lists(64, max_objects=5, seed=1), keys=list(range(64)))
    xy, r = torch.stack([S['cx'], S['cy']], -1), torch.where(S['big'], 0.7, 0.35)
    gap = (xy[:, :, None] - xy[:, None]).norm(dim=-1) - r[:, :, None] - r[:, None]
    real = (S['shape'] >= 0)
    pair = real[:, :, None] & real[:, None] & ~torch.eye(S['shape'].shape[1], dtype=torch.bool)
    assert gap[pair].min() > D.MARGIN - 1e-4


# ---- render_dataset
def test_render_dataset_test_format_and_caching(tmp_path, monkeypatch):
    out = render_dataset(DATA_DIR / 'test.json', tmp_path / 't', size=16, progress=False)
    assert sorted(p.name for p in out.glob('*.png'))[:2] == ['000000.png', '000001.png'] and len(list(out.glob('*.png'))) == 32
    assert list(read_labels(out / 'labels.json').values()) == read_labels(DATA_DIR / 'test.json')
    assert ICLEVR(out, out / 'labels.json', 16)[31][0].shape == (3, 16, 16)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    monkeypatch.setattr(D, 'render', lambda *a, **k: pytest.fail('a cached render_dataset must not render'))
    assert render_dataset(DATA_DIR / 'test.json', out, size=16, progress=False) == out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

def test_render_dataset_resumes_and_rerenders_on_new_params(tmp_path, monkeypatch):
    out = render_dataset(DATA_DIR / 'test.json', tmp_path / 't', size=16, progress=False)
    (out / '000007.png').unlink()
    m = json.loads((out / 'manifest.json').read_text()); m['complete'] = False
    (out / 'manifest.json').write_text(json.dumps(m))                 # as if interrupted
    real, rendered = D.render, []
    monkeypatch.setattr(D, 'render', lambda lists, *a, **k: rendered.append(len(lists)) or real(lists, *a, **k))
    render_dataset(DATA_DIR / 'test.json', out, size=16, progress=False)
    assert rendered == [1] and Image.open(out / '000007.png').size == (16, 16)
    render_dataset(DATA_DIR / 'test.json', out, size=24, progress=False)           # another size: all again
    assert rendered[1:] == [32] and Image.open(out / '000000.png').size == (24, 24)

def test_render_dataset_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='not both'): render_dataset(DATA_DIR / 'test.json', tmp_path, n_random=3)
    with pytest.raises(ValueError, match='max_objects'): render_dataset(None, tmp_path, n_random=3, max_objects=0)


# ---- command line
def test_cli_render(cli, tmp_path):
    r = cli('render', '--labels', DATA_DIR / 'new_test.json', '--out', tmp_path / 'nt', '--size', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / 'nt').glob('*.png'))) == 32 and json.loads((tmp_path / 'nt' / 'manifest.json').read_text())['complete']
    r = cli('render', '--random', '5', '--max-objects', '2', '--out', tmp_path / 'rnd', '--size', '16')
    assert r.returncode == 0 and all(1 <= len(v) <= 2 for v in read_labels(tmp_path / 'rnd' / 'labels.json').values())
