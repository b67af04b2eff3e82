"The README's headline numbers are the committed results file's, not hand-copied ones."
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_headline_is_the_committed_results_file():
    h = json.loads((ROOT / 'results' / 'headline.json').read_text())
    readme = (ROOT / 'README.md').read_text()
    assert len(h['seeds']) >= 5 and (h['sampler'], h['steps'], h['w']) == ('ddpm', 50, 3.0)
    for f in ('test.json', 'new_test.json'):
        a = h['files'][f]['accuracy']
        assert f"| {f} | **{a['mean']:.3f} ± {a['std']:.3f}** | {', '.join(f'{v:.3f}' for v in a['values'])} |" in readme, f
