"The README's headline numbers are the committed results file's, not hand-copied ones."
import json, sys
import pytest
from pathlib import Path
from ddpm_lab.data import file_md5
from ddpm_lab.evaluation import EVAL_FILES
from ddpm_lab.pipeline import SAMPLING_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / 'bench'))   # the bench scripts' tables, imported as the scripts import their own modules


def assert_block_in_docs(table):
    "The lines of a bench's table stand in docs/results.md as one block."
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    i = lines.index(table[0])
    assert lines[i:i + len(table)] == table


def shipped_md5(): return file_md5(ROOT / 'data' / 'weights' / 'cpu.pt')


def test_readme_headline_is_the_committed_results_file():
    h = json.loads((ROOT / 'results' / 'headline.json').read_text())
    readme = (ROOT / 'README.md').read_text()
    assert len(h['seeds']) >= 5 and {k: h[k] for k in SAMPLING_DEFAULTS} == SAMPLING_DEFAULTS
    assert list(h['files']) == list(EVAL_FILES)   # the course's two files and our held-out and novel lists, under both judges
    for f, r in h['files'].items(): assert summary_row(f, r) in readme, summary_row(f, r)


def summary_row(f, r):
    "The table row of one file of an evaluate_seeds summary: each judge's mean ± std, the evaluator's seeds, the ceilings, grain and floor colour."
    a, j = r['accuracy'], r['judge2']
    return (f"| {f} | **{a['mean']:.3f} ± {a['std']:.3f}** | {', '.join(f'{v:.3f}' for v in a['values'])} | "
            f"**{j['mean']:.3f} ± {j['std']:.3f}** | {r['ceiling']:.3f} / {r['judge2_ceiling']:.3f} | {r['grain']['mean']:.2f} | {r['saturation']['mean']:.2f} |")


def test_the_distilled_checkpoint_is_the_shipped_one_distilled_and_its_table_is_its_evaluation():
    "data/weights/cpu_distilled.pt is `ddpm-lab distil` of the shipped checkpoint (its config names the teacher's md5) and recommends w = 0; docs/results.md's table of it is results/distilled.json, its five-seed evaluation on the four files under both judges."
    from ddpm_lab.pipeline import load_checkpoint
    cfg = load_checkpoint(ROOT / 'data' / 'weights' / 'cpu_distilled.pt')['config']
    assert cfg['distilled']['teacher_md5'] == shipped_md5() and cfg['sampling']['w'] == 0 and cfg['distilled']['w'] == SAMPLING_DEFAULTS['w']
    s = json.loads((ROOT / 'results' / 'distilled.json').read_text())
    assert Path(s['ckpt']).name == 'cpu_distilled.pt' and s['w'] == 0 and len(s['seeds']) >= 5 and list(s['files']) == list(EVAL_FILES)
    assert_block_in_docs([summary_row(f, r) for f, r in s['files'].items()])


def test_the_sampler_choice_is_the_default():
    "SAMPLING_DEFAULTS is the best setting of the committed table (bench/choose_sampler.py), chosen on our own lists under both judges."
    c = json.loads((ROOT / 'results' / 'sampler_choice.json').read_text())
    assert c['best'] == SAMPLING_DEFAULTS and set(c['files']) == {'heldout.json', 'novel.json'} and len(c['seeds']) >= 5
    assert max(c['settings'], key=lambda s: s['score'])['score'] == next(s['score'] for s in c['settings'] if {k: s[k] for k in SAMPLING_DEFAULTS} == SAMPLING_DEFAULTS and 'interval' not in s)


def test_the_sampler_choice_table_is_the_one_the_bench_wrote():
    "docs/results.md's table of the default's choice is results/sampler_choice.json (bench/choose_sampler.py), on the shipped checkpoint."
    from choose_sampler import table_lines
    c = json.loads((ROOT / 'results' / 'sampler_choice.json').read_text())
    assert c['ckpt_md5'] == shipped_md5()
    assert_block_in_docs(table_lines(c))


