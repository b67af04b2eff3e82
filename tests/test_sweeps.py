"Reliability of the ablation sweep runner: training minutes add up over interrupted calls, record files are written atomically, a corrupt record file is named."
import json, os, re, signal, time
import multiprocessing as mp
from pathlib import Path
import pytest, torch
import ddpm_lab.ablations as A
from ddpm_lab.ablations import ablate, table_markdown, results_path
from ddpm_lab.cli import main as cli_main

ROW = dict(table='guidance', preset='tiny', seeds=1, rows=['w=0.5'], steps=10)   # one row, one seed: the run tiny/base/s0


def fake_train(plan):
    "A stand-in for `train`: call i sleeps plan[i][0] seconds, writes a checkpoint, then finishes or is interrupted (Ctrl-C)."
    calls = []
    def train(cfg, data=None, out=None, resume=False, minutes=None, device=None):
        secs, interrupt = plan[len(calls)]; calls.append(out)
        out = Path(out); out.mkdir(parents=True, exist_ok=True)
        time.sleep(secs)
        torch.save(dict(config=cfg, step=1 if interrupt else cfg['steps']), out/'ckpt.pt')
        if interrupt: raise KeyboardInterrupt
        return dict(ckpt=out/'ckpt.pt', step=cfg['steps'], finished=True, losses=[])
    return train, calls


def fake_evaluate(calls):
    "A stand-in for `evaluate` that returns fixed scores at once (and, like it, writes them to out/results.json)."
    def evaluate(ckpt, evaluator=None, labels_files=None, sampler='ddim', steps=50, w=0.5, seed=0, out=None, **kw):
        calls.append(out)
        res = dict(sampler=sampler, steps=steps, w=w, seed=seed,
                   results=[dict(file=f, accuracy=0.5, ceiling=0.9, frechet=100.0, frechet_floor=10.0, sample_seconds=0.1)
                            for f in ('test.json', 'new_test.json')])
        Path(out).mkdir(parents=True, exist_ok=True); (Path(out)/'results.json').write_text(json.dumps(res))
        return res
    return evaluate


@pytest.fixture
def fakes(monkeypatch):
    evals = []
    monkeypatch.setattr(A, 'evaluate', fake_evaluate(evals))   # the name ablations calls
    def use(plan):
        train, calls = fake_train(plan)
        monkeypatch.setattr(A, 'train', train)
        return calls
    return use, evals


def _state(tmp_path): return json.loads((tmp_path/'runs'/'tiny'/'base'/'s0'/'ablate.json').read_text())


def test_minutes_add_up_over_an_interrupted_and_a_resumed_call(tmp_path, fakes):
    use, _ = fakes
    use([(0.5, True), (0.3, False)])   # killed (Ctrl-C / SIGTERM) after 0.5 s of training, then resumed for 0.3 s
    with pytest.raises(KeyboardInterrupt):
        ablate(**ROW, results=tmp_path/'results', runs=tmp_path/'runs')
    assert _state(tmp_path)['finished'] is False and _state(tmp_path)['minutes'] * 60 >= 0.5
    (rec,) = ablate(**ROW, results=tmp_path/'results', runs=tmp_path/'runs')
    state = _state(tmp_path)
    assert state['finished'] and 0.8 <= state['minutes'] * 60 < 5    # both calls count, not just the last one
    assert rec['train_minutes'] == round(state['minutes'], 2)


def test_minutes_survive_a_sigkill_up_to_the_last_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(A, '_BEAT', 0.02, raising=False)
    def train(cfg, data=None, out=None, resume=False, minutes=None, device=None):
        out = Path(out); out.mkdir(parents=True, exist_ok=True)
        time.sleep(0.4); torch.save(dict(config=cfg, step=1), out/'ckpt.pt')   # a checkpoint 0.4 s in
        time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)                  # killed 0.3 s later: no finally runs
    monkeypatch.setattr(A, 'train', train)
    p = mp.get_context('fork').Process(target=ablate, kwargs=dict(ROW, results=tmp_path/'results', runs=tmp_path/'runs'))
    p.start(); p.join(60)
    assert p.exitcode == -signal.SIGKILL
    state = _state(tmp_path)
    assert state['finished'] is False and 0.4 <= state['minutes'] * 60 < 1.0   # counted up to the checkpoint, not lost


