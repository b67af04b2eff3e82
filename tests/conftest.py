import os, subprocess, sys
import pytest

os.environ.setdefault('MPLBACKEND', 'Agg')

def run_cli(*args, timeout=600, **kw):
    "Run `python -m ddpm_lab.cli ARGS` and return the CompletedProcess."
    return subprocess.run([sys.executable, '-m', 'ddpm_lab.cli', *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)

@pytest.fixture
def cli():
    return run_cli
