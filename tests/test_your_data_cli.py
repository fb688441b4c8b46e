"""`nplstm train series|sequences` and `nplstm predict` on your own files. The runs that must work go
through a real `python -m nplstm` subprocess; the matrix of malformed files goes through nplstm.cli.main
in this process (the same code path without an interpreter start each): every one must be one line on
stderr, exit code 1, and no exception escaping main (which a user would see as a traceback)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nplstm.cli import main
from nplstm.data import windows
from nplstm.training.checkpoint import load_model

SUNSPOTS = Path(__file__).parent / "data" / "sunspots.csv"
TINY = ["--steps", "20", "--hidden", "6", "--eval-every", "10", "--no-progress", "--quiet"]


def nplstm(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nplstm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def run_main(capsys, *args):
    """main(args) in this process -> (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *substrings):
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nplstm "), err
    for s in substrings:
        assert s in lines[0], (s, lines[0])
    return lines[0]


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def sunspots():
    rows = read_rows(SUNSPOTS)
    return [r[0] for r in rows[1:]], np.array([float(r[1]) for r in rows[1:]])


# --- the runs that work, in subprocesses --------------------------------------------------------------

@pytest.mark.slow
def test_train_series_on_sunspots_then_predict_and_forecast(tmp_path):
    run = tmp_path / "run"
    result = nplstm("train", "series", "--path", SUNSPOTS, "--window", 12, "--season", 11, *TINY, "--run-dir", run,
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first = out.splitlines()[0]
    assert first.startswith(("series: beats ", "series: does not beat ")), out
    assert "persistence: MSE" in out and "seasonal-naive: MSE" in out
    assert "test (60 windows, the last 20% by time)" in out           # 297 windows, ceil(0.2 * 297) = 60
    config = json.loads((run / "config.json").read_text())
    assert config["task"]["name"] == "series" and config["task"]["options"]["window"] == 12
    assert config["task"]["options"]["column"] == ["SUNACTIVITY"]     # the columns read, written out
    assert config["model"]["target"] == "values"

    preds = tmp_path / "preds.csv"
    result = nplstm("predict", run, "--path", SUNSPOTS, "--out", preds, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"wrote 297 rows to {preds}" in result.stdout
    rows = read_rows(preds)
    assert rows[0] == ["date", "SUNACTIVITY_predicted", "SUNACTIVITY_true"]
    years, values = sunspots()
    assert len(rows) == 1 + 309 - 12
    assert [r[0] for r in rows[1:]] == years[12:]                    # each target's own date
    assert np.allclose([float(r[2]) for r in rows[1:]], values[12:])
    x, _ = windows(values, 12)
    expected = load_model(run / "checkpoint.npz").predict(x)[:, 0]    # the run's saved model and scaler
    assert np.allclose([float(r[1]) for r in rows[1:]], expected, rtol=1e-5, atol=1e-4)

    result = nplstm("predict", run, "--path", SUNSPOTS, "--steps-ahead", 4, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["step", "SUNACTIVITY_forecast"] and len(rows) == 1 + 4
    assert [r[0] for r in rows[1:]] == ["2009", "2010", "2011", "2012"]   # the years go on after 2008
    forecast = load_model(run / "checkpoint.npz").forecast(values[-12:], 4)
    assert np.allclose([float(r[1]) for r in rows[1:]], forecast, rtol=1e-5, atol=1e-4)


def write_sequences(path, *, classes, per_step=False, n=40, seed=0):
    rng = np.random.default_rng(seed)
    T = 7
    x = rng.standard_normal((n, T, 2))
    lengths = rng.integers(2, T + 1, n)
    for b in range(n):
        x[b, lengths[b]:] = 0.0
    if per_step:
        y = np.cumsum(x[:, :, 0], axis=1)
    elif classes:
        y = (x[:, 0, 0] > 0).astype(np.int64)
    else:
        y = x[:, :, 1].sum(1)
    np.savez(path, x=x, y=y, lengths=lengths)
    return x, y, lengths


@pytest.mark.slow
def test_train_sequences_classification_then_predict(tmp_path):
    data = tmp_path / "cls.npz"
    _, y, _ = write_sequences(data, classes=True)
    run = tmp_path / "run"
    result = nplstm("train", "sequences", "--path", data, *TINY, "--run-dir", run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sequences: test (8 sequences, the last 20%): loss ")
    assert " accuracy " in result.stdout
    result = nplstm("predict", run, "--path", data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["sequence", "class", "out0", "out1"] and len(rows) == 1 + 40
    probs = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    assert [int(r[1]) for r in rows[1:]] == probs.argmax(1).tolist()


@pytest.mark.slow
def test_train_sequences_per_step_regression_then_predict(tmp_path):
    data = tmp_path / "reg.npz"
    _, _, lengths = write_sequences(data, classes=False, per_step=True)
    run = tmp_path / "run"
    result = nplstm("train", "sequences", "--path", data, *TINY, "--optimizer", "adamw", "--weight-decay", "0.01",
                    "--dropout", "0.2", "--run-dir", run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert " mse " in result.stdout and " r2 " in result.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["dropout"] == 0.2 and config["train"]["optimizer"] == "adamw"
    result = nplstm("predict", run, "--path", data, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(result.stdout.splitlines()))
    assert rows[0] == ["sequence", "step", "out0"]
    assert len(rows) == 1 + int(lengths.sum())                      # one row per valid step, none past a length


def test_train_sequences_of_token_ids_and_many_to_one_regression(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savez("tok.npz", x=rng.integers(0, 9, (30, 6)), y=rng.integers(0, 3, 30))
    code, out, err = run_main(capsys, "train", "sequences", "--path", "tok.npz", *TINY, "--embedding-dim", 5,
                              "--run-dir", "tok")
    assert code == 0, err
    model = load_model(Path("tok") / "checkpoint.npz")
    assert model.embedding is not None and model.embedding.embedding_dim == 5 and model.target == "classes"
    assert model.embedding.num_embeddings == 9 and model.head.out_features == 3
    write_sequences("reg.npz", classes=False)
    code, out, err = run_main(capsys, "train", "sequences", "--path", "reg.npz", *TINY, "--run-dir", "reg")
    assert code == 0, err
    assert out.startswith("sequences: test (8 sequences") and " mae " in out
    assert load_model(Path("reg") / "checkpoint.npz").scaler.y_mean is not None


def test_class_ids_and_tokens_only_in_the_test_split_are_sized_for(tmp_path, capsys, monkeypatch):
    """The test split is the last 20 %: a class (or token id) that only appears there must still fit the
    model's head (and Embedding), else the report at the end of training fails."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 4, 1))
    y = np.array([0, 1] * 8 + [2, 2, 2, 2])
    np.savez("late_class.npz", x=x, y=y)
    code, out, err = run_main(capsys, "train", "sequences", "--path", "late_class.npz", *TINY, "--run-dir", "a")
    assert code == 0, err
    assert load_model(Path("a") / "checkpoint.npz").head.out_features == 3
    tokens = rng.integers(0, 4, (20, 5))
    tokens[-1, 0] = 11
    np.savez("late_token.npz", x=tokens, y=np.arange(20) % 2)
    code, out, err = run_main(capsys, "train", "sequences", "--path", "late_token.npz", *TINY, "--run-dir", "b")
    assert code == 0, err
    assert load_model(Path("b") / "checkpoint.npz").embedding.num_embeddings == 12


def test_series_fill_ffill_and_interpolate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = np.sin(np.arange(60) * 0.4)
    lines = ["date,v"] + [f"2020-01-{d:02d},{v:.4f}" if d not in (5, 9) else f"2020-01-{d:02d}," for d, v in
                          zip(range(1, 61), values)]
    Path("gaps.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run_main(capsys, "train", "series", "--path", "gaps.csv", "--window", 8, *TINY, "--run-dir", "a")
    assert_one_line_error(code, err, "gaps.csv: missing or non-finite values in row(s) 6, 10", "--fill ffill")
    for how in ("ffill", "interpolate"):
        code, out, err = run_main(capsys, "train", "series", "--path", "gaps.csv", "--window", 8, "--fill", how,
                                  *TINY, "--run-dir", how)
        assert code == 0, err
        assert out.startswith("series: ")
        assert json.loads((Path(how) / "config.json").read_text())["task"]["options"]["fill"] == how
    code, out, err = run_main(capsys, "predict", "interpolate", "--path", "gaps.csv", "--steps-ahead", 2)
    assert code == 0, err
    assert out.splitlines()[1].startswith("t+1,")                 # dates that are not numbers: t+1, t+2


def test_predict_on_a_run_of_another_task(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "train", "adding", "--T", 10, "--steps", 2, "--batch", 2, "--hidden", 4,
                            "--no-progress", "--quiet", "--run-dir", "adding")
    assert code == 0, err
    code, _, err = run_main(capsys, "predict", "adding", "--path", SUNSPOTS)
    assert_one_line_error(code, err, "trained on task 'adding'", "nplstm train series or sequences")
    code, _, err = run_main(capsys, "predict", "no-such-run", "--path", SUNSPOTS)
    assert_one_line_error(code, err, "no-such-run: no such directory")


def test_predict_refusals_on_a_series_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "train", "series", "--path", SUNSPOTS, "--window", 10, "--horizon", 2,
                            *TINY, "--run-dir", "h2")
    assert code == 0, err
    code, _, err = run_main(capsys, "predict", "h2", "--path", SUNSPOTS, "--steps-ahead", 3)
    assert_one_line_error(code, err, "--steps-ahead", "horizon 1")
    Path("short.csv").write_text("YEAR,SUNACTIVITY\n" + "".join(f"{1700 + i},{i}\n" for i in range(5)))
    code, _, err = run_main(capsys, "predict", "h2", "--path", "short.csv")
    assert_one_line_error(code, err, "short.csv: 5 rows, fewer than window + horizon = 12")
    Path("other.csv").write_text("YEAR,OTHER\n1700,1\n1701,2\n")
    code, _, err = run_main(capsys, "predict", "h2", "--path", "other.csv")
    # the run read every numeric column, SUNACTIVITY; another file's numeric columns are not taken instead
    assert_one_line_error(code, err, "other.csv: no column 'SUNACTIVITY'; the columns are YEAR, OTHER")
    code, _, err = run_main(capsys, "predict", "h2", "--path", "data.npz")
    assert_one_line_error(code, err, "data.npz: no such file")


# --- malformed files: one line, exit 1 ------------------------------------------------------------------

def _sunspot_rows(n):
    return "YEAR,SUNACTIVITY\n" + "".join(f"{1700 + i},{i % 11}\n" for i in range(n))


CSV_CASES = {
    "no header": ("1700,5\n1701,11\n", [], ["the first row ['1700', '5'] is numbers, not a header"]),
    "non-numeric cell": ("YEAR,SUNACTIVITY\n1700,5\n1701,lots\n1702,3\n", [], ["row 3, column 'SUNACTIVITY': 'lots' is not a number"]),
    "non-numeric after a blank line": ("YEAR,SUNACTIVITY\n1700,5\n\n1701,lots\n", [], ["row 4, column 'SUNACTIVITY'"]),
    "no such column": (_sunspot_rows(80), ["--column", "SUNSPOTS"], ["no column 'SUNSPOTS'; the columns are YEAR, SUNACTIVITY"]),
    "target not an input": (_sunspot_rows(80), ["--target", "YEAR"], ["--target 'YEAR' is not one of the input columns"]),
    "too few rows": (_sunspot_rows(20), ["--window", "12"], ["20 rows; windows of 12 plus a horizon of 1 need at least 22 rows"]),
    "fewer than window + horizon": (_sunspot_rows(5), ["--window", "12"], ["5 rows"]),
    "NaN and empty cells": ("YEAR,SUNACTIVITY\n" + "".join(f"{1700 + i},{'nan' if i == 3 else '' if i == 7 else i}\n" for i in range(80)),
                            [], ["missing or non-finite values in row(s) 5, 9", "--fill ffill or --fill interpolate"]),
    "infinite value": ("YEAR,SUNACTIVITY\n" + "".join(f"{1700 + i},{'inf' if i == 0 else i}\n" for i in range(80)), [], ["row(s) 2"]),
    "ffill with nothing before": ("YEAR,SUNACTIVITY\n1700,\n" + "".join(f"{1701 + i},{i}\n" for i in range(80)),
                                  ["--fill", "ffill"], ["row 2, column 'SUNACTIVITY': the first value is missing"]),
    "empty file": ("", [], ["the file is empty"]),
    "header only": ("YEAR,SUNACTIVITY\n", [], ["0 rows"]),
    "only a date column": ("date\n2020-01-01\n2020-01-02\n", [], ["no column of values"]),
    "row of another width": ("YEAR,SUNACTIVITY\n1700,5\n1701,6,7\n", [], ["row 3 has 3 cells, the header 2"]),
    "repeated column": ("a,a\n1,2\n", [], ["empty or repeated column name"]),
    "bad --fill": (_sunspot_rows(80), ["--fill", "mean"], ["fill"]),
    "season out of range": (_sunspot_rows(80), ["--window", "12", "--season", "20"], ["season 20 must be between"]),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_malformed_csv_is_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text, options, messages = CSV_CASES[case]
    Path("bad.csv").write_bytes(text.encode())
    code, out, err = run_main(capsys, "train", "series", "--path", "bad.csv", *options, *TINY, "--run-dir", "run")
    assert_one_line_error(code, err, *messages)
    assert not Path("run").exists() or not any(Path("run").iterdir())       # nothing written for a refused file


def _npz(path, **arrays):
    np.savez(path, **arrays)


def _pickled(path):
    np.savez(path, x=np.array([np.zeros(3), np.zeros(2)], dtype=object), y=np.zeros(2))


def _good_x(n=12):
    return np.random.default_rng(0).standard_normal((n, 4, 2))


NPZ_CASES = {
    "pickled objects": (_pickled, ["holds pickled objects", "never loaded"]),
    "missing y": (lambda p: _npz(p, x=_good_x()), ["no array 'y'; expected x, y and optionally lengths, mask (found x)"]),
    "unexpected array": (lambda p: _npz(p, x=_good_x(), y=np.zeros(12), w=np.zeros(3)), ["unexpected array 'w'"]),
    "too few sequences": (lambda p: _npz(p, x=_good_x(5), y=np.zeros(5)), ["5 sequences; at least 10 are needed"]),
    "0-d x": (lambda p: _npz(p, x=np.array(1.0), y=np.zeros(12)), [r"x: expected numbers (B, T, I)"]),
    "strings": (lambda p: _npz(p, x=np.array([["a"] * 4] * 12), y=np.zeros(12)), ["x: expected numbers"]),
    "y of another length": (lambda p: _npz(p, x=_good_x(), y=np.zeros(11)), ["y: expected 12 targets"]),
    "lengths past T": (lambda p: _npz(p, x=_good_x(), y=np.zeros(12), lengths=np.full(12, 5)), ["lengths: expected 12 integers in [1, 4]"]),
    "NaN in x": (lambda p: _npz(p, x=np.where(np.eye(4)[None, :, :2] > 0, np.nan, _good_x()), y=np.zeros(12)), ["x: contains NaN or Inf"]),
    "an .npy file": (lambda p: np.save(open(p, "wb"), _good_x()), ["is a single .npy array"]),
    "a text file": (lambda p: Path(p).write_text("x,y\n1,2\n"), ["is not an .npz archive"]),
    "a cut archive": (lambda p: (_npz(p, x=_good_x(), y=np.zeros(12)), Path(p).write_bytes(Path(p).read_bytes()[:200])),
                      ["is not a readable .npz"]),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_malformed_npz_is_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, messages = NPZ_CASES[case]
    make("bad.npz")
    code, out, err = run_main(capsys, "train", "sequences", "--path", "bad.npz", *TINY, "--run-dir", "run")
    line = assert_one_line_error(code, err, *messages)
    assert "bad.npz" in line


def test_a_directory_or_a_missing_file_as_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("folder").mkdir()
    for task in ("series", "sequences"):
        code, _, err = run_main(capsys, "train", task, "--path", "folder", *TINY, "--run-dir", "run")
        assert_one_line_error(code, err, "folder")
        code, _, err = run_main(capsys, "train", task, "--path", "missing.file", *TINY, "--run-dir", "run")
        assert_one_line_error(code, err, "missing.file: no such file")
        code, _, err = run_main(capsys, "train", task, *TINY, "--run-dir", "run")
        assert_one_line_error(code, err, "say which file with --path")


@pytest.mark.slow
def test_real_entry_point_refusals(tmp_path):
    """The same refusals through `python -m nplstm`: one line on stderr, exit 1, no traceback."""
    (tmp_path / "nohdr.csv").write_text("1700,5\n1701,11\n")
    _pickled(tmp_path / "obj.npz")
    (tmp_path / "folder").mkdir()
    for args, message in [(["train", "series", "--path", "nohdr.csv"], "is numbers, not a header"),
                          (["train", "sequences", "--path", "obj.npz"], "holds pickled objects"),
                          (["train", "sequences", "--path", "folder"], "folder")]:
        result = nplstm(*args, *TINY, cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
