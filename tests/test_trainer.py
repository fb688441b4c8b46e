"""The trainer on small stand-in tasks: learning, early stop, run files, exact resume, streams, schedules."""
import builtins
import json
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

import nplstm
from nplstm.training.checkpoint import load_checkpoint, load_model
from nplstm.training.trainer import History, TrainConfig, build_model, lr_at, stop_reason, train

QUIET = dict(progress=False, log_every=0)


# Stand-ins for nplstm.tasks, implementing the same interface.
@dataclass(frozen=True)
class Batch:
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None
    lengths: np.ndarray | None
    extra: dict | None = None


class SumTask:
    """Many-to-one MSE: the sum of 3 to 6 numbers in [-0.5, 0.5] (right-padded to T = 6)."""
    name, input_size, output_size, loss, many_to_one, T = "sum", 1, 1, "mse", True, 6

    def __init__(self, tolerance=0.02):
        self.tolerance = tolerance

    def batch(self, rng, B):
        lengths = rng.integers(3, self.T + 1, B)
        x = rng.uniform(-0.5, 0.5, (B, self.T, 1)).astype(np.float32)
        x[np.arange(self.T) >= lengths[:, None]] = 0
        return Batch(x, x.sum(axis=1), None, lengths)

    def test_set(self):
        return self.batch(np.random.default_rng(1234), 300)

    def evaluate(self, out, batch):
        err = float(((out - batch.y) ** 2).mean())
        return {"mse": err, "solved": float(err < self.tolerance)}


def one_hot(symbols, n):
    return np.eye(n, dtype=np.float32)[symbols]


class EchoTask:
    """Per-step masked cross-entropy: at step t output the symbol seen at t - 1 (lengths 4 to 8)."""
    name, input_size, output_size, loss, many_to_one, T = "echo", 3, 3, "xent", False, 8

    def batch(self, rng, B):
        lengths = rng.integers(4, self.T + 1, B)
        s = rng.integers(0, 3, (B, self.T))
        t = np.arange(self.T)
        y = np.concatenate([np.zeros((B, 1), np.int64), s[:, :-1]], axis=1)
        return Batch(one_hot(s, 3), y, (t >= 1) & (t < lengths[:, None]), lengths)

    def test_set(self):
        return self.batch(np.random.default_rng(99), 200)

    def evaluate(self, out, batch):
        acc = float((out.argmax(-1) == batch.y)[batch.mask].mean())
        return {"accuracy": acc, "solved": float(acc == 1.0)}


class StreamTask(EchoTask):
    """EchoTask as B endless streams cut into chunks of T = 5: the first step of a chunk echoes the
    last symbol of the previous chunk, which only a carried state can know."""
    name, T, stateful = "stream", 5, True

    def __init__(self, seed=7):
        self._rng, self._last = np.random.default_rng(seed), None

    def batch(self, rng, B):          # a stream: its own generator, not rng
        s = self._rng.integers(0, 3, (B, self.T))
        last = np.full(B, -1) if self._last is None else self._last
        y = np.concatenate([last[:, None], s[:, :-1]], axis=1)
        self._last = s[:, -1]
        return Batch(one_hot(s, 3), np.maximum(y, 0), y >= 0, None)

    def test_set(self):
        s = np.random.default_rng(5).integers(0, 3, (50, 20))
        y = np.concatenate([np.zeros((50, 1), np.int64), s[:, :-1]], axis=1)
        return Batch(one_hot(s, 3), y, np.arange(20)[None, :].repeat(50, 0) >= 1, None)

    def get_state(self):
        return {"rng": self._rng.bit_generator.state, "last": None if self._last is None else self._last.tolist()}

    def set_state(self, state):
        self._rng.bit_generator.state = state["rng"]
        self._last = None if state["last"] is None else np.array(state["last"])


class Interrupted(Exception):
    pass


class InterruptAfter:
    """The task, but its batch() raises after n batches: a run killed between two updates."""

    def __init__(self, task, n):
        self._task, self._n = task, n

    def batch(self, rng, B):
        if self._n == 0:
            raise Interrupted
        self._n -= 1
        return self._task.batch(rng, B)

    def __getattr__(self, name):
        return getattr(self._task, name)


def test_many_to_one_mse_loss_falls():
    """Predicting the mean gives MSE E[length]/12 = 0.375; training must reach below 0.02."""
    task = SumTask()
    cfg = TrainConfig(steps=150, batch_size=32, lr=0.01, eval_every=50, early_stop=False, **QUIET)
    history = train(build_model(task, 16, seed=0), task, cfg)
    assert [r["step"] for r in history.records] == [50, 100, 150]
    assert history.records[-1]["test"]["loss"] < 0.02
    assert history.records[-1]["train_loss"] < history.records[0]["train_loss"]