def test_the_recipe_log_in_the_docs_is_the_committed_log():
    "Every recipe of results/recipes.json (bench/recipe_log.py) is in docs/results.md with its size and its score, under both judges."
    log = json.loads((ROOT / 'results' / 'recipes.json').read_text())
    docs = (ROOT / 'docs' / 'results.md').read_text()
    assert {e['name'] for e in log} >= {'cpu', 'cpu64'}
    for e in log:
        assert all(set(v) >= {'evaluator', 'judge2'} for v in e['files'].values()) and len(e['seeds']) >= 5
        assert any(l.startswith(f"| {e['name']} | {e['size']} |") and f"**{e['score']:.3f}**" in l for l in docs.splitlines()), e['name']


def test_the_gan_diagnosis_table_is_the_one_the_bench_wrote():
    "Every run of results/gan_diagnosis.json (bench/gan_diagnosis.py) is in docs/results.md with both judges' test.json numbers."
    runs = json.loads((ROOT / 'results' / 'gan_diagnosis.json').read_text())['runs']
    docs = (ROOT / 'docs' / 'results.md').read_text()
    for r in runs:
        v = r['files']['test.json']
        row = f"| test.json | {v['evaluator']:.3f} ± {v['evaluator_std']:.3f} | {v['judge2']:.3f} ± {v['judge2_std']:.3f} |"
        assert any(l.startswith(f"| {r['run']} |") and l.endswith(row) for l in docs.splitlines()), f"{r['run']}: {row} not in docs/results.md"


def test_the_gan_head_probe_table_is_the_one_the_bench_wrote():
    "Every variant of results/gan_head_probe.json (bench/gan_head_probe.py) is in docs/results.md with its last step's numbers, in the bench's order."
    probe = json.loads((ROOT / 'results' / 'gan_head_probe.json').read_text())['variants']
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    rows = [f"| {r['loss']:.3f} | {r['test.json']:.3f} | {r['new_test.json']:.3f} | {r['train (256 seen)']:.3f} |" for r in (v[-1] for v in probe.values())]
    found = [i for row in rows for i, l in enumerate(lines) if l.endswith(row)]
    assert len(found) == len(rows) == 9 and found == sorted(found), (rows, found)

def test_the_guidance_interval_tables_are_the_ones_the_bench_wrote():
    "Every row of results/cfg_interval.json (bench/cfg_interval.py, screen and confirm) is in docs/results.md, and the screen's first row is the default."
    res = json.loads((ROOT / 'results' / 'cfg_interval.json').read_text())
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    span = lambda r: f"| {r['w']:g} | [{r['interval'][0]:g}, {r['interval'][1]:g}] |"
    assert (res['screen']['rows'][0]['w'], res['screen']['rows'][0]['interval']) == (3., [0., 1.])
    for r in res['screen']['rows']:
        assert f"{span(r)} {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |" in lines, span(r)
    assert len(res['confirm']['seeds']) >= 5
    for r in res['confirm']['rows']:
        for f, v in r['files'].items():
            assert (f"{span(r)} {f} | {v['evaluator']:.3f} ± {v['evaluator_std']:.3f} | {v['judge2']:.3f} ± {v['judge2_std']:.3f} "
                    f"| {v['grain']:.2f} | {v['floor_colour']:.2f} |") in lines, (span(r), f)


def test_the_clean_guidance_tables_are_the_ones_the_bench_wrote():
    "Every row of results/clean_guidance.json (bench/clean_guidance.py, screen and confirm) is in docs/results.md, and the screen's first row is the library's default rule."
    res = json.loads((ROOT / 'results' / 'clean_guidance.json').read_text())
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    assert res['screen'][0]['rule'] == 'cfg w3'
    for r in res['screen']:
        assert f"| {r['rule']} | {r['grain']:.2f} | {r['floor']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |" in lines, r['rule']
    assert all(len(r['seeds']) >= 5 for r in res['confirm'])
    for r in res['confirm']:
        assert (f"| {r['rule']} | {r['file']} | {r['evaluator']:.3f} ± {r['evaluator_std']:.3f} | {r['judge2']:.3f} ± {r['judge2_std']:.3f} "
                f"| {r['grain']:.2f} | {r['floor']:.2f} |") in lines, (r['rule'], r['file'])


