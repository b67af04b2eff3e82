"Ablation sweeps end to end on the tiny preset, resuming without retraining, tables with the reports' numbers; the GAN baseline."
import json, shutil
import pytest, torch
import ddpm_lab.ablations as A
from ddpm_lab.ablations import ablate, table_markdown, TABLES, row_config, results_path
from ddpm_lab.train import get_config, train
from ddpm_lab.pipeline import load_checkpoint
from ddpm_lab.gan import get_gan_config, train_gan, load_generator, generate, is_gan_checkpoint
from ddpm_lab.data import DATA_DIR, read_labels, encode
from ddpm_lab.evaluation import load_evaluator, predict, course_accuracy


def test_guidance_sweep_end_to_end_and_resume(tmp_path, monkeypatch):
    results, runs = tmp_path / 'results', tmp_path / 'runs'
    cfg, key = row_config('guidance', 'w=0', 'tiny')
    part = train(cfg, out=runs / 'tiny' / key / 's0', until=100)      # an interrupted earlier sweep
    assert part['step'] == 100 and not part['finished']
    recs = ablate('guidance', preset='tiny', seeds=1, results=results, runs=runs, steps=10)
    assert [r['row'] for r in recs] == ['w=0', 'w=0.5', 'w=1', 'w=2', 'w=3', 'w=4']
    assert [r['w'] for r in recs] == [0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
    ck = load_checkpoint(runs / 'tiny' / key / 's0' / 'ckpt.pt')
    assert ck['step'] == cfg['steps'] and ck['losses'][:100] == part['losses']   # resumed, not restarted
    on_disk = json.loads(results_path('guidance', 'tiny', results).read_text())
    assert on_disk == recs
    for r in recs:
        assert r['train_steps'] == 300 and r['sampler'] == 'ddim' and r['steps'] == 10 and r['date']
        assert torch.cuda.is_available() or f'CPU, {torch.backends.cpu.get_cpu_capability()} (' in r['machine']   # minutes differ by vector unit
        for f in ('test', 'new_test'):
            assert 0 <= r[f] <= 1 and 0 < r[f'{f}_ceiling'] <= 1 and r[f'{f}_rel'] == pytest.approx(r[f] / r[f'{f}_ceiling'])
            assert r[f'{f}_fd'] > 0
    # a second call finds every record: it neither trains nor evaluates, and the file is unchanged
    def refuse(*a, **k): raise AssertionError('finished rows must not run again')
    monkeypatch.setattr(A, 'train', refuse); monkeypatch.setattr(A, 'evaluate', refuse)
    assert ablate('guidance', preset='tiny', seeds=1, results=results, runs=runs, steps=10) == recs
    # a row of another table with the same run and sampling (the sweep's w = 2) reuses the saved evaluation
    same = ablate('schedule', preset='tiny', seeds=1, results=results, runs=runs, steps=10, w=2., rows=['cosine'])
    assert [(r['run'], r['w'], r['test'], r['new_test']) for r in same] == [('base', 2., recs[3]['test'], recs[3]['new_test'])]
    # with the run folders gone, a row of another table still gets the guidance table's record of its run (w = 3)
    shutil.rmtree(runs)
    copied = ablate('schedule', preset='tiny', seeds=1, results=results, runs=runs, steps=10, w=3., rows=['cosine'])[-1]
    assert copied == recs[4] | dict(table='schedule', row='cosine', copied_from='guidance') and not runs.exists()
    md = table_markdown('guidance', 'tiny', results=results)
    assert '| w=0.5 | 1 | ' in md and '0.85 / 0.83 (A)' in md and '0.82 / 0.81 (A)' in md and 'not run' not in md


def test_tables_show_the_reports_numbers_before_any_run(tmp_path):
    expected = {'guidance': ['0.85 / 0.83', '0.82 / 0.81'], 'embedding': ['about 0.7'],
                'conditioning': ['0.806 / 0.821', '0.792 / 0.804', '0.167 / 0.155'], 'timesteps': ['0.92 / 0.91', '0.69 / 0.72'],
                'schedule': ['0.85 / 0.87'], 'architecture': ['0.92 / 0.91'], 'ddpm_vs_gan': ['0.85 / 0.87', '0.61 / 0.63']}
    assert set(expected) == set(TABLES)
    for table, numbers in expected.items():
        md = table_markdown(table, 'cpu', results=tmp_path)
        assert 'No results yet' in md and all(n in md for n in numbers), table


def test_unknown_table_lists_the_valid_ones(tmp_path):
    for call in (lambda: ablate('guidence', preset='tiny', results=tmp_path, runs=tmp_path),
                 lambda: table_markdown('guidence', 'tiny', results=tmp_path)):
        with pytest.raises(ValueError, match='valid tables: guidance, embedding, conditioning, timesteps, schedule, architecture, ddpm_vs_gan'):
            call()
    with pytest.raises(ValueError, match="valid rows: w=0, w=0.5"):
        ablate('guidance', preset='tiny', results=tmp_path, runs=tmp_path, rows=['w=5'])
    assert not any(tmp_path.iterdir())   # nothing written


def test_gan_tiny_trains_generates_and_scores(tmp_path):
    res = train_gan(get_gan_config('tiny', steps=60), out=tmp_path)
    assert res['finished'] and all(len(v) == 60 for v in res['losses'].values())
    assert (tmp_path / 'loss.png').is_file()
    ck = torch.load(res['ckpt'], weights_only=True)                   # plain tensors and values only
    assert ck['config']['arch'] == 'gan' and is_gan_checkpoint(res['ckpt'])
    cls = torch.tensor(res['losses']['cls'])
    assert cls[-15:].mean() < cls[:5].mean()                          # the classifier loss teaches the generator
    G, cfg = load_generator(res['ckpt'])
    cond = encode(read_labels(DATA_DIR / 'test.json'))
    x = generate(G, cond, seed=0)
    assert x.shape == (32, 3, 32, 32) and -1 <= x.min() and x.max() <= 1
    assert torch.equal(generate(G, cond, seed=0), x) and not torch.equal(generate(G, cond, seed=1), x)
    acc = course_accuracy(predict(load_evaluator(), x), cond)
    assert 0 <= acc <= 1


def test_gan_row_of_ddpm_vs_gan(tmp_path):
    "The GAN row trains the GAN preset that goes with the DDPM preset, and the evaluation scores its generator."
    recs = ablate('ddpm_vs_gan', preset='tiny', seeds=1, results=tmp_path / 'results', runs=tmp_path / 'runs', rows=['conditional GAN'])
    (r,) = recs
    assert (r['row'], r['arch'], r['run'], r['sampler'], r['steps'], r['w']) == ('conditional GAN', 'gan', 'gan-tiny', 'gan', None, None)
    assert r['train_steps'] == get_gan_config('tiny')['steps'] and 0 <= r['test'] <= 1 and 0 <= r['new_test'] <= 1
    assert is_gan_checkpoint(tmp_path / 'runs' / 'tiny' / 'gan-tiny' / 's0' / 'ckpt.pt')
    md = table_markdown('ddpm_vs_gan', 'tiny', results=tmp_path / 'results')
    assert '| conditional GAN | 1 |' in md and 'one G pass' in md and '| DDPM | 0 | not run |' in md


def test_gan_rows_keep_their_own_classifier(tmp_path):
    "With --evaluator given, report D's GAN learns from that evaluator, and the row with the second judge in its loss keeps the second judge."
    from ddpm_lab.evaluation import EVALUATOR_PATH
    rows = ['conditional GAN', 'conditional GAN, second judge in its loss']
    recs = ablate('ddpm_vs_gan', preset='tiny', seeds=1, results=tmp_path / 'results', runs=tmp_path / 'runs', rows=rows,
                  evaluator=EVALUATOR_PATH)
    assert [r['row'] for r in recs] == rows and [r['run'] for r in recs] == ['gan-tiny', 'gan-tiny_evaluator=judge2']
    used = [load_checkpoint(tmp_path / 'runs' / 'tiny' / r['run'] / 's0' / 'ckpt.pt')['config']['evaluator'] for r in recs]
    assert used == [str(EVALUATOR_PATH), 'judge2']
    assert all(0 <= r['test_judge2'] <= 1 for r in recs)   # scored by both judges


def _append_many(path, who, n):
    for i in range(n): A._append(path, dict(who=who, i=i))

def test_sweeps_side_by_side_keep_every_record(tmp_path):
    "Four processes appending to one results file at once lose no record and leave valid JSON."
    import multiprocessing as mp
    path, ctx = tmp_path/'table_cpu.json', mp.get_context('fork')
    procs = [ctx.Process(target=_append_many, args=(path, who, 40)) for who in range(4)]
    for p in procs: p.start()
    for p in procs: p.join()
    assert [p.exitcode for p in procs] == [0] * 4
    got = sorted((r['who'], r['i']) for r in A.read_results(path))
    assert got == [(who, i) for who in range(4) for i in range(40)]
