"""Nothing non-finite passes silently, no run is clobbered, and resume keeps exactly its promise.

Each test here failed on the code before the trust issue (round 2): a NaN run was "SOLVED", a second
run replaced the first, a resumed run took changed settings silently.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nplstm
from nplstm.tasks import make_task
from nplstm.training.checkpoint import load_checkpoint
from nplstm.training.trainer import TrainConfig, build_model, lr_at, train

QUIET = dict(progress=False, log_every=0)


def nplstm_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nplstm", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})


def one_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


# --- non-finite is always loud ----------------------------------------------------------------------

@pytest.mark.slow
def test_a_diverging_run_is_never_solved_and_exits_non_zero(tmp_path):
    """The seed's mistake on the adding problem: SGD, lr 1000, no clipping. It used to print SOLVED
    with `loss nan, wrong 0`; now it stops at the first non-finite loss, says so in one line, exits 1."""
    run = tmp_path / "run"
    result = nplstm_cli("train", "adding", "--T", 20, "--lr", 1000, "--optimizer", "sgd", "--schedule", "constant",
                        "--clip", 0, "--no-progress", "--quiet", "--run-dir", run)
    line = one_line(result)
    assert "SOLVED" not in result.stdout
    assert "the loss (mse) is inf" in line and "at update" in line and "--detect-anomaly" in line
    history = json.loads((run / "history.json").read_text())
    assert history["stopped"] == "non-finite" and not history["solved"] and history["anomaly"] in line


def test_the_last_finite_checkpoint_is_kept(tmp_path):
    task = make_task("adding", T=20, test_size=64)
    cfg = TrainConfig(steps=40, batch_size=8, lr=1000.0, optimizer="sgd", clip=None, eval_every=2,
                      checkpoint_every=2, run_dir=tmp_path, **QUIET)
    with pytest.raises(nplstm.NonFiniteError, match=r"adding: .* at update (\d+); training stopped, the last "
                                                    r"finite checkpoint is kept") as info:
        train(build_model(task, 16, forget_gate=False, seed=0), task, cfg)
    failed = int(str(info.value).split("update ")[1].split(";")[0])
    arrays, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta["step"] == (failed - 1) // 2 * 2 and meta["step"] < failed
    assert all(np.isfinite(a).all() for a in arrays.values())


def test_shells_refuse_non_finite_gradients_and_layer_inputs():
    lstm = nplstm.LSTM(3, 4, seed=0)
    y, (h, c) = lstm.forward(np.zeros((2, 5, 3), np.float32))
    bad = np.ones_like(y)
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"dy: contains NaN or Inf \(first at index \(1, 2, 3\)"):
        lstm.backward(bad)
    with pytest.raises(ValueError, match=r"dstate dc_n: contains NaN or Inf"):
        lstm.backward(np.ones_like(y), (np.zeros_like(h), np.full_like(c, np.inf)))
    head = nplstm.Linear(4, 2, seed=0)
    with pytest.raises(ValueError, match=r"x: contains NaN or Inf \(first at index \(0, 1\)"):
        head.forward(np.array([[0, np.nan, 0, 0]], np.float32))


def test_linear_validates_like_the_lstm():
    with pytest.raises(ValueError, match="in_features: expected a positive int, got 0"):
        nplstm.Linear(0, 2)
    head = nplstm.Linear(4, 2, seed=0)
    head.params["W"] = head.params["W"].astype(np.float64)
    with pytest.raises(ValueError, match=r"params\['W'\]: expected dtype float32, got float64"):
        head.forward(np.zeros((1, 4), np.float32))       # no silent promotion of the output


def test_a_parameter_changed_between_forward_and_backward_is_named():
    lstm = nplstm.LSTM(3, 4, seed=0)
    y, _ = lstm.forward(np.zeros((2, 5, 3), np.float32))
    lstm.params["l0.R"] = np.zeros((4, 8), np.float32)
    with pytest.raises(ValueError, match=r"params\['l0.R'\]: changed between forward\(\) and backward\(\): "
                                         r"expected shape \(4, 16\), got \(4, 8\)"):
        lstm.backward(np.ones_like(y))


def test_load_params_refuses_unknown_keys_and_wrong_shapes_and_changes_nothing():
    model = build_model(make_task("adding", T=10, test_size=16), 4)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=r"params: unexpected key 'lstm.l0.X'"):
        model.load_params({"head.b": np.zeros(1, np.float32), "lstm.l0.X": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match=r"params\['head.W'\]: expected shape \(4, 1\), got \(4, 2\)"):
        model.load_params({"head.W": np.zeros((4, 2), np.float32)})
    assert all(np.array_equal(v, before[k]) for k, v in model.params.items())


# --- runs are never clobbered ---------------------------------------------------------------------

def small(tmp_path, **kw):
    return TrainConfig(**{"steps": 4, "batch_size": 4, "eval_every": 2, "run_dir": tmp_path, **QUIET, **kw})


def test_a_new_run_into_an_existing_run_is_refused_and_changes_nothing(tmp_path):
    task = make_task("adding", T=10, test_size=16)
    train(build_model(task, 4), task, small(tmp_path))
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match=r"already holds a run \(config.json, history.json, checkpoint.npz\): "
                                         r"continue it with --resume"):
        train(build_model(task, 4), task, small(tmp_path, lr=0.5))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved
    train(build_model(task, 4), task, small(tmp_path, lr=0.5, overwrite=True))   # explicit: replaced
    assert json.loads((tmp_path / "config.json").read_text())["train"]["lr"] == 0.5


@pytest.mark.slow
def test_simultaneous_default_runs_get_their_own_directories(tmp_path):
    args = [sys.executable, "-m", "nplstm", "train", "adding", "--T", "10", "--steps", "2", "--eval-every", "2",
            "--batch", "2", "--no-progress", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3 and all((r / "checkpoint.npz").is_file() for r in runs)


def test_a_refused_cli_run_leaves_no_empty_directory(tmp_path):
    result = nplstm_cli("train", "adding", "--T", 10, "--steps", 2, "--batch", 2, "--momentum", "0.5",
                        "--no-progress", "--quiet", "--clip", 0, "--lr", 1e-3, "--optimizer", "adam",
                        "--eval-every", 3000, cwd=tmp_path)
    assert result.returncode == 0                        # eval_every > steps is fine: one evaluation at the end
    assert len(list((tmp_path / "runs").iterdir())) == 1
    result = nplstm_cli("train", "charlm", "--path", tmp_path / "missing.txt", "--no-progress", cwd=tmp_path)
    one_line(result)
    assert len(list((tmp_path / "runs").iterdir())) == 1


# --- resume keeps exactly its promise -----------------------------------------------------------------

def run_to(tmp_path, name, steps, resume_from=None, **kw):
    task = make_task("adding", T=10, test_size=16)
    model = build_model(task, 4, seed=0)
    cfg = TrainConfig(**{"steps": steps, "batch_size": 4, "lr": 0.05, "eval_every": 3, "early_stop": False,
                         "run_dir": tmp_path / name, **QUIET, **kw})
    history = train(model, task, cfg, resume_from=resume_from)
    return model, history


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_extending_steps_keeps_the_schedule_and_is_bit_identical(tmp_path, schedule):
    """Extending a run of 6 updates to 10 == one run of 10 updates whose schedule has the first run's
    horizon (schedule_steps=6): the first 6 updates are the stored run's, exactly."""
    kw = dict(lr_schedule=schedule, step_size=4, step_gamma=0.5, warmup=1)
    run_to(tmp_path, "first", 6, **kw)
    extended, h_ext = run_to(tmp_path, "extended", 10, resume_from=tmp_path / "first" / "checkpoint.npz", **kw)
    oracle, h_one = run_to(tmp_path, "oracle", 10, schedule_steps=6, **kw)
    for key, p in oracle.params.items():
        assert np.array_equal(p, extended.params[key]), key
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]   # noqa: E731
    assert drop(h_ext.records) == drop(h_one.records)
    cfg = TrainConfig(steps=10, lr=0.05, schedule_steps=6, **kw)
    if schedule == "cosine":                            # past its horizon cosine keeps its last lr
        assert lr_at(cfg, 7) == lr_at(cfg, 10) == lr_at(cfg, 6) > 0
    else:                                               # no horizon: the same as a run that was always 10
        assert [lr_at(cfg, s) for s in range(1, 11)] == [lr_at(TrainConfig(steps=10, lr=0.05, **kw), s)
                                                         for s in range(1, 11)]