def test_the_autoguidance_table_is_the_one_the_bench_wrote():
    "Every row of results/autoguidance.json (bench/autoguidance.py) is in docs/results.md's autoguidance table, in the bench's order."
    rows = json.loads((ROOT / 'results' / 'autoguidance.json').read_text())['rows']
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    head = lines.index('| guidance | grain | floor colour | evaluator | judge2 |')
    table = lines[head + 2: head + 2 + len(rows)]
    for r, line in zip(rows, table, strict=True):
        assert line.endswith(f"| {r['grain']:.2f} | {r['floor_colour']:.2f} | {r['evaluator']:.3f} | {r['judge2']:.3f} |"), (r, line)


def test_the_divergence_numbers_are_the_ones_the_benches_wrote():
    "The guard's factor sits between the healthy runs' worst rise and the diverged run's (results/loss_windows.json); the replay table is results/divergence_replay.json."
    from ddpm_lab.train import BASE, first_divergence, worst_rise
    runs = json.loads((ROOT / 'results' / 'loss_windows.json').read_text())['runs']
    rise = {n: worst_rise(w['loss']) for n, w in runs.items()}
    assert max(v for n, v in rise.items() if n != 'linear seed 1') < BASE['diverge'] < rise['linear seed 1']
    assert [n for n, w in runs.items() if first_divergence(w['loss'], BASE['diverge']) is not None] == ['linear seed 1']
    docs = (ROOT / 'docs' / 'results.md').read_text()
    for name, r in json.loads((ROOT / 'results' / 'divergence_replay.json').read_text())['replays'].items():
        line = next(l for l in docs.splitlines() if l.startswith(f'| {name}'))
        last = sum(r['loss'][-50:]) / 50
        assert f"| {max(r['grad_norm']):.2f}" in line and (f'| {last:.4f} |' in line or f'| {last:.3f} (' in line), (name, line)

def test_the_patch_grid_table_is_the_one_the_bench_wrote():
    "Each row of results/grain_patches.json (bench/grain_patches.py) is in docs/results.md, and no row's ratio marks a patch grid."
    rows = json.loads((ROOT / 'results' / 'grain_patches.json').read_text())['rows']
    docs = (ROOT / 'docs' / 'results.md').read_text()
    for name, r in rows.items():
        assert f"| {name} | {r['inside']:.4f} | {r['across']:.4f} | {r['ratio']:.3f} | {r['grain']:.3g} |" in docs, name
    assert all(abs(r['ratio'] - rows['renders']['ratio']) < 0.03 for r in rows.values())

@pytest.mark.parametrize('name, runs', [('gpu_recipe', {'gpu', 'gpu64', 'contextunet', 'unet2d'}), ('gpu_alone', {'gpu'})])
def test_the_gpu_recipe_table_is_the_one_the_bench_wrote(name, runs):
    "Each run of results/gpu_recipe.json and gpu_alone.json (bench/gpu_recipe.py, two H200 leases) is in docs/results.md as the script printed it, snapshots too."
    from gpu_recipe import row
    res = json.loads((ROOT / 'results' / f'{name}.json').read_text())
    docs = (ROOT / 'docs' / 'results.md').read_text()
    assert {r['name'] for r in res['runs']} == runs
    for rec in res['runs']:
        assert row(rec) in docs, row(rec)
        for e in rec.get('curve', []): assert row(rec, e) in docs, row(rec, e)


def test_the_ablation_verdicts_in_the_docs_are_the_results_files():
    "docs/results.md's table of verdicts at `cpu` is what `direction` computes from results/<table>_cpu.json, under both judges, for every table."
    from ddpm_lab.ablations import TABLES, direction, read_results, results_path
    from ddpm_lab.data import RESULTS_DIR
    lines = (ROOT / 'docs' / 'results.md').read_text().splitlines()
    for t in TABLES:
        (a, b, *_, ve), (*_, vj) = d = [direction(t, read_results(results_path(t, 'cpu', RESULTS_DIR)), 'preset', j) for j in ('evaluator', 'judge2')]
        ve, vj = (v.split(' (|')[0] for v in (ve, vj))
        verdict = f'**{ve}**' if ve == vj else f'{ve} under the evaluator, {vj} under the second judge'
        row = f"| {t} | {a} minus {b} | " + ' | '.join(f'{x[2]:+.3f} ({x[3]:+.1f})' for x in d) + f' | {verdict} |'
        assert row in lines, row