def test_per_step_masked_xent_loss_falls():
    """Chance is ln 3 = 1.10 nats; echoing the previous symbol must reach below 0.1 and 99 % accuracy."""
    task = EchoTask()
    cfg = TrainConfig(steps=120, batch_size=32, lr=0.02, eval_every=40, early_stop=False, eval_batch=64, **QUIET)
    history = train(build_model(task, 16, seed=0), task, cfg)
    assert history.records[-1]["test"]["loss"] < 0.1
    assert history.records[-1]["test"]["accuracy"] > 0.99


def test_early_stop_when_solved():
    task = SumTask(tolerance=0.05)
    cfg = TrainConfig(steps=1000, batch_size=16, lr=0.01, eval_every=10, **QUIET)
    history = train(build_model(task, 16, seed=0), task, cfg)
    solved = [r["test"]["solved"] for r in history.records]
    assert history.stopped == "solved" and history.solved
    assert solved[-1] == 1.0 and set(solved[:-1]) == {0.0} and len(solved) >= 2
    assert history.step_solved == history.steps_done == history.records[-1]["step"] < 1000
    assert history.sequences_to_solve == history.step_solved * 16


def test_patience_stops_without_improvement():
    history = History(records=[{"test": {"loss": v, "solved": 0.0}} for v in (3.0, 2.0, 2.5, 2.1)])
    assert stop_reason(history, TrainConfig(patience=2)) == "patience"
    assert stop_reason(history, TrainConfig(patience=3)) == ""
    assert stop_reason(history, TrainConfig()) == ""


def test_run_files_are_valid_json_with_expected_fields(tmp_path):
    task = SumTask()
    cfg = TrainConfig(steps=20, batch_size=8, eval_every=10, early_stop=False, run_dir=tmp_path / "run", **QUIET)
    model = build_model(task, 8, seed=0)
    history = train(model, task, cfg)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.npz", "config.json", "history.json"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["steps"] == 20 and config["train"]["run_dir"] == str(tmp_path / "run")
    assert config["model"]["hidden_size"] == 8 and config["model"]["many_to_one"] is True
    assert config["task"] == {"name": "sum", "input_size": 1, "output_size": 1, "loss": "mse",
                              "many_to_one": True, "stateful": False, "options": None}
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["stopped"] == "steps" and saved["steps_done"] == 20 and saved["wall_seconds"] > 0
    record = saved["records"][-1]
    assert set(record) == {"step", "sequences_seen", "train_loss", "test", "lr", "grad_norm", "seconds",
                           "grad_norm_per_param", "clipped", "saturation", "cell"}    # the last four: monitoring
    assert record["step"] == 20 and record["sequences_seen"] == 160
    assert set(record["test"]) == {"loss", "mse", "solved"} and set(record["grad_norm"]) == {"mean", "max"}
    assert saved["records"] == history.records
    x = task.test_set()
    np.testing.assert_array_equal(load_model(tmp_path / "run" / "checkpoint.npz").forward(x.x, x.lengths),
                                  model.forward(x.x, x.lengths))


@pytest.mark.parametrize("make_task", [SumTask, StreamTask])
def test_resume_is_bit_identical(tmp_path, make_task):
    """12 updates in one go == 6 updates killed after the checkpoint at 4, then resumed to 12."""
    def cfg(name):
        return TrainConfig(steps=12, batch_size=8, lr=0.02, clip=0.1, lr_schedule="cosine", warmup=2, eval_every=5,
                           checkpoint_every=4, early_stop=False, run_dir=tmp_path / name, **QUIET)

    full_model = build_model(make_task(), 8, seed=0)
    full = train(full_model, make_task(), cfg("full"))
    with pytest.raises(Interrupted):
        train(build_model(make_task(), 8, seed=0), InterruptAfter(make_task(), 6), cfg("cut"))
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.npz")[1]["step"] == 4
    resumed_model = build_model(make_task(), 8, seed=3)             # a different init: everything comes from the file
    resumed = train(resumed_model, make_task(), cfg("resumed"), resume_from=tmp_path / "cut" / "checkpoint.npz")

    assert max(r["grad_norm"]["max"] for r in full.records) > 0.1    # clipping was active
    for key, p in full_model.params.items():
        assert np.array_equal(p, resumed_model.params[key]), key
    a, meta_a = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, meta_b = load_checkpoint(tmp_path / "resumed" / "checkpoint.npz")
    assert sorted(a) == sorted(b) and any(k.startswith("optim/") and k != "optim/t" for k in a)
    for key in a:                                                    # params, every optimizer array, t, stream state
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    assert meta_a["rng"] == meta_b["rng"] and meta_a["task_state"] == meta_b["task_state"]
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]   # noqa: E731
    assert drop(full.records) == drop(resumed.records) and resumed.steps_done == 12