def test_resume_refuses_changed_settings_unless_overridden(tmp_path):
    run_to(tmp_path, "a", 4)
    checkpoint = tmp_path / "a" / "checkpoint.npz"
    with pytest.raises(ValueError, match=r"the run was trained with batch_size=4, this one has batch_size=8; "
                                         r"resume with the same settings$"):
        task = make_task("adding", T=10, test_size=16)
        train(build_model(task, 4), task, TrainConfig(steps=6, batch_size=8, lr=0.05, **QUIET),
              resume_from=checkpoint)
    with pytest.raises(ValueError, match=r"lr=0.05, this one has lr=0.01; .* override=\('lr',\) / --override lr"):
        run_to(tmp_path, "b", 6, resume_from=checkpoint, lr=0.01)
    with pytest.raises(ValueError, match=r"the run's task adding had T=10, this one has T=12"):
        train(build_model(make_task("adding", T=12, test_size=16), 4), make_task("adding", T=12, test_size=16),
              TrainConfig(steps=6, batch_size=4, lr=0.05, **QUIET), resume_from=checkpoint)
    run_to(tmp_path, "c", 6, resume_from=checkpoint, lr=0.01, override=("lr",))   # said explicitly: allowed


@pytest.mark.slow
def test_cli_resume_starts_from_the_runs_own_settings(tmp_path):
    run = tmp_path / "run"
    base = ("train", "adding", "--T", 12, "--eval-every", 5, "--batch", 4, "--no-progress", "--quiet")
    assert nplstm_cli(*base, "--steps", 10, "--run-dir", run).returncode == 0
    result = nplstm_cli("train", "adding", "--steps", 15, "--run-dir", run, "--resume", "--no-progress", "--quiet")
    assert result.returncode == 0, result.stderr                  # --T 12 and --batch 4 come from the run
    assert json.loads((run / "history.json").read_text())["steps_done"] == 15
    line = one_line(nplstm_cli("train", "adding", "--batch", 8, "--steps", 20, "--run-dir", run, "--resume"))
    assert "batch_size=4, this one has batch_size=8" in line
