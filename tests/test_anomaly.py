"""detect_anomaly(): the first NaN or Inf is named, located and explained; off, nothing is checked."""
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

import nplstm
from nplstm.anomaly import is_enabled
from nplstm.optim import SGD, clip_grad_norm
from nplstm.tasks import make_task
from nplstm.training.trainer import LOSSES, TrainConfig, build_model, train, train_step

QUIET = dict(progress=False, log_every=0)
F32_MAX = float(np.finfo(np.float32).max)


def data(B=3, T=6, I=4, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (B, T, I)).astype(np.float32)


def raised(fn) -> nplstm.AnomalyError:
    with nplstm.detect_anomaly(), pytest.raises(nplstm.AnomalyError) as info:
        fn()
    return info.value


# --- off: opt-in, no checks, same numbers ------------------------------------------------------

@pytest.mark.parametrize("detect", [False, True])
def test_a_non_finite_weight_is_refused_on_and_off(detect):
    """A NaN parameter never flows through silently: forward refuses it with a ValueError (malformed
    input, not arithmetic gone wrong), with detection on or off."""
    assert not is_enabled()
    lstm = nplstm.LSTM(4, 8, seed=0)
    lstm.params["l0.R"][2, 5] = np.nan
    with nplstm.detect_anomaly(detect), pytest.raises(ValueError, match=r"params\['l0.R'\]: contains NaN or Inf "
                                                                    r"\(first at index \(2, 5\): nan, 1 of 256"):
        lstm.forward(data())


def test_results_are_bit_identical_with_detection_on_and_off(tmp_path):
    def run(detect):
        task = make_task("adding", T=10)
        model = build_model(task, 8, seed=0)
        cfg = TrainConfig(steps=6, batch_size=4, eval_every=3, early_stop=False, detect_anomaly=detect, **QUIET)
        return model, train(model, task, cfg)

    (m_off, h_off), (m_on, h_on) = run(False), run(True)
    for key, p in m_off.params.items():
        assert np.array_equal(p, m_on.params[key]), key
    drop = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]   # noqa: E731
    assert drop(h_off.records) == drop(h_on.records)
    assert not is_enabled()


def test_context_manager_decorator_nesting_and_restore():
    @nplstm.detect_anomaly()
    def inside():
        return is_enabled()

    assert inside() and not is_enabled()
    with nplstm.detect_anomaly():
        with nplstm.detect_anomaly(enabled=False):
            assert not is_enabled()
        assert is_enabled()
        with pytest.raises(RuntimeError):
            with nplstm.detect_anomaly():
                raise RuntimeError
        assert is_enabled()
    assert not is_enabled()


def test_error_is_arithmetic_not_value_error():
    assert issubclass(nplstm.AnomalyError, ArithmeticError)
    assert not issubclass(nplstm.AnomalyError, ValueError)   # `except ValueError` for bad input won't swallow it


# --- forward: data, a NaN weight, a float32 overflow, the reverse direction -----------------------

@pytest.mark.parametrize("detect", [False, True])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_in_data_is_a_value_error_naming_where(bad, detect):
    x = data()
    x[1, 3, 2] = bad
    with nplstm.detect_anomaly(detect), pytest.raises(ValueError, match=r"x: contains NaN or Inf \(first at index "
                                                                    r"\(1, 3, 2\): (nan|inf), 1 of 72 entries"):
        nplstm.LSTM(4, 8, seed=0).forward(x)


@pytest.mark.parametrize("detect", [False, True])
def test_nan_in_targets_is_a_value_error_naming_where(detect):
    y = np.zeros((4, 1), np.float32)
    y[2, 0] = np.nan
    with nplstm.detect_anomaly(detect), pytest.raises(ValueError, match=r"target: contains NaN or Inf \(first at "
                                                                    r"index \(2, 0\)"):
        nplstm.mse(np.zeros((4, 1), np.float32), y)


