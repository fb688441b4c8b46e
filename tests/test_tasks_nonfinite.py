"""A non-finite output (NaN, +inf, -inf) is wrong in every task's error metrics and never solves it.

The bug this guards: `abs(nan) >= tol` is False, so an all-NaN adding output counted as right and
the run was "SOLVED"; and argmax over a NaN returns the NaN's index, which may be the target's.
"""
import math

import numpy as np
import pytest

from nplstm.tasks import TASKS, make_task

# Small enough to be fast. adding and temporal_order keep the paper's 2560 test sequences, so one
# wrong sequence is within their stop rule's tolerance; copy's 200 put one wrong within its 1%.
SMALL = {"adding": {"T": 10}, "temporal_order": {}, "reber": {"n_train": 16, "n_test": 16},
         "continual_reber": {"T": 10, "test_steps": 500}, "noise_free_lag": {"p": 10},
         "copy": {"T": 5, "test_size": 200}, "timing": {"T": 120, "t_min": 5, "t_max": 20, "test_size": 16},
         "timed_spikes": {"T": 30, "period": 5, "test_size": 16}, "charlm": {"T": 10}}

# Each task's error metrics at their worst, as an all-NaN (or all-inf) output must give them.
WORST = {"adding": {"frac_wrong": 1.0},
         "temporal_order": {"accuracy": 0.0, "frac_wrong": 1.0, "frac_err_below_0.3": 0.0},
         "reber": {"step_accuracy": 0.0, "accuracy_tp": 0.0, "frac_wrong": 1.0, "wrong_train": 16.0},
         "continual_reber": {"step_accuracy": 0.0, "accuracy_tp": 0.0, "frac_wrong": 1.0},
         "noise_free_lag": {"max_abs_error": 1.0, "accuracy": 0.0, "final_accuracy": 0.0},
         "copy": {"copy_accuracy": 0.0, "frac_wrong": 1.0},
         "timing": {"accuracy": 0.0, "frac_wrong": 1.0},
         "timed_spikes": {"accuracy": 0.0, "frac_wrong": 1.0},
         "charlm": {"accuracy": 0.0}}


@pytest.fixture
def task_and_batch(request, tmp_path):
    name = request.param
    options = dict(SMALL[name])
    if name == "charlm":                                           # needs >= 10 (T + 1) characters
        rng = np.random.default_rng(0)
        words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
        path = tmp_path / "text.txt"
        path.write_text("\n".join(" ".join(rng.choice(words, 6)) for _ in range(150)), encoding="utf-8")
        options["path"] = str(path)
    task = make_task(name, **options)
    return task, task.test_set()


# the benchmarks; your own data's tasks (series, sequences) read files and are tested in tests/test_your_data*.py
every_task = pytest.mark.parametrize("task_and_batch", [n for n in TASKS if n not in ("series", "sequences")],
                                     indirect=True)


def out_shape(task, batch):
    return batch.y.shape if task.loss == "mse" else batch.y.shape + (task.output_size,)


def perfect_outputs(task, batch):
    """The targets, or logits peaked on them (on every possible symbol, for Reber's top-k)."""
    if task.loss == "mse":
        return batch.y.astype(np.float64)
    if batch.extra and "possible" in batch.extra:
        return 20.0 * batch.extra["possible"]
    return 20.0 * np.eye(task.output_size)[batch.y]


def loss_key(task):
    return "mse" if task.loss == "mse" else "loss"


def bad_step(task, batch):
    """An evaluated step of sequence 0: its T/P prediction if it has one, else its last masked step."""
    if task.many_to_one:
        return None
    if batch.extra and "tp" in batch.extra:
        return int(np.flatnonzero(batch.extra["tp"][0])[0])
    return int(np.flatnonzero(batch.mask[0])[-1])


