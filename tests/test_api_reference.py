"""docs/api.md is what tools/api_reference.py makes of the code now, and the docstrings it is made of
say what a user needs: every public object has one, and those that take arrays state their shapes."""
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nplstm

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "api_reference.py"

# Objects in nplstm.__all__ whose docstrings need not state shapes, and why.
NO_SHAPES = {
    "detect_anomaly": "a context manager and decorator: it takes no arrays",
    "AnomalyError": "an exception: raised by the library, not given arrays; its report prints the shapes",
    "NonFiniteError": "an exception: raised by the trainer and the optimizers, its message names what went non-finite",
    "GradcheckReport": "a result: worst relative errors (floats) per array name",
    "gradcheck": "takes any layer and its inputs, of whatever shapes that layer's forward takes",
    "no_grad": "a context manager: it takes no arrays",
    "is_grad_enabled": "a flag: it takes no arrays",
}
# A shape as the docstrings write them, (B, T, I), (4H,), (..., O), (L·D, B, H), or in words ("any shape").
ITEM = r"(?:\.\.\.|[\w·+]+)"
SHAPE = re.compile(rf"\({ITEM}(?:, ?{ITEM})+,?\)|\({ITEM},\)|\b(?:any|same|one) shapes?\b")


def tool():
    spec = importlib.util.spec_from_file_location("api_reference", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_docs_api_md_is_up_to_date():
    proc = run_tool("--check")
    assert proc.returncode == 0, proc.stderr + "\n(the docstrings changed: run python tools/api_reference.py)"


def test_check_fails_with_one_line_when_the_file_is_stale(tmp_path):
    out = tmp_path / "api.md"
    assert run_tool("--out", str(out)).returncode == 0
    assert run_tool("--check", "--out", str(out)).returncode == 0
    out.write_text(out.read_text(encoding="utf-8").replace("Backpropagate", "Back-propagate"), encoding="utf-8")
    proc = run_tool("--check", "--out", str(out))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "out of date" in proc.stderr, proc.stderr
    out.unlink()
    proc = run_tool("--check", "--out", str(out))
    assert proc.returncode == 1 and "missing" in proc.stderr


def test_the_output_is_deterministic_and_needs_neither_torch_nor_matplotlib():
    code = (f"import runpy, sys; sys.argv = ['api_reference.py', '--check']\n"
            f"try: runpy.run_path({str(TOOL)!r}, run_name='__main__')\n"
            f"except SystemExit as e: print('exit', e.code)\n"
            f"print(sorted(m for m in ('torch', 'matplotlib', 'tqdm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.split("\n")[:2] == ["exit 0", "[]"], proc.stdout + proc.stderr
    text = tool().render()
    assert not re.search(r"0x[0-9a-f]{6,}", text), "a memory address in the output"
    assert text == tool().render()


def test_every_listed_object_is_documented():
    text = tool().render()
    for name in nplstm.__all__:
        assert f"### `nplstm.{name}`" in text
    for module, names in tool().MODULES:
        assert f"## `{module}`" in text
        for name in names:
            assert f"### `{module}.{name}`" in text
    assert "#### `LSTM.forward`" in text and "#### `Adam.step`" in text   # methods, inherited ones too


def own_docs(obj) -> list[str]:
    """The docstring of obj and, for a class, of each of its public methods and properties."""
    docs = tool().docstring
    if not inspect.isclass(obj):
        return [docs(obj)]
    members = [m.fget if isinstance(m, property) else m for _, m in tool()._members(obj)]
    return [docs(obj)] + [docs(m) for m in members]


@pytest.mark.parametrize("name", nplstm.__all__)
def test_public_object_has_a_docstring_that_states_shapes(name):
    obj = getattr(nplstm, name)
    docs = own_docs(obj)
    assert docs[0].strip(), f"nplstm.{name} has no docstring of its own"
    assert all(d.strip() for d in docs), f"nplstm.{name}: a public method or property has no docstring"
    if name not in NO_SHAPES:
        assert any(SHAPE.search(d) for d in docs), f"nplstm.{name}: no shape stated, e.g. x: (B, T, I)"


def test_exemptions_name_real_objects():
    assert set(NO_SHAPES) <= set(nplstm.__all__)