@pytest.mark.parametrize("q,gate", list(enumerate(["input gate", "forget gate", "cell input g", "output gate"])))
def test_overflow_names_the_gate_step_and_weight(q, gate):
    """W[0, q·H + 5] = 3e38 feeds unit 5 of gate q; times an input of 2 it is 6e38, beyond float32's
    3.4e38, so a_q overflows at t = 0 in every row (the engine itself only ever holds a/2 for i, f, o)."""
    H = 8
    lstm = nplstm.LSTM(4, H, seed=0)
    lstm.params["l0.W"][0, q * H + 5] = 3e38
    x = data()
    x[:, :, 0] = 2.0
    err = raised(lambda: lstm.forward(x))
    assert err.quantity.startswith(f"the pre-activation of the {gate} (a_{'ifgo'[q]} = x_t W + h_{{t-1}} R + b")
    assert err.where == {"layer": 0, "direction": "forward", "time step t": 0, "batch index b": 0, "hidden unit": 5}
    assert err.value == np.inf
    assert "overflow: x_t W at unit 5 is 6e+38 in exact arithmetic, beyond float32's largest value 3.4e+38" in str(err)


def test_float32_overflow_of_a_huge_weight():
    """One weight of 3e38 times an input of 2 is 6e38 > float32's largest 3.4e38: a_f overflows to inf
    exactly where that input is 2 (inputs of 0.5 give 1.5e38, still finite)."""
    H = 8
    lstm = nplstm.LSTM(4, H, peephole=None, seed=0)
    lstm.params["l0.W"][0, H + 3] = 3e38                        # forget gate, unit 3
    x = data()
    x[:, :, 0] = 0.5
    x[2, 4, 0] = 2.0
    err = raised(lambda: lstm.forward(x))
    assert err.quantity.startswith("the pre-activation of the forget gate")
    assert err.value == np.inf
    assert err.where == {"layer": 0, "direction": "forward", "time step t": 4, "batch index b": 2, "hidden unit": 3}
    text = str(err)
    assert re.search(r"max \|l0.W\| \(forget gate columns\) +3e\+38", text)
    assert "overflow: x_t W at unit 3 is 6e+38 in exact arithmetic, beyond float32's largest value 3.4e+38" in text


def test_huge_weights_that_cancel_are_not_an_anomaly():
    """±1e38 weights defeat the cheap no-overflow bound, so the pre-activations are recomputed:
    1e38 - 1e38 = 0 is finite, and nothing is raised."""
    lstm = nplstm.LSTM(4, 8, peephole=None, seed=0)
    lstm.params["l0.W"][:2] = np.array([[1e38], [-1e38]], np.float32)
    x = np.zeros((2, 3, 4), np.float32)
    x[..., :2] = 1.0
    with nplstm.detect_anomaly():
        y, _ = lstm.forward(x)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("num_layers,key,where", [
    (1, "l0_reverse.W", {"layer": 0, "direction": "reverse", "time step t": 2, "batch index b": 1}),
    (2, "l1_reverse.R", {"layer": 1, "direction": "reverse", "time step t": 2, "batch index b": 0}),
])
def test_reverse_direction_in_a_ragged_batch(num_layers, key, where):
    """The reverse direction starts at each row's last valid step: for row 1 (length 3), t = 2.
    Layer 0: x[1, 2, 0] = 1e30 times weights of 1e10 overflows only in the reverse direction.
    Layer 1: an initial state of 1e30 times R[0, 0] = 1e10 overflows at the reverse direction's
    first step, in every row; all rows end at t = 2, so b = 0 is the first."""
    lstm = nplstm.LSTM(4, 8, num_layers=num_layers, bidirectional=True, seed=0)
    x = data()
    state = None
    if key == "l0_reverse.W":
        lstm.params[key][0, :] = 1e10
        x[1, 2, 0] = 1e30
        lengths = [6, 3, 5]
    else:
        lstm.params[key][0, 0] = 1e10
        h0 = np.zeros((4, 3, 8), np.float32)
        h0[3, :, 0] = 1e30                                       # (L·D, B, H): l1_reverse is the 4th
        state, lengths = (h0, np.zeros_like(h0)), [3, 3, 3]
    err = raised(lambda: lstm.forward(x, state, lengths=np.array(lengths)))
    assert err.quantity.startswith("the pre-activation of the input gate")
    assert {k: err.where[k] for k in where} == where


