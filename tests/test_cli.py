"""The real `nplstm` entry point, run in a subprocess as a user would."""
import json
import subprocess
import sys

import numpy as np
import pytest


def nplstm(*args, cwd=None, ok=True):
    result = subprocess.run([sys.executable, "-m", "nplstm", *map(str, args)], capture_output=True,
                            text=True, cwd=cwd, timeout=300)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_help_everywhere():
    for args in ([], ["train"], ["sample"], ["reproduce"], ["bench"], ["tasks"]):
        out = nplstm(*args, "--help").stdout
        assert out.startswith("usage: nplstm")
    assert "--T" in nplstm("train", "--help").stdout       # task options are listed


def test_tasks_lists_every_task():
    from nplstm.tasks import TASKS
    out = nplstm("tasks").stdout
    for name in TASKS:
        assert name in out


def test_train_writes_a_run_and_resumes(tmp_path):
    run = tmp_path / "run"
    out = nplstm("train", "adding", "--T", 12, "--steps", 20, "--eval-every", 10, "--batch", 4,
                 "--no-progress", "--run-dir", run).stdout
    assert "adding: not solved by the paper's criterion in 20 updates" in out
    assert "paper:" in out and "74,000" not in out          # T = 12 has no paper number
    history = json.loads((run / "history.json").read_text())
    assert [r["step"] for r in history["records"]] == [10, 20]
    config = json.loads((run / "config.json").read_text())
    assert config["task"]["options"]["T"] == 12 and config["model"]["hidden_size"] == 32
    out = nplstm("train", "adding", "--T", 12, "--steps", 30, "--eval-every", 10, "--batch", 4,
                 "--no-progress", "--run-dir", run, "--resume").stdout
    history = json.loads((run / "history.json").read_text())
    assert [r["step"] for r in history["records"]] == [10, 20, 30]


@pytest.mark.parametrize("args,message", [
    (["train", "adding", "--bogus", "3"], "unrecognized argument '--bogus'; options of task adding"),
    (["train", "adding", "--T", "x"], "--T: expected an integer, got 'x'"),
    (["train", "adding", "--T", "3"], "adding: T: expected an int >= 10, got 3"),
    (["train", "nosuch"], "invalid choice: 'nosuch'"),
    (["train", "adding", "--lr", "-1"], "lr"),
    (["train", "charlm", "--path", "/no/such/file.txt"], "charlm: path must name a readable UTF-8 text file"),
    (["train", "adding", "--resume", "--run-dir", "/no/such/run"], "--resume: no checkpoint at"),
    (["sample", "/no/such/run"], "no such file"),
    (["bench", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_user_errors_are_one_line(args, message):
    result = nplstm(*args, ok=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreadable_and_pickled_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "checkpoint.npz"
    bad.write_bytes(b"not a checkpoint")
    result = nplstm("sample", bad, ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    np.savez(bad, obj=np.array([{"a": 1}], dtype=object))
    result = nplstm("sample", bad, ok=False)
    assert "pickle" in result.stderr and "Traceback" not in result.stderr


def test_charlm_on_japanese_text_then_sample(tmp_path):
    text = tmp_path / "ja.txt"
    text.write_text("長い短期記憶は忘却ゲートと覗き穴結合を持つ。" * 200, encoding="utf-8")
    run = tmp_path / "run"
    out = nplstm("train", "charlm", "--path", text, "--T", 20, "--steps", 60, "--hidden", 32,
                 "--eval-every", 30, "--lr", 0.01, "--no-progress", "--run-dir", run).stdout
    history = json.loads((run / "history.json").read_text())
    first, last = history["records"][0]["test"], history["records"][-1]["test"]
    assert last["loss"] < first["loss"] < np.log(22)         # learning, and below the uniform 22-char guess
    assert "unigram_entropy" in out and "bigram_entropy" in out
    sample = nplstm("sample", run, "--prime", "忘却", "--length", 30, "--seed", 1).stdout.strip()
    assert sample.startswith("忘却") and len(sample) == 32
    assert set(sample) <= set(text.read_text(encoding="utf-8"))
    result = nplstm("sample", run, "--prime", "xyz", ok=False)
    assert "not in the model's vocabulary" in result.stderr


def test_reproduce_quick_writes_markdown(tmp_path):
    out = tmp_path / "results.md"
    printed = nplstm("reproduce", "--quick", "--seeds", 1, "--only", "reber", "--jobs", 1, "--out", out).stdout
    assert "Embedded Reber" in printed
    table = out.read_text()
    assert table.startswith("# Reproduced results") and "| Embedded Reber (1997 Exp. 1) | " in table
    assert "8,440" in table and "Hochreiter & Schmidhuber (1997)" in table


def test_reproduce_keeps_the_notes_below_the_marker(tmp_path):
    from nplstm.training.reproduce import NOTES_MARKER
    out = tmp_path / "results.md"
    out.write_text(f"# old table\n\n{NOTES_MARKER}\n\nOur notes stay.\n")
    nplstm("reproduce", "--quick", "--seeds", 1, "--only", "reber", "--jobs", 1, "--out", out)
    text = out.read_text()
    assert "old table" not in text and text.endswith(f"{NOTES_MARKER}\n\nOur notes stay.\n")
    assert text.index("| Embedded Reber") < text.index(NOTES_MARKER)


def test_reproduce_only_msd_runs_its_2x2_and_keeps_the_notes(tmp_path):
    from nplstm.training.reproduce import NOTES_MARKER
    out = tmp_path / "results.md"
    out.write_text(f"# old table\n\n{NOTES_MARKER}\n\nOur notes stay.\n")
    printed = nplstm("reproduce", "--quick", "--seeds", 1, "--only", "msd", "--jobs", 1, "--out", out).stdout
    runs = [line for line in printed.splitlines() if line.startswith("  msd peephole=")]
    assert len(runs) == 4 and {line.split(" seed ")[0] for line in runs} == {
        f"  msd peephole={p} {r}" for p in ("diagonal", "None") for r in ("bptt", "truncated")}
    text = out.read_text()
    for shown in (printed, text):
        lines = shown.splitlines()
        assert lines.count("| peepholes | BPTT | 1997 truncated rule |") == 1       # MSD's table, not GTS's
        assert sum(line.startswith("| diagonal | ") for line in lines) == 1
        assert sum(line.startswith("| none | ") for line in lines) == 1
        assert "MSD" in shown and "GTS" not in shown and "| experiment |" not in shown   # no empty main table
    assert text.startswith("# Reproduced results\n\nMeasured by `nplstm reproduce --seeds 1 --quick --only msd`")
    assert text.index("## Do peepholes matter? The 2 × 2") < text.index("| diagonal |") < text.index(NOTES_MARKER)
    assert "old table" not in text and text.endswith(f"{NOTES_MARKER}\n\nOur notes stay.\n")


def test_reproduce_refuses_an_unknown_only_name_listing_the_names(tmp_path):
    result = nplstm("reproduce", "--quick", "--only", "reber", "pfg", "--out", "results.md", cwd=tmp_path, ok=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("nplstm reproduce: error: argument --only: ") and "got 'pfg'" in line
    for name in ("'reber'", "'timing'", "'msd'", "'gts'", "'timing2x2'", "'Embedded Reber (1997 Exp. 1)'"):
        assert name in line
    assert not (tmp_path / "results.md").exists() and result.stdout == ""
