"""Every script in examples/ runs from the repository root and shows what it says it shows.

The scripts are found by glob, so a new one is run as soon as it exists: with no entry below it must
exit 0 and print something; an entry in ARGS shortens a long run, an entry in CHECKS states the
point of its output (a loss below a bound, two libraries agreeing), which is what a reader trusts.
Each script runs here once, from its command line; tests/test_why_nan.py calls the demos as functions.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
TIMEOUT = 180                                     # seconds per script; each takes under ~30 s on 2 cores

ARGS = {                                          # per-script arguments (default: none)
    "adding.py": ["--T", "10", "--steps", "500"],
    "why_nan_demos.py": ["np_dot"],               # the quickest demo; tests/test_why_nan.py checks every demo
}
NEEDS_TORCH = {"to_pytorch.py"}
SLOW = {"char_model.py", "first_lstm.py", "sine_wave.py", "to_pytorch.py", "your_data.py"}   # seconds each: marked slow


def num(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the output:\n{text}"
    return float(match.group(1))


def check_first_lstm(out):
    first = num(r"step +1  train MSE ([\d.]+)", out)
    test = num(r"test MSE ([\d.]+) on 256 fresh sequences", out)
    assert test < 0.01 and test < first / 10, out        # predicting 0 gives 1/3


def check_your_data(out):
    assert num(r"sunspots: test MSE (\d+)", out) < num(r"against persistence (\d+)", out), out
    assert num(r"test accuracy ([\d.]+)", out) > num(r"majority class ([\d.]+)", out) + 0.2, out
    assert num(r"cross-entropy ([\d.]+)", out) < num(r"unigram entropy ([\d.]+)", out), out


def check_sine_wave(out):
    no_change = num(r"'no change' gives test MSE ([\d.]+)", out)
    test = num(r"final test MSE ([\d.]+)", out)
    clean = num(r"against the clean wave ([\d.]+)", out)
    assert test < 0.02 and test < no_change / 3, out      # the noise floor is 0.0100
    assert clean < 0.01, out                             # below the noise: it sees through it
    assert "plot saved" not in out


def check_char_model(out):
    loss = num(r"held-out loss ([\d.]+) nats/char", out)
    bigram = num(r"bigram entropy ([\d.]+)", out)
    assert loss < bigram, out
    assert "sample after 'The '" in out and "\n  The " in out and "\n  ゲート" in out, out


def check_to_pytorch(out):
    there = num(r"nplstm -> torch: max \|nplstm - torch\| output difference ([\d.e+-]+)", out)
    back = num(r"torch -> nplstm: max \|nplstm - torch\| output difference ([\d.e+-]+)", out)
    assert there < 1e-5 and back < 1e-5, out
    assert num(r"back in nplstm: test MSE ([\d.]+)", out) < 0.01, out   # baseline 0.167


def check_adding(out):
    assert "baseline 0.167" in out
    assert num(r"test MSE ([\d.]+)", out) < 0.01, out      # far below the baseline


def check_seed_lstm(out):                                  # docs/why-nan.md, "Running it"
    assert re.search(r"the output y is NaN from pass \d+, t = \d+", out), out
    assert re.search(r"first Inf: pass \d+, t = \d+, in (dvv|vv|q|y)\n", out), out   # the output layer goes first
    assert "np.dot(n.e_o[:, t], n.h[:, t])" in out                                  # the warning names the line
    assert num(r"pass   1 .*mean h (-?[\d.]+)", out) < -0.99                         # e_h = 1 drives h to -1


def check_why_nan_demos(out):                              # the command prints the demo's header and summary
    assert out.startswith("=== np_dot: np.dot of two 1-D vectors is a scalar"), out
    assert re.search(r"^\[np_dot\] defect: a scalar, 1 distinct value in dW, .* \| fix: np.outer ", out, re.M), out


def check_check_your_lstm(out):                            # docs/check-your-lstm.md
    assert "fixed: e_h, peephole, recurrent, carry, outer  check_gradients wrong: -                 compare_trace: all agree" in out, out
    assert "first difference: e_h (nplstm's dh) at t = 5" in out, out     # the seed's e_h = 1, found first
    assert num(r"max \|h - h_seed\| = ([\d.e+-]+)", out) < 1e-12, out       # the seed's weights, converted


CHECKS = {"check_your_lstm.py": check_check_your_lstm, "first_lstm.py": check_first_lstm, "sine_wave.py": check_sine_wave, "char_model.py": check_char_model,
          "to_pytorch.py": check_to_pytorch, "adding.py": check_adding, "seed_lstm.py": check_seed_lstm,
          "why_nan_demos.py": check_why_nan_demos, "your_data.py": check_your_data}


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script.relative_to(ROOT)), *args], cwd=ROOT,
                          capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT)


def test_the_examples_are_found():
    names = {p.name for p in EXAMPLES}
    assert {"adding.py", "first_lstm.py", "sine_wave.py", "char_model.py", "to_pytorch.py"} <= names


def example(script: Path):
    return pytest.param(script, id=script.name, marks=pytest.mark.slow if script.name in SLOW else ())


@pytest.mark.parametrize("script", [example(p) for p in EXAMPLES])
def test_example_runs_and_shows_its_point(script, request):
    if script.name in NEEDS_TORCH:
        request.getfixturevalue("torch")         # conftest: skipped locally without torch, a failure in CI
    proc = run(script, *ARGS.get(script.name, []))
    assert proc.returncode == 0, \
        f"{script.name} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    CHECKS.get(script.name, lambda out: None)(proc.stdout)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_says_what_it_is_and_how_to_run_it(script):
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8")))
    assert doc, f"{script.name} has no module docstring"
    assert f"python examples/{script.name}" in doc, f"{script.name}: the docstring does not say how to run it"


def test_to_pytorch_without_torch_exits_with_a_clear_message():
    code = ("import sys, runpy; sys.modules['torch'] = None; "   # None in sys.modules: `import torch` fails
            "runpy.run_path('examples/to_pytorch.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == \
        'examples/to_pytorch.py needs PyTorch, which is not installed: pip install -e ".[torch]"'
