"""Monitoring: gate saturation, cell size, per-parameter gradient norms and clipping, on cases with known answers."""
import math

import numpy as np
import pytest

import nplstm
from nplstm.variants import Variant
from nplstm.training.monitor import gate_stats, grad_norms
from nplstm.tasks import make_task
from nplstm.training.trainer import TrainConfig, build_model, train

QUIET = dict(progress=False, log_every=0)
H = 6


def saturated_lstm(block: int, bias: float, **kwargs) -> nplstm.LSTM:
    lstm = nplstm.LSTM(3, H, seed=0, **kwargs)
    lstm.params["l0.b"][block * H:(block + 1) * H] = bias
    return lstm


@pytest.mark.parametrize("block,bias,gate", [(1, 50.0, "f"), (0, -50.0, "i"), (3, 50.0, "o"), (2, 50.0, "g")])
def test_a_gate_forced_into_saturation_counts_fully(block, bias, gate):
    """A bias of ±50 puts σ(a) (or tanh(a)) within 1e-20 of 0 or 1 whatever the inputs in [-1, 1] add."""
    lstm = saturated_lstm(block, bias)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 7, 3)).astype(np.float32)
    lstm.forward(x)
    stats = gate_stats(lstm.internals())
    assert stats["saturation"]["l0"][gate] == 1.0
    others = [v for k, v in stats["saturation"]["l0"].items() if k != gate]
    assert max(others) < 0.5                                    # the rest of a fresh LSTM is not saturated


def test_padding_is_left_out_and_no_forget_gate_gives_none():
    """Valid steps saturated, padded steps at 0.5: with lengths only the valid ones count."""
    B, T = 2, 4
    gates = {k: np.full((B, T, H), 0.5) for k in "ifgo"}
    lengths = np.array([4, 1])
    valid = np.arange(T)[None, :] < lengths[:, None]
    gates["i"][valid] = 0.01                                    # saturated low
    gates["o"][valid] = 0.99                                    # saturated high
    gates["g"][valid] = -0.96                                   # |g| > 0.95
    c = np.zeros((B, T, H))
    c[valid] = [1.0, -3.0, 0.0, 0.0, 0.0, 2.0]
    c[1, 3] = 100.0                                             # padding: must not count
    internals = {"l0": {**gates, "c": c, "h": np.zeros((B, T, H))}}
    stats = gate_stats(internals, lengths)
    assert stats["saturation"]["l0"] == {"i": 1.0, "f": 0.0, "g": 1.0, "o": 1.0}
    assert stats["cell"]["l0"] == {"max_abs": 3.0, "mean_abs": 1.0}
    everything = gate_stats(internals)                          # without lengths: 5 of 8 rows·steps are valid
    assert everything["saturation"]["l0"]["i"] == pytest.approx(5 / 8)
    assert everything["cell"]["l0"]["max_abs"] == 100.0
    assert gate_stats(internals, lengths, Variant(forget_gate=False))["saturation"]["l0"]["f"] is None
    unlearned = gate_stats(internals, lengths, Variant(input_gate=False, output_gate=False))["saturation"]["l0"]
    assert unlearned["i"] is None and unlearned["o"] is None and unlearned["f"] is not None


def test_grad_norms_squares_sum_to_the_global_norm():
    rng = np.random.default_rng(0)
    grads = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in (("a", (3, 4)), ("b", (5,)))}
    norms = grad_norms(grads)
    assert sum(n * n for n in norms.values()) == pytest.approx(nplstm.clip_grad_norm(grads, math.inf) ** 2, rel=1e-12)
    assert norms["b"] == pytest.approx(float(np.linalg.norm(grads["b"].astype(np.float64))), rel=1e-6)


def run(clip, *, steps=4, eval_every=2, forget_bias=1.0, forget_gate=True):
    task = make_task("adding", T=10)
    model = build_model(task, 8, seed=0, forget_bias=forget_bias, forget_gate=forget_gate)
    cfg = TrainConfig(steps=steps, batch_size=4, clip=clip, eval_every=eval_every, early_stop=False, **QUIET)
    return train(model, task, cfg).records


def test_records_count_clipped_updates():
    assert [r["clipped"] for r in run(1e-8)] == [2, 2]         # a tiny clip scales every update down
    assert [r["clipped"] for r in run(1e9)] == [0, 0]
    assert [r["clipped"] for r in run(None)] == [0, 0]


def test_records_per_parameter_norms_add_up_to_the_global_norm():
    records = run(1.0, eval_every=1)                            # a window of one update: rms = that update's norm
    for r in records:
        per = r["grad_norm_per_param"]
        assert sorted(per) == ["head.W", "head.b", "lstm.l0.R", "lstm.l0.W", "lstm.l0.b",
                               "lstm.l0.p_f", "lstm.l0.p_i", "lstm.l0.p_o"]
        assert sum(v * v for v in per.values()) == pytest.approx(r["grad_norm"]["mean"] ** 2, rel=1e-9)


def test_records_show_a_saturated_forget_gate_and_the_cell():
    records = run(1.0, forget_bias=50.0, steps=2, eval_every=2)
    assert records[0]["saturation"]["l0"]["f"] == 1.0
    assert set(records[0]["cell"]["l0"]) == {"max_abs", "mean_abs"}
    assert 0 < records[0]["cell"]["l0"]["mean_abs"] <= records[0]["cell"]["l0"]["max_abs"]
    assert run(1.0, forget_gate=False, steps=2)[0]["saturation"]["l0"]["f"] is None
