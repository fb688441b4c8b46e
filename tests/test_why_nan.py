"""docs/why-nan.md stands on real runs: the reproduction reaches NaN, each demo shows its defect and its fix,
every ```python runnable``` block of the English and Japanese documents runs, and their links to lines of
nplstm/lstm.py still point at the code they cite."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "why-nan.md", ROOT / "docs" / "why-nan.ja.md"]


def run(*args, timeout=60) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def demo(name: str) -> tuple[str, str]:
    """Run one demo; return its whole output and its summary line "[name] defect: ... | fix: ..."."""
    out = run("examples/why_nan_demos.py", name)
    line = next(s for s in out.splitlines() if s.startswith(f"[{name}] "))
    return out, line


def halves(line: str) -> tuple[str, str]:
    """The summary line's "defect: ..." and "fix: ..." parts."""
    defect, fix = line.split(" | fix: ")
    return defect, fix


def num(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1))


def test_the_reproduction_reaches_nan_in_the_output_layer():
    out = run("examples/seed_lstm.py")
    assert re.search(r"the output y is NaN from pass \d+, t = \d+", out), out
    assert re.search(r"first Inf: pass \d+, t = \d+, in (dvv|vv|q|y)\n", out), out   # the output layer goes first
    assert "np.dot(n.e_o[:, t], n.h[:, t])" in out                                  # the warning names the line
    assert num(r"pass   1 .*mean h (-?[\d.]+)", out) < -0.99                         # e_h = 1 drives h to -1


def test_the_reproduction_without_the_blow_up_still_learns_nothing():
    out = run("examples/seed_lstm.py", "--gamma", "0.01", "--epochs", "10")
    assert "no NaN in the output in 10 passes" in out
    assert num(r"pass   9 .*max\|c\| +([\d.e+]+)", out) > 700                         # the cell state grows without end


def test_gradcheck_fails_as_written_and_with_any_one_fix_left_out_and_passes_with_all():
    out, line = demo("gradcheck")
    rows = [s for s in out.splitlines() if s.startswith(("  as written", "  all fixed but", "  all five fixed"))]
    assert len(rows) == 7
    assert all(s.split()[-2] == "FAIL" for s in rows[:6]) and rows[6].split()[-2] == "OK", "\n".join(rows)
    assert num(r"as written.* FAIL +([\d.e+-]+)$", "\n".join(rows[:1])) > 10      # the LSTM gradient is far off
    assert num(r"all five fixed ([\d.e+-]+)", line) < 1e-6
    assert num(r"nplstm ([\d.e+-]+)", line) < 1e-6
    assert num(r"agreement ([\d.e+-]+)", line) < 1e-12                              # the fixed backward is nplstm's


@pytest.mark.parametrize("name", ["e_h", "recurrent", "carry", "peephole"])
def test_each_missing_term_alone_breaks_the_gradient(name):
    _, line = demo(name)
    defect, fix = halves(line)
    assert num(r"gradcheck ([\d.e+-]+)", defect) > 1e-2
    assert num(r"gradcheck ([\d.e+-]+)", fix) < 1e-6


def test_e_h_one_makes_the_lstm_gradient_ignore_the_target():
    _, line = demo("e_h")
    assert num(r"difference ([\d.e+-]+)", line) == 0.0
    assert num(r"mean h (-?[\d.]+)", line) < -0.99


def test_the_e_c_carry_line_has_no_effect():
    _, line = demo("carry")
    assert "bit-identical: True" in line


def test_np_dot_gives_one_number_for_the_whole_gradient_and_destabilises_the_output_layer():
    _, line = demo("np_dot")
    defect, fix = halves(line)
    assert "1 distinct value" in defect and num(r"rel. error ([\d.e+-]+)", defect) > 0.1
    assert num(r"after 10 steps ([\d.e+-]+)", defect) > 1e3
    assert num(r"rel. error ([\d.e+-]+)", fix) < 1e-6 and num(r"\|y - target\| ([\d.e+-]+)", fix) < 1e-6


def test_shared_weights_need_the_sum_over_time():
    _, line = demo("shared_weights")
    assert num(r"off by (\d+)%", line) > 10
    assert num(r"gradcheck ([\d.e+-]+)", line) < 1e-6


def test_updating_inside_the_loop_only_chases_the_target():
    _, line = demo("update_in_loop")
    assert num(r"([\d.]+) frozen", line) > 2 * num(r"error ([\d.]+) while updating", line)
    assert num(r"output constant \(([\d.e+-]+)\)", line) < 1e-10


def test_the_state_wraps_around_and_the_cell_state_grows():
    _, line = demo("wraparound")
    assert num(r"max \|c\| = ([\d.]+)", line) > 10
    assert num(r"grows ([\d.]+) per pass", line) > 50


def test_a_tanh_written_from_exp_turns_the_reproduction_to_nan():
    out, line = demo("overflow")
    assert re.search(r"reaches NaN in (h|c|e_c|o_|y) at pass \d+", line), line
    assert " nan " in out


def test_the_anomaly_detector_stops_an_unclipped_run_and_clipping_keeps_it_finite():
    out, line = demo("clipping")
    assert "AnomalyError:" in out and "training update" in out and "gradients are not clipped" in out
    assert "AnomalyError at update" in line
    assert num(r"finite, loss ([\d.e+-]+)", line) < 1e3


def test_the_corrected_question_layout_learns_with_clipping_and_not_without():
    _, line = demo("fixed_seed_layout")
    assert num(r"mse ([\d.e+-]+) after 30", line) > 1e3
    assert num(r"mse ([\d.e+-]+) after 300", line) < 1e-2


def test_nplstm_learns_the_same_data():
    _, line = demo("fixed")
    trained, unseen, copy = (num(p, line) for p in (r"mse ([\d.e+-]+) after 500", r"([\d.e+-]+) on unseen",
                                                    r"'no change' ([\d.]+)"))
    assert trained < 1e-3 and unseen < 1e-3 and unseen < copy / 10


# `code` [nplstm/lstm.py#L186](../nplstm/lstm.py#L186): the cited code must stand on that line (as in test_docs.py)
LINK = re.compile(r"`([^`]+)` \[(nplstm/[\w/]+\.py)#L(\d+)\]\(\.\./\2#L\3\)")


def code_links():
    return [pytest.param(*link, id=f"{doc.name}-{link[1]}#L{link[2]}")
            for doc in DOCS for link in LINK.findall(doc.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("code,path,line", code_links())
def test_code_links_point_at_the_cited_code(code, path, line):
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    assert code in lines[int(line) - 1], f"{path}:{line} is now {lines[int(line) - 1].strip()!r}, not {code!r}"


def runnable_blocks():
    for doc in DOCS:
        for k, block in enumerate(re.findall(r"```python runnable\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            yield pytest.param(block, id=f"{doc.name}-{k}")


@pytest.mark.parametrize("code", list(runnable_blocks()))
def test_runnable_blocks_of_the_document_run(code):
    run("-c", code, timeout=60)


def test_the_documents_have_runnable_blocks_and_code_links():
    assert len(list(runnable_blocks())) >= 8 and len(code_links()) >= 12
