"""The peephole experiments (nplstm/training/peepholes.py) and the task they added, generating timed
spikes (Gers, Schraudolph & Schmidhuber 2002): the loop is the trainer's, the truncated step is the
library's rule, and timing_table runs end to end."""
import re

import numpy as np
import pytest

from nplstm.losses import mse
from nplstm.variants import Variant
from nplstm.tasks import make_task
from nplstm.training import peepholes
from nplstm.training.trainer import TrainConfig, build_model, train, train_step
from nplstm.truncated import truncated_gradients


# --- generating timed spikes -------------------------------------------------------------------------------

def test_timed_spikes_layout():
    task = make_task("timed_spikes", T=70, period=8)
    batch = task.batch(np.random.default_rng(3), 300)
    starts = set()
    for x, y, mask in zip(batch.x[..., 0], batch.y[..., 0], batch.mask):
        (start,) = np.flatnonzero(x)                                  # one start signal, nothing after it
        spikes = np.flatnonzero(y)
        assert 0 <= start < 8 and mask.all()
        assert np.array_equal(spikes, np.arange(start + 8, 70, 8))   # every 8 steps after the start, to the end
        starts.add(start)
    assert starts == set(range(8))


def test_timed_spikes_criterion_is_within_0_49_on_every_step():
    task = make_task("timed_spikes", T=40, period=5, test_size=4)
    batch = task.test_set()
    near = batch.y + np.where(batch.y > 0, -0.48, 0.48)             # every step 0.48 off: right
    assert task.evaluate(near, batch)["solved"] == 1.0
    far = near.copy()
    far[1, 7, 0] = batch.y[1, 7, 0] + 0.49                           # one step 0.49 off: wrong
    metrics = task.evaluate(far, batch)
    assert metrics["solved"] == 0.0 and metrics["wrong"] == 1.0 and metrics["accuracy"] == 0.75
    silent = task.evaluate(np.zeros_like(batch.y), batch)            # never spiking misses every spike
    assert silent["spikes_missed"] == batch.y.sum() and silent["false_spikes"] == 0.0
    nan = near.copy()
    nan[0, 0, 0] = np.nan
    assert task.evaluate(nan, batch)["solved"] == 0.0


def test_timed_spikes_options_are_checked():
    with pytest.raises(ValueError, match=r"T: expected an int >= 40, got 30"):
        make_task("timed_spikes", T=30, period=20)
    with pytest.raises(ValueError, match="period"):
        make_task("timed_spikes", period=0)


# --- the loop and the truncated step -----------------------------------------------------------------------

def small_model(task, peephole="diagonal", seed=0):
    return build_model(task, 3, peephole=peephole, seed=seed)


def test_fit_with_bptt_is_the_trainers_loop_update_for_update():
    task = make_task("timed_spikes", T=30, period=6, test_size=8)
    cfg = TrainConfig(steps=7, batch_size=4, lr=1e-2, eval_every=3, seed=5, progress=False, log_every=0)
    a, b = small_model(task), small_model(task)
    train(a, task, cfg)
    result = peepholes.fit(b, task, cfg, "bptt")
    assert result["steps"] == 7 and not result["solved"]
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k


def test_the_truncated_step_is_the_librarys_rule_and_the_head_is_exact():
    task = make_task("timing", T=40, t_min=5, t_max=9, test_size=8)
    batch = task.batch(np.random.default_rng(1), 4)
    model = small_model(task)
    loss = peepholes.truncated_train_step(model, batch, mse)
    truncated = {k: v.copy() for k, v in model.grads.items()}
    assert loss == train_step(model, batch, mse)[0]                  # the same forward
    for k in ("head.W", "head.b"):
        np.testing.assert_allclose(truncated[k], model.grads[k], rtol=1e-5, atol=1e-7)
    # the LSTM's share: nplstm.truncated on the same inputs, with dL/dh taken from the head
    H = 3
    y = model.lstm.forward(batch.x)[0]
    _, dout = mse(model.head.forward(y), batch.y, batch.mask)
    dh = model.head.backward(dout)
    params = {k[3:]: v for k, v in model.lstm.params.items()}
    expected = truncated_gradients(params, batch.x, dh, variant=Variant())
    for k, v in expected.items():
        np.testing.assert_allclose(truncated["lstm.l0." + k], v, rtol=1e-4, atol=1e-7)
    assert np.abs(truncated["lstm.l0.W"] - model.grads["lstm.l0.W"]).max() > 1e-6   # BPTT's differs
    assert truncated["lstm.l0.R"].shape == (H, 4 * H)


