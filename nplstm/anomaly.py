"""Anomaly detection: stop at the first NaN or Inf and say where it came from, in the equations' words.

Off by default, and then free: each shell method has one hook line that returns at once when
the module flag is off. On (`with nplstm.detect_anomaly():`, `TrainConfig(detect_anomaly=True)`,
`nplstm train TASK --detect-anomaly`), each hook scans what its call produced with np.isfinite,
whole arrays at once. (Non-finite *inputs* are not anomalies: the shells refuse them with a
ValueError, on or off.) The LSTM's and the GRU's pre-activations are overwritten in place by the forward
pass; a bound from the largest inputs and the weights' column norms shows that none overflowed. When a
check fails, or that bound cannot be shown, nplstm.diagnostics.autopsy is imported: it runs the
core again asking it to record its pre-activations (forward) or δa and the incoming gradients
(backward), finds the earliest (step, row, unit), names the first non-finite quantity of that step
and shows the numbers that fed it.

The flag is process-wide (like a NumPy error state), not per thread.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .errors import AnomalyError, NonFiniteError, _check, _first_bad, _mag, _maxabs, _nonfinite_note, _num
from .lstm import F, I, O

__all__ = ["detect_anomaly", "is_enabled", "AnomalyError", "NonFiniteError"]

_enabled = False


def is_enabled() -> bool:
    """True inside detect_anomaly()."""
    return _enabled


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True):
    """Within this block (or function, as a decorator), the first NaN or Inf raises AnomalyError.

    Covers LSTM, GRU, Linear and Model forward and backward, mse and softmax_cross_entropy, the
    optimizers' step and clip_grad_norm (the shells; lstm_forward, stack_forward, gru_forward
    and the like called directly are not checked). `enabled=False` switches detection off inside the block.
    """
    global _enabled
    before, _enabled = _enabled, bool(enabled)
    try:
        # NumPy's overflow and invalid-value warnings would come before the report and say less
        with np.errstate(over="ignore", invalid="ignore", divide="ignore") if enabled else contextlib.nullcontext():
            yield
    finally:
        _enabled = before


# --- the LSTM and the GRU: cheap checks here, the autopsy only when one fails -----------------------

def _norm1(M) -> np.ndarray:
    """‖column‖₁ of a matrix, |entry| of a vector, in float64."""
    return np.abs(M.astype(np.float64)).sum(axis=0) if M.ndim == 2 else np.abs(M.astype(np.float64))


def _column_bound(cache, W, R, b) -> np.ndarray:
    """A bound on |x_t W + h_{t-1} R + b| for each column, over every step and row, in float64.

    max|x| ‖W_col‖₁ + max|h| ‖R_col‖₁ + |b| (x1 holds a column of ones, so max|x1| >= 1 only loosens it);
    rounding cannot double it, so below half the dtype's largest value nothing overflows, no GEMM redone.
    """
    return _maxabs(cache.x1) * _norm1(W) + _maxabs(cache.h) * _norm1(R) + _norm1(b)


def _surely_finite(cache, params, pre) -> bool:
    """True if every input of the LSTM forward is finite and no pre-activation can overflow:
    |a| is at most _column_bound + max|c| ‖p_col‖₁."""
    peepholes = [params[pre + n] for n in ("p_i", "p_f", "p_o")] if cache.peephole is not None else []
    W, R, b = params[pre + "W"], params[pre + "R"], params[pre + "b"]
    if not all(np.isfinite(a).all() for a in (cache.x1, cache.h, cache.c, W, R, b, *peepholes)):
        return False
    bound = _column_bound(cache, W, R, b)    # (4H,)
    if peepholes:
        bound = bound.reshape(4, -1)
        bound[[I, F, O]] += _maxabs(cache.c) * np.stack([_norm1(p) for p in peepholes])
    return float(bound.max()) < np.finfo(cache.x1.dtype).max / 2


def _gru_surely_finite(cache, params, pre) -> bool:
    """The same for a GRU layer: a_r, a_z and hn = h_{t-1} R_n + b_hn are within _column_bound (+ |b_hn|),
    and so is a_n = x_t W_n + b_in + r_t hn, since 0 <= r_t <= 1. Then r, z, n and h are finite too."""
    W, R, b, b_hn = (params[pre + n] for n in ("W", "R", "b", "b_hn"))
    if not (np.isfinite(cache.x1).all() and np.isfinite(cache.h).all()):
        return False
    bound = _column_bound(cache, W, R, b).reshape(3, -1)   # (3, H): r, z, n
    bound[2] += _norm1(b_hn)
    return float(bound.max()) < np.finfo(cache.x1.dtype).max / 2



def check_lstm_forward(scache, params, cfg, x, h0, c0, lengths) -> None:
    """LSTM.forward's hook: raise AnomalyError at the first non-finite pre-activation, c_t or h_t.

    scache: the forward's StackCache; x, h0, c0, lengths: its (checked) inputs, for the autopsy.
    """
    if not _enabled:
        return
    if all(_surely_finite(cache, params, pre) for (_, _, pre), cache in zip(cfg.prefixes(), scache.caches)):
        return
    from .diagnostics import autopsy
    autopsy.lstm_forward(scache, params, cfg, x, h0, c0, lengths)


def check_lstm_backward(scache, params, cfg, dy, dh_n, dc_n, grads, dx, dh0, dc0) -> None:
    """LSTM.backward's hook: raise AnomalyError at the first non-finite δa (per step), parameter
    gradient or input gradient, in the order backward computes them (top layer first, t = T-1 down)."""
    if not _enabled:
        return
    if all(np.isfinite(a).all() for a in (dx, dh0, dc0, *grads.values())):
        return
    from .diagnostics import autopsy
    autopsy.lstm_backward(scache, params, cfg, dy, dh_n, dc_n, grads, dx, dh0, dc0)


def check_gru_forward(scache, params, cfg, run) -> None:
    """GRU.forward's hook: raise AnomalyError at the first non-finite pre-activation, hn_t or h_t.

    scache: the forward's StackCache; run: gru.gru_forward, which the autopsy reruns on each layer's
    cached input (the GRU passes its core in: this module cannot import it back).
    """
    if not _enabled:
        return
    if all(_gru_surely_finite(cache, params, pre) for (_, _, pre), cache in zip(cfg.prefixes(), scache.caches)):
        return
    from .diagnostics import autopsy
    autopsy.gru_forward(scache, params, cfg, run)


def check_gru_backward(scache, params, cfg, dy, dh_n, grads, dx, dh0, run) -> None:
    """GRU.backward's hook, as check_lstm_backward; run: gru.gru_stack_backward, for the autopsy."""
    if not _enabled:
        return
    if all(np.isfinite(a).all() for a in (dx, dh0, *grads.values())):
        return
    from .diagnostics import autopsy
    autopsy.gru_backward(scache, params, cfg, dy, dh_n, grads, dx, dh0, run)