def spoil_one(task, batch, out, value):
    """out with `value` at sequence 0, at bad_step, on the target's unit (where argmax would look)."""
    out = out.copy()
    t = bad_step(task, batch)
    at = (0,) if t is None else (0, t)
    unit = 0 if task.loss == "mse" else int(batch.y[at])
    out[at + (unit,)] = value
    return out


def one_wrong(task, batch):
    """The metrics a perfect output with one spoiled step of sequence 0 must give."""
    B, name = len(batch.y), task.name
    if name in ("adding", "temporal_order"):
        return {"wrong": 1.0, "frac_wrong": 1 / B}
    if name == "reber":
        return {"wrong_test": 1.0, "wrong_train": 0.0, "frac_wrong": 1 / task.n_test,
                "step_accuracy": 1 - 1 / batch.mask.sum(), "accuracy_tp": 1 - 1 / batch.extra["tp"].sum()}
    if name == "continual_reber":
        return {"step_accuracy": 1 - 1 / batch.mask.sum(), "frac_wrong": 1 / batch.mask.sum(),
                "accuracy_tp": 1 - 1 / batch.extra["tp"].sum()}
    if name == "noise_free_lag":
        return {"max_abs_error": 1.0, "final_accuracy": 1 - 1 / B, "accuracy": 1 - 1 / batch.mask.sum()}
    if name == "copy":
        return {"frac_wrong": 1 / B, "copy_accuracy": 1 - 1 / (10 * B)}
    if name == "timing":
        return {"wrong": 1.0, "accuracy": 1 - 1 / batch.mask.sum()}
    if name == "timed_spikes":                                     # accuracy counts whole sequences
        return {"wrong": 1.0, "frac_wrong": 1 / batch.mask.sum(), "accuracy": 1 - 1 / B}
    if name == "charlm":
        return {"accuracy": 1 - 1 / batch.mask.sum()}
    raise AssertionError(f"no expectation for task {name!r}")


@every_task
def test_all_nan_output_is_wrong_everywhere_and_its_loss_is_nan(task_and_batch):
    task, batch = task_and_batch
    metrics = task.evaluate(np.full(out_shape(task, batch), np.nan), batch)
    assert metrics["solved"] == 0.0
    assert {k: metrics[k] for k in WORST[task.name]} == WORST[task.name]
    assert math.isnan(metrics[loss_key(task)])                     # reported honestly, not hidden


@every_task
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_all_infinite_output_is_wrong_everywhere(task_and_batch, value):
    task, batch = task_and_batch
    with np.errstate(invalid="ignore"):                            # softmax of inf - inf
        metrics = task.evaluate(np.full(out_shape(task, batch), value), batch)
    assert metrics["solved"] == 0.0
    assert {k: metrics[k] for k in WORST[task.name]} == WORST[task.name]
    assert not math.isfinite(metrics[loss_key(task)])


@every_task
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_one_non_finite_output_makes_its_sequence_wrong_and_the_batch_unsolved(task_and_batch, value):
    task, batch = task_and_batch
    perfect = perfect_outputs(task, batch)
    assert task.evaluate(perfect, batch)["solved"] == 1.0
    with np.errstate(invalid="ignore"):
        metrics = task.evaluate(spoil_one(task, batch, perfect, value), batch)
    expected = one_wrong(task, batch)
    assert {k: metrics[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    # even where one wrong sequence is tolerated (a stop rule, copy's 1%), a non-finite one is not
    assert metrics["solved"] == 0.0


@pytest.mark.parametrize("task_and_batch", ["reber", "noise_free_lag", "timing"], indirect=True)
def test_non_finite_outputs_at_steps_not_evaluated_change_nothing(task_and_batch):
    task, batch = task_and_batch
    perfect = perfect_outputs(task, batch)
    spoiled = np.where(batch.mask[..., None], perfect, np.nan)     # NaN at padding, unmeasured steps
    assert task.evaluate(spoiled, batch) == task.evaluate(perfect, batch)
