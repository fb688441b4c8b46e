"""The GRU in the application: Model, the trainer, checkpoints, resume, the CLI's --cell gru, the pictures."""
import json
import subprocess
import sys

import numpy as np
import pytest

import nplstm
from nplstm.tasks import make_task
from nplstm.training.checkpoint import load_model, model_config, save_model
from nplstm.training.trainer import TrainConfig, build_model, train

QUIET = dict(progress=False, log_every=0)


@pytest.mark.parametrize("many_to_one", [True, False])
def test_a_model_with_a_gru_passes_gradcheck(many_to_one):
    gru = nplstm.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    model = nplstm.Model(gru, nplstm.Linear(8, 2, dtype=np.float64, seed=1), many_to_one=many_to_one)
    x = np.random.default_rng(0).standard_normal((3, 5, 3))
    report = nplstm.gradcheck(model, x, lengths=np.array([5, 2, 4]))
    assert report.ok, f"\n{report}"
    assert model.is_gru and set(report.errors) == {f"params[{k!r}]" for k in model.params} | {"inputs[0]"}


def test_the_trainer_trains_a_gru_and_its_checkpoint_resumes(tmp_path):
    task = make_task("adding", T=10, test_size=32)
    cfg = dict(batch_size=8, lr=0.02, eval_every=5, early_stop=False, run_dir=tmp_path, **QUIET)
    model = build_model(task, 8, cell="gru", seed=0)
    first = train(model, task, TrainConfig(steps=10, **cfg))
    assert first.records[0]["train_loss"] > first.records[-1]["train_loss"]   # it learns
    assert model_config(load_model(tmp_path / "checkpoint.npz"))["cell"] == "gru"
    resumed = train(build_model(task, 8, cell="gru", seed=5), task, TrainConfig(steps=20, **cfg),
                    resume_from=tmp_path / "checkpoint.npz")
    oracle = build_model(task, 8, cell="gru", seed=0)
    whole = train(oracle, task, TrainConfig(**{**cfg, "run_dir": tmp_path / "whole"}, steps=20, schedule_steps=10))
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]   # noqa: E731
    assert drop(resumed.records) == drop(whole.records)


def test_a_gru_checkpoint_round_trips_and_refuses_lstm_flags(tmp_path):
    task = make_task("adding", T=10, test_size=16)
    model = build_model(task, 4, cell="gru", bidirectional=True)
    save_model(tmp_path / "m.npz", model)
    batch = task.test_set()
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").forward(batch.x), model.forward(batch.x))
    with pytest.raises(ValueError, match="cell 'gru': the LSTM's variant options do not apply"):
        build_model(task, 4, cell="gru", variant="CIFG")
    with pytest.raises(ValueError, match="carrying a GRU's state across batches is not supported yet"):
        stream = make_task("continual_reber", T=20, test_steps=200)
        train(build_model(stream, 4, cell="gru"), stream, TrainConfig(steps=2, **QUIET))


@pytest.mark.slow
def test_cli_cell_gru_trains_resumes_and_plots(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "nplstm", "train", "temporal_order", "--no-progress", "--quiet", "--run-dir", str(run)]
    first = subprocess.run(base + ["--cell", "gru", "--steps", "10", "--eval-every", "5"], capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    resumed = subprocess.run(base + ["--steps", "15", "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "history.json").read_text())["steps_done"] == 15
    assert json.loads((run / "config.json").read_text())["model"]["cell"] == "gru"
    from nplstm.diagnostics.report import plot_run
    paths = plot_run(run)
    assert {p.stem for p in paths} >= {"curves", "grad_norm", "gradient_flow", "report"}
    refused = subprocess.run(base[:5] + ["--cell", "gru", "--peephole", "full"], capture_output=True, text=True)
    assert refused.returncode == 1 and "--cell gru: --peephole belong(s) to the LSTM" in refused.stderr