# --- Linear, losses, optimizers ------------------------------------------------------------------

def check_linear_forward(x, W, b, y) -> None:
    """Linear.forward's hook."""
    if not _enabled:
        return
    def explain():
        notes = [_nonfinite_note("the Linear layer's W", W), _nonfinite_note("the Linear layer's b", b)]
        return ([("max |x|", _mag(x)), ("max |W|", _mag(W)), ("max |b|", _mag(b))],
                [n for n in notes if n] or [f"x W overflowed {y.dtype.name}: the inputs or weights are huge"])
    _check("the output of the Linear layer (y = x W + b)", y, "forward pass", _out_axes(y), explain)


def check_linear_backward(dy, x, W, dx, grads) -> None:
    """Linear.backward's hook."""
    if not _enabled:
        return
    def explain():
        return ([("max |dL/dy|", _mag(dy)), ("max |x|", _mag(x)), ("max |W|", _mag(W))],
                ["a sum of finite products overflowed: the gradients or weights are huge"])
    _check("dL/dy given to the Linear layer's backward", dy, "backward pass", _out_axes(dy))
    _check("the gradient of the Linear layer's W", grads["W"], "backward pass", ("row", "column"), explain)
    _check("the gradient of the Linear layer's b", grads["b"], "backward pass", ("column",), explain)
    _check("dL/dx of the Linear layer (the gradient passed back into the LSTM)", dx, "backward pass",
           _out_axes(dx, "feature"), explain)


