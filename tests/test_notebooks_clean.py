"Committed notebooks stay light and clean: at most 500 KB, no widget state, no machine paths or warnings in outputs, progress bars as text."
import json, re
from pathlib import Path
import pytest

NBS = sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))
MACHINE_PATH = re.compile(r'(/tmp/|/home/|/root/|/work/|/Users/|/private/var/|[A-Z]:\\\\)')


def _text(o):
    "Everything an output shows as text."
    parts = [o.get('text', '')] + [o.get('data', {}).get(k, '') for k in ('text/plain', 'text/markdown', 'text/html')] + [o.get('traceback', '')]
    return ''.join(''.join(p) if isinstance(p, list) else p for p in parts)


@pytest.mark.parametrize('nb', NBS, ids=lambda p: p.stem)
def test_notebook_is_light_and_clean(nb):
    assert nb.stat().st_size <= 500 * 1024, f'{nb.name}: {nb.stat().st_size / 1024:.0f} KB (at most 500 KB: lower figure dpi)'
    d = json.loads(nb.read_text())
    assert 'widgets' not in d['metadata'], f'{nb.name}: widget state saved in the notebook metadata'
    for i, c in enumerate(d['cells']):
        for o in c.get('outputs', []):
            where = f'{nb.name}, cell {i}'
            assert o.get('output_type') != 'error', f'{where}: an error output'
            assert 'application/vnd.jupyter.widget-view+json' not in o.get('data', {}), f'{where}: a widget (progress bars must be saved as text)'
            text = _text(o)
            assert not MACHINE_PATH.search(text), f'{where}: a machine path in the output: {MACHINE_PATH.search(text).group(0)}...'
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr':
                assert not re.search(r'warn', text, re.I), f'{where}: a warning on stderr: {text[:200]}'