# --- the loss: which part of the mean squared error overflowed ------------------------------------

def test_mse_overflow_of_the_sum_names_the_sum_not_one_square():
    """800 differences of 1e18: each square (1e36) fits float32, their sum (800 x 1e36 = 8e38) does not,
    which is what happened in docs/why-nan.md (largest difference 2.25e18, below sqrt(3.4e38) = 1.84e19)."""
    pred = np.full((4, 100, 2), 1e18, np.float32)
    err = raised(lambda: nplstm.mse(pred, np.zeros_like(pred)))
    text = str(err)
    assert err.quantity == "the loss (mse)" and err.value == np.inf
    assert "each (prediction - target)^2 fits float32 (the largest is 1e+36), but their sum over the 800 " \
           "entries, 8e+38, overflows it (largest value 3.4e+38)" in text
    assert "exceeds 1.84e+19" not in text


def test_mse_overflow_of_one_square_names_the_difference():
    """One difference of 1e20 > sqrt(3.4e38) = 1.84e19: its square alone overflows float32."""
    pred = np.zeros((3, 5, 1), np.float32)
    pred[1, 2, 0] = 1e20
    text = str(raised(lambda: nplstm.mse(pred, np.zeros_like(pred))))
    assert "(prediction - target)^2 overflows float32 once |prediction - target| exceeds 1.84e+19 (here 1e+20)" in text
    assert "max |prediction - target|  1e+20 at [1, 2, 0]" in text
    assert "their sum" not in text


# --- backward: an exploding gradient through R ---------------------------------------------------

def test_backward_explosion_names_dL_dh_and_the_step():
    """x = 0 and zero biases keep h = c = 0 and every gate at σ(0) = 0.5, g = 0 (nothing saturates).
    Backward, only the g block passes gradient: dh_{t-1} = 0.5 (dc carried) R_g^T, and R_g = 40·Q
    (Q orthogonal) multiplies |dh| by about 10 per step, so float32 overflows ~39 steps before the end."""
    H, T = 8, 50
    lstm = nplstm.LSTM(2, H, peephole=None, seed=0, forget_bias=0.0)
    R = np.zeros((H, 4 * H), np.float32)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((H, H)))
    R[:, 2 * H:3 * H] = 40 * q
    lstm.params["l0.R"] = R
    y, _ = lstm.forward(np.zeros((2, T, 2), np.float32))
    dy = np.zeros_like(y)
    dy[1, T - 1] = 1.0
    # float64 oracle of the same recurrence: dc += o (1 - tanh² c) dh; da_g = i (1 - g²) dc; dc *= f
    dh, dc, R_g = dy[1, T - 1].astype(np.float64), np.zeros(H), R[:, 2 * H:3 * H].astype(np.float64)
    largest = []                                                # max |dL/dh_t| for t = T-1, T-2, ...
    for t in range(T - 1, -1, -1):
        largest.append(np.abs(dh).max())
        if largest[-1] > F32_MAX:
            break
        dc = dc + 0.5 * dh
        dh, dc = (0.5 * dc) @ R_g.T, 0.5 * dc
    assert 0 < t < T - 10 and largest[-1] > 1.1 * F32_MAX and largest[-2] < 0.5 * F32_MAX   # far from the edge
    err = raised(lambda: lstm.backward(dy))
    assert err.quantity.startswith("dL/dh_t, the gradient of the hidden state h")
    assert {k: err.where[k] for k in ("layer", "direction", "time step t", "batch index b")} == \
        {"layer": 0, "direction": "forward", "time step t": t, "batch index b": 1}
    text = str(err)
    assert "max |dL/da| by step" in text and "exploding gradient" in text


# --- the optimizer and clipping ------------------------------------------------------------------