def check_loss(name: str, loss: float, dpred, pred, target) -> None:
    """A loss's hook: the loss value and its gradient (the shells refuse non-finite predictions and targets)."""
    if not _enabled:
        return
    if np.isfinite(loss) and np.isfinite(dpred).all():
        return
    inputs, causes = [("max |prediction|", _mag(pred))], []
    if name == "mse":
        with np.errstate(all="ignore"):
            diff = np.abs(pred.astype(np.float64) - target)
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape))
        inputs += [("max |target|", _mag(target)), ("max |prediction - target|", f"{_num(diff[idx])} at {list(idx)}")]
        causes.append(_mse_overflow(diff, pred.dtype))
    else:
        causes.append("the logits are so large that the log-probabilities overflow")
    if not np.isfinite(loss):
        raise AnomalyError(f"the loss ({name})", loss, "computing the loss", {}, inputs, causes)
    _check(f"dL/d(prediction), the gradient of the {name} loss", dpred, "computing the loss", _out_axes(dpred),
           lambda: (inputs, causes))


def _mse_overflow(diff, dtype) -> str:
    """Which part of mean((prediction - target)^2) overflowed `dtype`: the difference, one square, or their sum.
    diff: |prediction - target| in float64."""
    limit, name = float(np.finfo(dtype).max), np.dtype(dtype).name
    with np.errstate(all="ignore"):
        total = float(np.sum(diff * diff))
    largest = _maxabs(diff)
    if largest > limit:
        return f"prediction - target itself overflows {name} ({_num(largest)}): the model's output has exploded"
    if largest > np.sqrt(limit):
        return (f"(prediction - target)^2 overflows {name} once |prediction - target| exceeds "
                f"{_num(np.sqrt(limit))} (here {_num(largest)}): the model's output has exploded")
    if total > limit:
        return (f"each (prediction - target)^2 fits {name} (the largest is {_num(largest ** 2)}), but their sum over "
                f"the {diff.size} entries, {_num(total)}, overflows it (largest value {_num(limit)}): "
                f"the model's output has exploded")
    return f"the loss overflowed {name}: the model's output has exploded"


def _out_axes(a, last: str = "output") -> tuple:
    """Axis names of a batch: (B, ·) many-to-one, (B, T, ·) per step."""
    return {2: ("batch index b", last), 3: ("batch index b", "time step t", last)}.get(a.ndim, ())


def check_update(optimizer: str, lr: float, key: str, p, new_p, g, exact_step) -> None:
    """Before an update is applied: its gradient, the parameter before, and the parameter after.

    exact_step: a function returning the step new_p - p computed in float64, called only on failure.
    """
    phase = f"optimizer update ({optimizer})"
    _check(f"the gradient of {key} given to {optimizer}.step", g, phase, ("index",))
    _check(f"{key} before the {optimizer} step", p, phase, ("index",),
           lambda: ((), [f"{key} was already non-finite before this update: an assignment put it there"]))
    if np.isfinite(new_p).all():
        return
    idx = _first_bad(new_p)
    with np.errstate(all="ignore"):
        step = exact_step()
    limit = np.finfo(p.dtype).max
    inputs = [("learning rate", f"{lr:g}"), (f"max |{key}| before", _mag(p)), ("max |gradient|", _mag(g)),
              ("at that entry: weight, gradient", f"{_num(p[idx])}, {_num(g[idx])}"),
              ("the step there (in float64)", _num(step[idx]))]
    raise AnomalyError(f"{key} after the {optimizer} step", new_p[idx], phase, {"index": list(idx)}, inputs,
                       [f"the step {_num(step[idx])} is beyond {p.dtype.name}'s largest value {_num(limit)}: "
                        f"the learning rate ({lr:g}) or the gradient is far too large"])


def check_grad_norm(norm: float, grads: dict) -> None:
    """clip_grad_norm's hook."""
    if not _enabled or np.isfinite(norm):
        return
    inputs = [(f"max |gradient of {k}|", _mag(g)) for k, g in grads.items()]
    raise AnomalyError("the global gradient norm sqrt(sum of g^2)", norm, "clipping the gradients", {}, inputs,
                       ["every gradient is finite, but their squares overflow: the gradients are exploding"])
