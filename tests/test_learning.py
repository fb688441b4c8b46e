"""Short real training runs on the papers' tasks: each must learn past a stated bound."""
import pytest

from nplstm.training.recipes import RECIPES
from nplstm.tasks import make_task
from nplstm.training.trainer import TrainConfig, build_model, train

pytestmark = pytest.mark.slow          # seconds to tens of seconds each; `pytest -m "not slow"` leaves them out


def run(name, steps, task_options=None, **train_options):
    recipe = RECIPES[name]
    task = make_task(name, **{**recipe.task, **(task_options or {})})
    model = build_model(task, seed=0, **recipe.model)
    cfg = TrainConfig(**{**recipe.train, "steps": steps, **train_options}, progress=False, log_every=0)
    return task, model, train(model, task, cfg)


def test_embedded_reber_is_solved_by_the_1997_criterion():
    task, _, history = run("reber", 1500)
    assert history.solved, history.records[-1]
    last = history.records[-1]["test"]
    assert last["wrong_test"] == 0 and last["wrong_train"] == 0   # all 256 + 256 strings
    assert history.sequences_to_solve < 8440                       # the paper's best


def test_adding_short_sequences_beat_the_baseline():
    task, _, history = run("adding", 600, {"T": 20, "test_size": 500}, eval_every=200)
    first, last = history.records[0]["test"], history.records[-1]["test"]
    # predicting the mean gives Var(0.5 + (X1 + X2)/4) = 2 (1/3) / 16 ≈ 0.042
    assert last["mse"] < 0.005 < first["mse"]


def test_temporal_order_learns_the_order():
    """Whether one seed has learned the order after a given budget is a coin toss: the recipe's 10 seeds needed
    4,000-19,000 sequences (median 7,000; docs/results.md), and a change of float32 rounding alone (the engine
    folding its peepholes, gradients equal to 3e-7) moved seed 0 from learned at 700 steps to still at 0.49
    after 1,400. So five seeds run 1,400 steps (11,200 sequences), and at least two must learn (chance is 0.25)."""
    learned = []
    for seed in range(5):
        recipe = RECIPES["temporal_order"]
        task = make_task("temporal_order", **{**recipe.task, "test_size": 256})
        model = build_model(task, seed=seed, **recipe.model)
        cfg = TrainConfig(**{**recipe.train, "steps": 1400, "eval_every": 1400}, progress=False, log_every=0)
        learned.append(train(model, task, cfg).records[-1]["test"]["accuracy"] > 0.9)
    assert sum(learned) >= 2, learned


def test_continual_reber_with_forget_gate_learns_the_stream():
    task, _, history = run("continual_reber", 300, {"test_steps": 2000}, eval_every=150)
    assert history.records[-1]["test"]["accuracy_tp"] > 0.9


def test_charlm_beats_unigram_and_bigram(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 300)
    task, _, history = run("charlm", 150, {"path": str(text), "T": 30}, eval_every=150, batch_size=16)
    last = history.records[-1]["test"]
    assert last["loss"] < task.bigram_entropy() < task.unigram_entropy()