def test_the_fast_sampler_table_is_the_one_the_bench_wrote():
    "docs/results.md's fast-sampler table is results/fast_samplers.json (bench/bench_sampler_accuracy.py) on the shipped checkpoint: both judges, five seeds a fast sampler."
    from bench_sampler_accuracy import table_lines
    res = json.loads((ROOT / 'results' / 'fast_samplers.json').read_text())
    assert res['ckpt_md5'] == shipped_md5() and res['w'] == SAMPLING_DEFAULTS['w']
    assert res['rows'][0]['label'].startswith('baseline: ddpm') and all(len(r['seeds']) >= 5 for r in res['rows'][1:])
    assert_block_in_docs(table_lines(res))


def test_the_grain_sources_table_is_the_one_the_bench_wrote():
    "docs/results.md's grain-sources tables are results/grain_sources.json (bench/grain_sources.py) on the shipped checkpoint: every setting, both judges, its first row the library's default, confirmed beside it over five seeds."
    from grain_sources import SETTINGS, confirm_lines, table_lines
    res = json.loads((ROOT / 'results' / 'grain_sources.json').read_text())
    assert res['ckpt_md5'] == shipped_md5()
    assert [r['label'] for r in res['rows']] == [label for label, *_ in SETTINGS]
    first = res['rows'][0]
    assert {k: first[k] for k in ('sampler', 'steps', 'w')} == {k: SAMPLING_DEFAULTS[k] for k in ('sampler', 'steps', 'w')} and first['variant'] is None
    assert_block_in_docs(table_lines(res))
    assert first['label'] in res['confirm'] and all(len(c['summary']['seeds']) >= 5 for c in res['confirm'].values())   # confirmed beside the default
    assert_block_in_docs(confirm_lines(res))


def test_the_grain_agreement_tables_are_the_ones_the_bench_wrote():
    "docs/results.md's fine-tuning tables are results/grain_agreement.json (bench/grain_agreement.py), fine-tuned from the shipped checkpoint, whose own row is grain_sources.py's default row; the arms over five seeds, with their differences from the shipped checkpoint seed by seed."
    from grain_agreement import confirm_lines, paired_lines, table_lines
    res = json.loads((ROOT / 'results' / 'grain_agreement.json').read_text())
    assert res['meta']['ckpt_md5'] == shipped_md5()
    default = json.loads((ROOT / 'results' / 'grain_sources.json').read_text())['rows'][0]
    assert all(res['rows']['shipped'][k] == default[k] for k in ('grain', 'floor_colour', 'evaluator', 'judge2'))
    assert {'shipped', 'control'} <= set(res['confirm']) and all(len(c['per_seed']['judge2']) >= 5 for c in res['confirm'].values())
    for lines in (table_lines(res), confirm_lines(res), paired_lines(res)): assert_block_in_docs(lines)


def test_the_judge_race_table_is_the_one_the_bench_wrote():
    "docs/results.md's race of classifier families (why the second judge is trained in stages) is results/judge_race.json (bench/judge_race.py): the course's ResNet18 and the second judge's RegNetY-400MF among the contestants."
    from judge_race import table_lines
    res = json.loads((ROOT / 'results' / 'judge_race.json').read_text())
    assert {'resnet18', 'regnet_y_400mf'} <= {r['arch'] for r in res['rows']} and res['steps'] > 0
    assert_block_in_docs(table_lines(res))


def test_the_bench_readme_presets_are_the_presets():
    "bench/README.md's preset table names every preset with its steps (or epochs over the 18009 training scenes) and batch size."
    import re
    from ddpm_lab.train import PRESETS
    rows = {m[1]: m[2] for m in re.finditer(r'^\| `(\w+)` \|.*\| ([^|]+) \|$', (ROOT / 'bench' / 'README.md').read_text(), re.M)}
    assert set(PRESETS) <= set(rows)
    for name, cfg in PRESETS.items():
        n, unit, batch = re.fullmatch(r'(\d+) (epochs )?x (\d+)', rows[name]).groups()
        assert int(batch) == cfg['batch_size'] and cfg['steps'] == (int(int(n) * 18009 / int(batch)) if unit else int(n)), (name, rows[name])

