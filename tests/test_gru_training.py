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


def test_a_gru_carries_its_state_across_the_batches_of_a_stream(monkeypatch, tmp_path):
    """On a stream the trainer passes each batch's h_n to the next batch as h_0, as it does an LSTM's (h, c)."""
    stream = make_task("continual_reber", T=20, test_steps=200)
    model = build_model(stream, 4, cell="gru")
    calls, forward = [], model.lstm.forward

    def spy(x, state=None, lengths=None, dropout=None):
        y, h_n = forward(x, state, lengths, dropout)
        calls.append((None if state is None else state.copy(), h_n.copy()))
        return y, h_n
    monkeypatch.setattr(model.lstm, "forward", spy)
    history = train(model, stream, TrainConfig(steps=3, batch_size=4, eval_every=3, run_dir=tmp_path, **QUIET))
    carried = [c for c in calls if c[0] is not None]             # the training batches (evaluation starts at zeros)
    assert len(carried) == 3 and history.steps_done == 3
    assert carried[0][0].shape == (1, 4, 4) and not carried[0][0].any()   # the first batch starts from zeros
    assert carried[0][1].any()
    for (_, h_n), (h_0, _) in zip(carried, carried[1:]):
        np.testing.assert_array_equal(h_0, h_n)                  # each batch starts where the last one ended
    assert set(history.records[0]["saturation"]["l0"]) == {"r", "z", "n"} and "cell" not in history.records[0]
    # resume carries h on: 3 updates, then 3 more from the checkpoint, equal the same 6 in one run
    fresh = lambda: make_task("continual_reber", T=20, test_steps=200)   # noqa: E731
    whole = train(build_model(fresh(), 4, cell="gru"), fresh(), TrainConfig(steps=6, schedule_steps=3, batch_size=4,
                                                                            eval_every=3, run_dir=tmp_path / "whole", **QUIET))
    resumed = train(build_model(fresh(), 4, cell="gru", seed=9), fresh(),
                    TrainConfig(steps=6, batch_size=4, eval_every=3, run_dir=tmp_path, **QUIET),
                    resume_from=tmp_path / "checkpoint.npz")
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]   # noqa: E731
    assert drop(resumed.records) == drop(whole.records)


def test_gru_gate_stats_count_saturated_gates_over_valid_steps():
    """A GRU's r and z are σ gates, its n a tanh: a bias of 50 on z pins z to 1 (all saturated)."""
    from nplstm.training.monitor import gate_stats
    gru = nplstm.GRU(3, 4, seed=0)
    gru.params["l0.b"][4:8] = 50.0                               # the update gate's block
    gru.forward(np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32), lengths=np.array([5, 2]))
    stats = gate_stats(gru.internals(), np.array([5, 2]))
    assert stats["saturation"]["l0"]["z"] == 1.0 and stats["saturation"]["l0"]["r"] < 1.0
    assert set(stats) == {"saturation"}                          # no cell state to size


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
    assert {p.stem for p in paths} >= {"curves", "grad_norm", "gradient_flow", "report", "gates_l0"}
    refused = subprocess.run(base[:5] + ["--cell", "gru", "--peephole", "full"], capture_output=True, text=True)
    assert refused.returncode == 1 and "--cell gru: --peephole belong(s) to the LSTM" in refused.stderr


def test_gradient_flow_through_a_shut_update_gate_is_constant():
    """z = σ(50) = 1 exactly in float64: h_t = h_{t-1}, so dL/dh_t = dy_last (a unit vector) at every t."""
    from nplstm.diagnostics.gradflow import gradient_flow
    from nplstm.stack import LSTMConfig
    gru = nplstm.GRU(3, 4, seed=0)
    gru.params["l0.b"][4:8] = 50.0                               # the update gate's block
    x = np.random.default_rng(0).standard_normal((1, 6, 3)).astype(np.float32)
    curves = gradient_flow(x, LSTMConfig(3, 4), gru=gru)
    np.testing.assert_allclose(curves["GRU, trained: ‖∂L/∂h_t‖"], 1.0, rtol=1e-12)
    assert curves["LSTM, fresh: ‖∂L/∂h_t‖"][0] != 1.0            # the others are there too, and differ