@pytest.mark.parametrize("opt", [nplstm.SGD(1e30), nplstm.Adam(1e39)])
def test_optimizer_step_that_overflows_is_reported_and_not_applied(opt):
    params = {"lstm.l0.W": np.full((2, 3), 0.5, np.float32), "head.b": np.zeros(1, np.float32)}
    grads = {"lstm.l0.W": np.full((2, 3), 1e10, np.float32), "head.b": np.ones(1, np.float32)}
    before = {k: v.copy() for k, v in params.items()}
    err = raised(lambda: opt.step(params, grads))
    name = type(opt).__name__
    assert err.quantity == f"lstm.l0.W after the {name} step" and err.value == -np.inf
    assert err.where == {"index": [0, 0]} and re.search(r"learning rate +" + re.escape(f"{opt.lr:g}"), str(err))
    step = 1e40 if name == "SGD" else 1e39                      # lr g; Adam's first step is lr sign(g)
    assert re.search(r"the step there \(in float64\) +" + re.escape(f"-{step:.3g}"), str(err))
    for key in params:                                          # nothing was written, not even head.b
        assert np.array_equal(params[key], before[key])
    assert opt.t == 0 and opt.state == {}


def test_gradient_norm_overflow_is_reported():
    grads = {"w": np.full(4, 1e20, np.float32)}                 # finite, but the squares overflow float32
    err = raised(lambda: clip_grad_norm(grads, 1.0))
    assert err.quantity.startswith("the global gradient norm") and err.value == np.inf


# --- a diverging run, like the seed's ------------------------------------------------------------

def first_non_finite_update(task, model, cfg):
    """Oracle: the trainer's loop written out, detection off; the first update with a non-finite
    loss, prediction, gradient or weight (train_step and the optimizer refuse to go on past one)."""
    rng, opt = np.random.default_rng(cfg.seed), SGD(cfg.lr)
    with np.errstate(all="ignore"):
        for step in range(1, cfg.steps + 1):
            try:
                train_step(model, task.batch(rng, cfg.batch_size), LOSSES[task.loss])
            except nplstm.NonFiniteError:
                return step
            if not all(np.isfinite(g).all() for g in model.grads.values()):
                return step
            clip_grad_norm(model.grads, math.inf)
            try:
                opt.step(model.params, model.grads)
            except nplstm.NonFiniteError:
                return step
    return None


def test_training_divergence_names_the_update_lr_and_norm_history(tmp_path):
    task = make_task("adding", T=20)
    cfg = TrainConfig(steps=40, batch_size=8, lr=1000.0, optimizer="sgd", clip=None, eval_every=20,
                      detect_anomaly=True, run_dir=tmp_path, **QUIET)
    expected = first_non_finite_update(task, build_model(task, 16, forget_gate=False, seed=0), cfg)
    assert expected is not None and expected > 2
    with pytest.raises(nplstm.AnomalyError) as info:
        train(build_model(task, 16, forget_gate=False, seed=0), task, cfg)
    err, text = info.value, str(info.value)
    assert err.where["training"] == f"update {expected}"
    assert "learning rate 1000 (SGD), no clipping (clip=None)" in text
    assert f"gradient norm before clipping, last {expected - 1} updates (oldest first):" in text
    assert "exploding gradients: the gradient norm grew from" in text
    assert "gradients are not clipped (clip=None): clip the global norm" in text
    assert "learning rate 1000 too large" in text
    assert not is_enabled()
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved["stopped"] == "anomaly" and saved["anomaly"] == text and saved["steps_done"] == expected - 1


