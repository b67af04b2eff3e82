"Imports go one way: the package's import graph (read with ast) has no cycle, no module imports the package inside a function (cli.py aside: it loads jobs lazily), and each module imports only modules of lower-numbered notebooks."
import ast, re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / 'ddpm_lab'
MODULES = {p.stem: p for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx')}


def _imports(path):
    "(module imported, at top level?) for every import of a ddpm_lab module in a file."
    tree, out = ast.parse(path.read_text()), []
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1: names = [node.module] if node.module else [a.name for a in node.names]
            elif (node.module or '').startswith('ddpm_lab'): names = [node.module.split('.')[1]] if '.' in node.module else [a.name for a in node.names]
        elif isinstance(node, ast.Import): names = [a.name.split('.')[1] for a in node.names if a.name.startswith('ddpm_lab.')]
        out += [(n, id(node) in top) for n in names if n in MODULES]
    return out


def _notebook(path):
    "The notebook a module is exported from, e.g. '04_sampling'."
    return re.search(r'File to edit: \.\./nbs/(\w+)\.ipynb', path.read_text()).group(1)


def test_no_import_cycles():
    graph = {m: {n for n, _ in _imports(p)} for m, p in MODULES.items()}
    seen, done = set(), set()
    def visit(m, stack):
        assert m not in stack, 'import cycle: ' + ' -> '.join(stack[stack.index(m):] + [m])
        if m in done: return
        for n in sorted(graph[m]): visit(n, stack + [m])
        done.add(m)
    for m in sorted(graph): visit(m, [])


def test_no_function_level_package_imports_outside_cli():
    late = {m: [n for n, top in _imports(p) if not top] for m, p in MODULES.items() if m != 'cli'}
    assert not {m: v for m, v in late.items() if v}, late


def test_modules_import_only_earlier_notebooks():
    order = {m: _notebook(p) for m, p in MODULES.items()}
    wrong = [(m, n) for m, p in MODULES.items() if m != 'cli' for n, _ in _imports(p) if order[n] >= order[m]]
    assert not wrong, [f'{m} ({order[m]}) imports {n} ({order[n]})' for m, n in wrong]


def test_the_shipped_checkpoint_samples_right_with_every_default():
    "load_pipeline + sample with nothing else equals an explicit call with the settings the checkpoint records (v-prediction, 32x32, the default sampler)."
    import torch
    from ddpm_lab.data import DATA_DIR, encode
    from ddpm_lab.pipeline import Pipeline, SAMPLING_DEFAULTS, load_pipeline
    from ddpm_lab.sampling import sample
    pipe = load_pipeline(DATA_DIR / 'weights' / 'cpu.pt', device='cpu')
    cond = encode([['red sphere'], ['cyan cylinder', 'cyan cube']])
    explicit = Pipeline(pipe.net, pipe.schedule, pred='v', size=32)
    want = sample(explicit, cond, SAMPLING_DEFAULTS['sampler'], SAMPLING_DEFAULTS['steps'], SAMPLING_DEFAULTS['w'], seed=0)
    assert (pipe.pred, pipe.size, pipe.sampling) == ('v', 32, SAMPLING_DEFAULTS)
    assert torch.equal(sample(pipe, cond), want) and want.shape == (2, 3, 32, 32)