def test_fit_refuses_an_unknown_rule():
    task = make_task("timed_spikes", T=30, period=6, test_size=8)
    with pytest.raises(ValueError, match="rule: expected one of"):
        peepholes.fit(small_model(task), task, TrainConfig(steps=1, progress=False, log_every=0), "rtrl")


# --- the table -------------------------------------------------------------------------------------------

def test_cell_counts_solved_seeds_and_their_sequences():
    rows = [{"solved": True, "sequences": 2000, "diverged": False},
            {"solved": False, "sequences": None, "diverged": True},
            {"solved": True, "sequences": 1000, "diverged": False}]
    assert peepholes.cell(rows) == "2/3; 1,500 [1,000–2,000] (1 diverged)"
    assert peepholes.cell(rows[1:2]) == "0/1 (1 diverged)"
    rows[0]["stream"], rows[2]["stream"] = True, False
    assert peepholes.cell(rows) == "2/3; 1,500 [1,000–2,000]; 1/2 right on the long stream (1 diverged)"


def test_timing_table_quick_runs_end_to_end():
    rows, table = peepholes.timing_table(seeds=1, budget=64, quick=True)
    assert len(rows) == 2 * 2 * 2 and {(r["task"], r["peephole"], r["rule"]) for r in rows} == {
        (t, p, r) for t in ("msd", "gts") for p in ("diagonal", None) for r in ("bptt", "truncated")}
    assert all(r["steps"] == 4 and r["budget"] == 64 for r in rows)
    heads = [i for i, line in enumerate(table.splitlines()) if line == "| peepholes | BPTT | 1997 truncated rule |"]
    assert len(heads) == 2
    lines = table.splitlines()
    for i in heads:
        assert lines[i + 1] == "|---|---|---|"
        assert re.fullmatch(r"\| diagonal \| \d/1.* \| \d/1.* \|", lines[i + 2])
        assert re.fullmatch(r"\| none \| \d/1.* \| \d/1.* \|", lines[i + 3])
    assert "MSD" in table and "GTS" in table and "budget 64 sequences" in table
    with pytest.raises(ValueError, match="tasks: expected keys of"):
        peepholes.timing_table(tasks=("pfg",))


def test_the_papers_49_50_gaps_run_with_their_own_budget():
    setup = peepholes.SETUPS["msd50"]
    assert (setup.task_options["t_min"], setup.task_options["t_max"], setup.budget) == (49, 50, 200_000)
    assert "msd50" not in peepholes.DEFAULT
    r = peepholes.run_one("msd50", "diagonal", "truncated", 0, quick=True)
    assert r["task"] == "msd50" and r["steps"] == 4 and not r["diverged"]


# --- in nplstm reproduce ---------------------------------------------------------------------------------

def test_reproduce_selects_the_2x2_tables_by_their_names():
    from nplstm.training.reproduce import EXPERIMENTS, select
    spikes = [e for e in EXPERIMENTS if e.task == "timing"]
    assert select(None) == (EXPERIMENTS, ["msd", "gts"])
    assert select(["timing"]) == (spikes, [])                       # the suite's own spike-delay rows only
    assert select(["msd"]) == ([], ["msd"])
    assert select(["gts", "timing2x2"]) == ([], ["msd", "gts"])
    assert select(["timing2x2"]) == ([], ["msd", "gts"])             # the paper's 49/50 gaps only by name
    assert select(["msd50", "timing2x2"]) == ([], ["msd", "gts", "msd50"])
    assert select(["reber", "gts"]) == (EXPERIMENTS[:1], ["gts"])
    with pytest.raises(ValueError, match=r"--only: expected .*'msd', 'gts', 'msd50', 'timing2x2'.*got 'pfg'"):
        select(["reber", "pfg"])
