"""The package as a user meets it: what `import nplstm` loads, and the README's commands.

(examples/adding.py runs, and must learn, in tests/test_examples.py.)"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_loads_numpy_and_nothing_else():
    code = ("import sys; before = set(sys.modules); import nplstm; "
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    third_party = {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert third_party == {"nplstm", "numpy"}, third_party


def test_readme_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = 'python -m pip install -e ".[test]" torch==2.13.0 && python -m pytest'
    assert test_cmd in readme and test_cmd in ci
    assert 'python -m pip install -e ".[progress]" && nplstm train temporal_order' in readme
    quick = 'python -m pytest -m "not slow"'           # the quick loop; CI runs everything
    assert quick in readme and quick in (ROOT / "README.ja.md").read_text(encoding="utf-8")