def test_truncated_results_file_names_the_file_and_the_repair(tmp_path, monkeypatch, capsys):
    def refuse(*a, **k): raise AssertionError('must not train with an unreadable results file')
    monkeypatch.setattr(A, 'train', refuse)
    path = results_path('guidance', 'tiny', tmp_path/'results'); path.parent.mkdir()
    text = '[\n {\n  "row": "w=0",\n  "seed": 0\n },\n {\n  "row": "w=0.'   # cut by a kill mid-write
    path.write_text(text)
    for call in (lambda: A.read_results(path), lambda: table_markdown('guidance', 'tiny', results=tmp_path/'results'),
                 lambda: ablate(**ROW, results=tmp_path/'results', runs=tmp_path/'runs'),
                 lambda: A._append(path, dict(row='w=2'))):
        with pytest.raises(ValueError, match=re.escape(f'{path} is not valid JSON (truncated by an interrupted write?')) as e:
            call()
        assert 'delete it to start the table afresh' in str(e.value)
    assert path.read_text() == text   # left as it was, for repair
    with pytest.raises(SystemExit) as e:   # the CLI prints it as one line
        cli_main(['ablate', '--table', 'guidance', '--preset', 'tiny', '--results', str(tmp_path/'results'), '--show'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and str(path) in err


def test_corrupt_run_records_redo_the_evaluation_and_name_ablate_json(tmp_path, fakes):
    use, evals = fakes
    use([(0.0, False)])
    kw = dict(results=tmp_path/'results', runs=tmp_path/'runs')
    ablate(**ROW, **kw)
    run = tmp_path/'runs'/'tiny'/'base'/'s0'
    saved = run/'eval'/'ddim10_w0.5'/'results.json'
    saved.write_text(saved.read_text()[:40])   # a truncated saved evaluation: redone, with a warning naming it
    with pytest.warns(UserWarning, match=re.escape(str(saved))):
        (rec,) = ablate('schedule', preset='tiny', seeds=1, rows=['cosine'], steps=10, runs=kw['runs'],   # same run and sampling,
                        results=tmp_path/'other')   # another results folder: no record to copy, so the run's saved evaluation is read
    assert len(evals) == 2 and rec['run'] == 'base' and json.loads(saved.read_text())['w'] == 0.5
    (run/'ablate.json').write_text('{"minutes": 0.0')   # the run's minutes cannot be redone: an error naming the file
    with pytest.raises(ValueError, match=re.escape(f"{run/'ablate.json'} is not valid JSON")):
        ablate(**dict(ROW, rows=['w=2']), **kw)


def test_every_record_file_is_written_atomically_and_leaves_no_temp_file(tmp_path, fakes, monkeypatch):
    use, _ = fakes
    use([(0.0, False)])
    written, write = [], A._write_json
    monkeypatch.setattr(A, '_write_json', lambda path, obj, **k: (written.append(Path(path).name), write(path, obj, **k))[1])
    ablate(**dict(ROW, rows=['w=0', 'w=2']), results=tmp_path/'results', runs=tmp_path/'runs')
    assert {'ablate.json', 'results.json', 'guidance_tiny.json'} <= set(written)
    assert written.count('results.json') == 2 and written.count('guidance_tiny.json') == 2
    assert not [p for p in tmp_path.rglob('*') if '.tmp' in p.name]


def test_a_crash_during_a_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path/'guidance_tiny.json'
    A._append(path, dict(row='w=0'))
    before, temps = path.read_text(), []
    def crash(src, dst): temps.append(Path(src)); raise KeyboardInterrupt   # killed between writing the temp file and renaming it
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        A._append(path, dict(row='w=2'))
    monkeypatch.undo()
    (tmp,) = temps
    assert tmp.parent == path.parent and str(os.getpid()) in tmp.name   # a temp file of this process, beside the file
    assert path.read_text() == before and A.read_results(path) == [dict(row='w=0')]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['guidance_tiny.json', 'guidance_tiny.json.lock']   # temp removed


def test_a_diverged_run_is_recorded_not_scored_and_the_sweep_goes_on(tmp_path, fakes, monkeypatch):
    use, evals = fakes
    calls = use([(0.0, False)])   # the second run (cosine) trains normally
    real, died = A.train, []
    def diverging(cfg, out=None, **kw):   # the first run (linear) dies at step 750, the way the guard reports it
        if cfg['schedule'] == 'linear': died.append(out); raise A.TrainingDiverged('training diverged by step 750: ...', 750)
        return real(cfg, out=out, **kw)
    monkeypatch.setattr(A, 'train', diverging)
    kw = dict(table='schedule', preset='tiny', seeds=1, steps=10, results=tmp_path/'results', runs=tmp_path/'runs')
    dead, scored = ablate(**kw)
    assert dead['row'] == 'linear' and dead['diverged'] == 750 and 'test' not in dead and 'diverged by step 750' in dead['error']
    assert scored['row'] == 'cosine' and scored['test'] == 0.5 and len(evals) == 1   # only the live run was sampled and scored
    assert ablate(**kw) == [dead, scored] and (len(died), len(calls)) == (1, 1)   # a second call retrains neither
    md = table_markdown('schedule', 'tiny', results=tmp_path/'results')
    assert '| linear | 0 (+1 diverged: seed 0 at step 750) | not run |' in md and '| cosine | 1 |' in md