def test_cli_prints_the_report_and_exits_1(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nplstm", "train", "adding", "--detect-anomaly", "--lr", "1000",
                             "--optimizer", "sgd", "--schedule", "constant", "--clip", "0", "--no-progress",
                             "--run-dir", tmp_path / "run"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "nplstm train: stopped at the first NaN or Inf" and lines[1].startswith("AnomalyError: ")
    assert "training update" in result.stderr and "likely causes:" in result.stderr
    assert "--clip 1" in result.stderr and "learning rate 1000" in result.stderr


# --- the GRU: its pre-activations a_r, a_z, a_n, hn = h R_n + b_hn, and δ backward -----------------

GRU_GATES = ["the pre-activation of the reset gate (a_r = x_t W_r + h_{t-1} R_r + b_r)",
             "the pre-activation of the update gate (a_z = x_t W_z + h_{t-1} R_z + b_z)",
             "the pre-activation of the candidate (a_n = x_t W_n + b_in + r_t hn_t)"]


@pytest.mark.parametrize("q", [0, 1, 2], ids=["r", "z", "n"])
def test_gru_overflow_names_the_gate_step_and_unit(q):
    """W[0, q·H + 5] = 3e38 feeds unit 5 of block q (r, z, n); times an input of 2 it is 6e38 > 3.4e38.
    Only at t = 4 of row 2 is that input 2 (elsewhere 0.5: 1.5e38, finite). σ(inf) = 1 and tanh(inf) = 1,
    so the output stays finite: only the recorded pre-activation shows the overflow."""
    H = 8
    gru = nplstm.GRU(4, H, seed=0)
    gru.params["l0.W"][0, q * H + 5] = 3e38
    x = data()
    x[:, :, 0] = 0.5
    x[2, 4, 0] = 2.0
    with np.errstate(over="ignore"):
        y, _ = gru.forward(x)
    assert np.isfinite(y).all()                                  # detection off: nothing shows
    err = raised(lambda: gru.forward(x))
    assert err.quantity == GRU_GATES[q] and err.value == np.inf
    assert err.where == {"layer": 0, "direction": "forward", "time step t": 4, "batch index b": 2, "hidden unit": 5}
    text = str(err)
    assert "overflow: x_t W" + ("_n" if q == 2 else "") + " at unit 5 is 6e+38 in exact arithmetic, beyond " \
           "float32's largest value 3.4e+38" in text
    assert re.search(rf"max \|l0.W\| \({['reset gate', 'update gate', 'candidate'][q]} columns\) +3e\+38", text)


def test_gru_overflow_of_hn_is_named_before_the_candidate():
    """hn = h_{t-1} R_n + b_hn is computed before a_n = ... + r hn: an initial state of 2 times R_n = 3e38
    overflows hn at t = 0 (a_n, which adds r hn, is inf too, and comes after)."""
    H = 8
    gru = nplstm.GRU(4, H, seed=0)
    gru.params["l0.R"][0, 2 * H + 5] = 3e38
    h0 = np.zeros((1, 3, H), np.float32)
    h0[0, 1, 0] = 2.0
    err = raised(lambda: gru.forward(data(), h0))
    assert err.quantity.startswith("the recurrent part of the candidate's pre-activation (hn_t = h_{t-1} R_n + b_hn")
    assert err.where == {"layer": 0, "direction": "forward", "time step t": 0, "batch index b": 1, "hidden unit": 5}
    assert "overflow: h_{t-1} R_n at unit 5 is 6e+38 in exact arithmetic" in str(err)


def test_gru_reverse_direction_in_a_ragged_batch():
    """Row 1 has length 3: the reverse direction starts at its t = 2, where x = 1e30 meets weights of 1e10."""
    gru = nplstm.GRU(4, 8, num_layers=2, bidirectional=True, seed=0)
    gru.params["l0_reverse.W"][0, :] = 1e10
    x = data()
    x[1, 2, 0] = 1e30
    err = raised(lambda: gru.forward(x, lengths=np.array([6, 3, 5])))
    assert err.quantity == GRU_GATES[0]
    assert err.where == {"layer": 0, "direction": "reverse", "time step t": 2, "batch index b": 1, "hidden unit": 0}


def test_gru_finite_runs_raise_nothing_and_give_the_same_bits(monkeypatch):
    """A ragged, stacked, bidirectional forward and backward passes the cheap checks (the autopsy is never
    imported); detection on or off, the outputs and gradients are the same bits."""
    from nplstm.diagnostics import autopsy
    for name in ("gru_forward", "gru_backward"):
        monkeypatch.setattr(autopsy, name, lambda *args: pytest.fail("the autopsy ran on a finite run"))

    def run(detect):
        gru = nplstm.GRU(4, 8, num_layers=2, bidirectional=True, seed=0)
        with nplstm.detect_anomaly(detect):
            y, h_n = gru.forward(data(B=3, T=5), lengths=np.array([5, 2, 4]))
            dx, dh0 = gru.backward(np.ones_like(y), np.ones_like(h_n))
        return [y, h_n, dx, dh0, *gru.grads.values()]
    on, off = run(True), run(False)
    assert all(np.isfinite(a).all() for a in on)
    assert all(np.array_equal(a, b) for a, b in zip(on, off))


def test_gru_huge_weights_that_cancel_are_not_an_anomaly(monkeypatch):
    """±1e38 weights defeat the cheap bound, so the autopsy reruns the forward: 1e38 - 1e38 = 0 is
    finite, and nothing is raised."""
    from nplstm.diagnostics import autopsy
    calls, original = [], autopsy.gru_forward
    monkeypatch.setattr(autopsy, "gru_forward", lambda *args: calls.append(original(*args)))
    gru = nplstm.GRU(4, 8, seed=0)
    gru.params["l0.W"][:2] = np.array([[1e38], [-1e38]], np.float32)
    x = np.zeros((2, 3, 4), np.float32)
    x[..., :2] = 1.0
    with nplstm.detect_anomaly():
        y, _ = gru.forward(x)
    assert np.isfinite(y).all() and len(calls) == 1             # the autopsy ran, and found nothing


def test_gru_backward_explosion_names_dL_dh_and_the_step():
    """x = 0, zero biases and h_0 = 0 keep h = 0, r = z = 1/2, n = 0. Backward then dh_{t-1} = dh/2 +
    (dh/4) R_n^T (the direct path through z and the path through hn), and R_n = 40·Q (Q orthogonal)
    multiplies |dh| by about 10 per step: float32 overflows ~38 steps before the end."""
    H, T = 8, 50
    gru = nplstm.GRU(2, H, seed=0)
    for p in gru.params.values():
        p[...] = 0.0
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((H, H)))
    gru.params["l0.R"][:, 2 * H:] = 40 * q
    gru.params["l0.W"][...] = 0.3
    y, _ = gru.forward(np.zeros((2, T, 2), np.float32))
    dy = np.zeros_like(y)
    dy[1, T - 1] = 1.0
    dh, R_n, largest = dy[1, T - 1].astype(np.float64), gru.params["l0.R"][:, 2 * H:].astype(np.float64), []
    for t in range(T - 1, -1, -1):                               # the float64 oracle of that recurrence
        largest.append(np.abs(dh).max())
        if largest[-1] > F32_MAX:
            break
        dh = 0.5 * dh + (0.25 * dh) @ R_n.T
    assert 0 < t < T - 10 and largest[-1] > 1.1 * F32_MAX and largest[-2] < 0.5 * F32_MAX   # far from the edge
    err = raised(lambda: gru.backward(dy))
    assert err.quantity.startswith("dL/dh_t, the gradient of the hidden state h")
    assert {k: err.where[k] for k in ("layer", "direction", "time step t", "batch index b")} == \
        {"layer": 0, "direction": "forward", "time step t": t, "batch index b": 1}
    text = str(err)
    assert "max |dL/da| by step" in text and "exploding gradient" in text


def test_gru_under_no_grad_keeps_its_cache_for_the_detector():
    """As the LSTM's: under detect_anomaly a no_grad forward keeps the cache, so it can be explained."""
    gru = nplstm.GRU(4, 8, seed=0)
    gru.params["l0.W"][0, 3] = 3e38
    x = data()
    x[:, :, 0] = 2.0
    with nplstm.no_grad():
        assert raised(lambda: gru.forward(x)).quantity == GRU_GATES[0]