def test_resume_refuses_another_model(tmp_path):
    task = SumTask()
    train(build_model(task, 8), task, TrainConfig(steps=2, eval_every=2, run_dir=tmp_path, **QUIET))
    with pytest.raises(ValueError, match="resume_from .*saved for task 'sum' with model"):
        train(build_model(task, 4), task, TrainConfig(steps=4, **QUIET), resume_from=tmp_path / "checkpoint.npz")


def test_stream_carries_the_final_state_into_the_next_batch(monkeypatch):
    task = StreamTask()
    model = build_model(task, 8, num_layers=2, seed=0)
    calls, forward = [], model.lstm.forward

    def spy(x, state=None, lengths=None, dropout=None):
        y, state_n = forward(x, state, lengths, dropout)
        if x.shape[0] == 4:                                          # training batches, not the test set
            calls.append((state, state_n))
        return y, state_n

    monkeypatch.setattr(model.lstm, "forward", spy)
    train(model, task, TrainConfig(steps=3, batch_size=4, eval_every=3, **QUIET))
    assert len(calls) == 3
    assert calls[0][0][0].shape == (2, 4, 8) and not calls[0][0][0].any() and not calls[0][0][1].any()
    for (_, previous_final), (passed, _) in zip(calls, calls[1:]):
        assert np.array_equal(passed[0], previous_final[0]) and np.array_equal(passed[1], previous_final[1])
        assert passed[0].any()


def test_stream_task_needs_many_to_many():
    task = StreamTask()
    model = nplstm.Model(nplstm.LSTM(3, 4), nplstm.Linear(4, 3), many_to_one=True)
    with pytest.raises(ValueError, match="needs a many-to-many model"):
        train(model, task, TrainConfig(steps=1, **QUIET))


def test_lr_schedules_at_known_steps():
    cosine = TrainConfig(lr=0.1, steps=100, lr_schedule="cosine", warmup=10, min_lr_frac=0.1)
    assert lr_at(cosine, 5) == pytest.approx(0.05)                  # halfway through the warm-up
    assert lr_at(cosine, 10) == lr_at(cosine, 11) == pytest.approx(0.1)
    assert lr_at(cosine, 56) == pytest.approx(0.055)                # half way down from 0.1 to 0.01
    assert 0.01 < lr_at(cosine, 100) < 0.0101
    step = TrainConfig(lr=0.1, lr_schedule="step", step_size=10, step_gamma=0.5)
    assert [lr_at(step, s) for s in (1, 10, 11, 21)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert lr_at(TrainConfig(lr=0.3), 1234) == 0.3
    task = SumTask()
    cfg = TrainConfig(steps=6, lr=0.1, lr_schedule="step", step_size=2, step_gamma=0.5, eval_every=3, **QUIET)
    history = train(build_model(task, 4), task, cfg)
    assert [r["lr"] for r in history.records] == [lr_at(cfg, 3), lr_at(cfg, 6)] == [0.05, 0.025]


def test_config_errors():
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="checkpoint_every: checkpoints need a run_dir"):
        TrainConfig(checkpoint_every=10)


def test_plain_lines_when_tqdm_is_missing(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.split(".")[0] == "tqdm":
            raise ImportError("No module named 'tqdm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "tqdm", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    task = SumTask()
    train(build_model(task, 4), task, TrainConfig(steps=10, eval_every=5, log_every=5, progress=True))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["step", "5/10"], ["step", "10/10"]]
    assert "test_solved" in lines[-1] and "loss" in lines[-1]


def test_progress_bar_gets_updates_and_postfix(monkeypatch):
    bars = []

    class FakeTqdm:
        def __init__(self, total, initial, **kwargs):
            self.total, self.n, self.postfix, self.closed = total, initial, None, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix(self, fields, refresh=True):
            self.postfix = fields

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    task = SumTask()
    train(build_model(task, 4), task, TrainConfig(steps=10, eval_every=5, log_every=5, progress=True))
    (bar,) = bars
    assert (bar.total, bar.n, bar.closed) == (10, 10, True)
    assert set(bar.postfix) == {"loss", "test_loss", "test_mse", "test_solved"}
