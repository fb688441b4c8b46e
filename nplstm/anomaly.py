"""Anomaly detection: stop at the first NaN or Inf and say where it came from, in the equations' words.

Off by default, and then free: layers, losses and optimizers read one module flag per call and
do nothing more. On (`with nplstm.detect_anomaly():`, `TrainConfig(detect_anomaly=True)`,
`nplstm train TASK --detect-anomaly`), each call scans what it produced with np.isfinite, whole
arrays at once. The LSTM's pre-activations are overwritten in place by the forward pass; a
bound from the largest inputs and the weights' column norms shows that none overflowed, and only
when it cannot are they recomputed, all steps in one GEMM, from the cached inputs and states.
When a check fails, an autopsy finds the earliest (step, row, unit), names the first non-finite
quantity of that step and shows the numbers that fed it.

The flag is process-wide (like a NumPy error state), not per thread.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .lstm import F, G, I, O

_enabled = False
GATES = ("input gate", "forget gate", "cell input g", "output gate")  # the gate order i, f, g, o


def is_enabled() -> bool:
    """True inside detect_anomaly()."""
    return _enabled


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True):
    """Within this block (or function, as a decorator), the first NaN or Inf raises AnomalyError.

    Covers LSTM, Linear and Model forward and backward, mse and softmax_cross_entropy, the
    optimizers' step and clip_grad_norm (the shells; lstm_forward and stack_forward called
    directly are not checked). `enabled=False` switches detection off inside the block.
    """
    global _enabled
    before, _enabled = _enabled, bool(enabled)
    try:
        # NumPy's overflow and invalid-value warnings would come before the report and say less
        with np.errstate(over="ignore", invalid="ignore", divide="ignore") if enabled else contextlib.nullcontext():
            yield
    finally:
        _enabled = before


class AnomalyError(ArithmeticError):
    """The first NaN or Inf of a computation: what, where, the numbers that fed it and likely causes.

    An ArithmeticError, like FloatingPointError and OverflowError: the inputs were well-formed and
    the arithmetic went out of range, so code that catches ValueError for malformed input does not
    swallow a diverging run. str() is the full multi-line report.
    """

    def __init__(self, quantity: str, value, phase: str, where: dict | None = None,
                 inputs=(), causes=()):
        super().__init__(quantity)
        self.quantity, self.value, self.phase = quantity, value, phase
        self.where = dict(where or {})        # "layer": 0, "time step t": 3, ... (caller's indices)
        self.inputs = list(inputs)            # (label, text) lines: what went into the quantity
        self.causes = list(causes)            # likely causes, most specific first
        self.training: list[str] = []         # the trainer's context (add_training_context)

    def add_training_context(self, *, update: int, lr: float, optimizer: str, clip: float | None,
                             grad_norms: list, params: dict, evaluating: bool = False) -> None:
        """Add the run's state: update number, lr, recent gradient norms (before clipping), weight sizes."""
        when = f"evaluating the test set after update {update}" if evaluating else f"update {update}"
        self.where = {"training": when, **self.where}
        norms = [float(n) for n in grad_norms]
        clipping = "no clipping (clip=None)" if clip is None else f"gradient norm clipped to {clip:g}"
        self.training = [f"learning rate {lr:g} ({optimizer}), {clipping}"]
        if norms:
            self.training.append(f"gradient norm before clipping, last {len(norms)} updates (oldest first): "
                                 + ", ".join(_num(n) for n in norms))
        biggest = max(params, key=lambda k: np.nan_to_num(_maxabs(params[k]), nan=np.inf))
        self.training.append(f"largest weight now: max |{biggest}| = {_num(_maxabs(params[biggest]))}")
        self.causes += _training_causes(lr, optimizer, clip, norms, biggest, _maxabs(params[biggest]))
        if not self.causes:
            self.causes.append("nothing above stands out: rerun with a smaller learning rate and clipping, "
                               "and compare")

    def __str__(self) -> str:
        lines = [f"AnomalyError: {self.quantity} is {_num(self.value)}",
                 "  where: " + ", ".join([self.phase] + [_at(k, v) for k, v in self.where.items()])]
        if self.inputs:
            lines.append("  what went into it:")
            width = max(len(label) for label, _ in self.inputs)
            lines += [f"    {label:<{width}}  {text}" for label, text in self.inputs]
        if self.training:
            lines.append("  training:")
            lines += [f"    {line}" for line in self.training]
        if self.causes:
            lines.append("  likely causes:")
            lines += [f"    - {cause}" for cause in self.causes]
        return "\n".join(lines)


def _training_causes(lr, optimizer, clip, norms, biggest, biggest_value) -> list[str]:
    causes = []
    finite = [n for n in norms if np.isfinite(n) and n > 0]
    if len(finite) >= 2 and finite[-1] >= 1e3 * finite[0]:
        causes.append(f"exploding gradients: the gradient norm grew from {_num(finite[0])} to {_num(finite[-1])} "
                      f"in {len(finite) - 1} updates ({np.log10(finite[-1] / finite[0]):.0f} orders of magnitude)")
    if clip is None:
        causes.append("gradients are not clipped (clip=None): clip the global norm, e.g. TrainConfig(clip=1.0) "
                      "or --clip 1, so that one bad batch cannot throw the weights far")
    last = min(finite[-1], clip or np.inf) if finite else 0.0
    if optimizer == "SGD" and lr * last > 10:
        causes.append(f"learning rate {lr:g} too large for these gradients: the last SGD update moved the "
                      f"weights by lr x |g| = {_num(lr * last)} (weights are of order 1); try 1e-2 to 1e-1")
    elif optimizer != "SGD" and lr > 0.1:
        causes.append(f"learning rate {lr:g} too large for {optimizer}, which moves every weight by about lr per "
                      f"update; try 1e-3 to 1e-2")
    if not np.isfinite(biggest_value) or biggest_value > 1e4:
        causes.append(f"the weights are already huge or non-finite (max |{biggest}| = {_num(biggest_value)}): "
                      f"earlier updates blew them up")
    return causes


# --- small helpers ------------------------------------------------------------------------------

def _at(key: str, value) -> str:
    """'time step t=3' for a key ending in a symbol, 'layer 0' otherwise."""
    return f"{key}={value}" if len(key.rsplit(" ", 1)[-1]) == 1 else f"{key} {value}"


def _num(v) -> str:
    return f"{float(v):.3g}"


def _maxabs(a) -> float:
    """max |a| with NaN counted as NaN; 0 for an empty array."""
    a = np.asarray(a)
    return float(np.abs(a).max()) if a.size else 0.0


def _mag(a) -> str:
    """'max |a|' as text, saying how many entries are NaN or Inf."""
    a = np.asarray(a, np.float64)
    if a.size == 0:
        return "(empty)"
    bad = ~np.isfinite(a)
    text = _num(np.abs(a[~bad]).max()) if (~bad).any() else "-"
    if bad.any():
        kinds = "/".join(s for s, m in (("nan", np.isnan(a)), ("inf", np.isinf(a))) if m.any())
        text += f"  ({int(bad.sum())} of {a.size} entries are {kinds})"
    return text


def _first_bad(a) -> tuple:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])


def _nonfinite_note(name: str, a) -> str | None:
    """'l0.R is already non-finite: 1 of 256 entries, the first nan at [2, 5]', or None if finite."""
    if np.isfinite(a).all():
        return None
    idx = _first_bad(a)
    return (f"{name} is already non-finite: {int((~np.isfinite(a)).sum())} of {a.size} entries, the first "
            f"{_num(a[idx])} at {list(idx)}; an earlier update, or an assignment, put it there")


def _where(axes, idx) -> dict:
    return {axis: i for axis, i in zip(axes, idx) if axis}


def _check(quantity, a, phase, axes=(), explain=None, where=None) -> None:
    """Raise AnomalyError naming the first non-finite entry of a, if any.

    explain: a function returning (inputs, causes), called only then: a passing check costs one scan.
    """
    if np.isfinite(a).all():
        return
    idx = _first_bad(a)
    inputs, causes = explain() if explain else ((), ())
    raise AnomalyError(quantity, a[idx], phase, {**(where or {}), **_where(axes, idx)}, inputs, causes)


def check_data(name: str, a, axes=("batch index b", "time step t", "feature")) -> None:
    """Input data: NaN or Inf here is not arithmetic gone wrong but a dataset to clean."""
    if np.isfinite(a).all():
        return
    idx = _first_bad(a)
    n = int((~np.isfinite(a)).sum())
    raise AnomalyError(name, a[idx], "checking the input", _where(axes, idx), [],
                       [f"the data contains NaN or Inf ({n} of {a.size} entries, the first at index {idx}): "
                        f"clean it before training; np.argwhere(~np.isfinite(data)) lists them all"])


# --- the LSTM, forward ----------------------------------------------------------------------------

def _valid(batch_sizes, B) -> np.ndarray:
    """(T, B) True where row b is still running at step t (rows sorted longest first)."""
    return np.arange(B)[None, :] < np.asarray(batch_sizes)[:, None]


def _first_row(rows_bad, order) -> tuple[int, int]:
    """Among the bad sorted rows, the one with the smallest caller index -> (sorted row, caller row)."""
    rows = np.flatnonzero(rows_bad)
    r = int(rows[0] if order is None else rows[np.argmin(order[rows])])
    return r, (r if order is None else int(order[r]))


def _caller_t(t, r, d, lengths) -> int:
    """The reverse direction runs each sequence backwards within its own length."""
    return int(t if d == 0 else lengths[r] - 1 - t)


def _preactivations(cache, params, pre) -> np.ndarray:
    """a_t = x_t W + h_{t-1} R + b (+ peepholes) for every step at once, from the cache. (T, B, 4, H)."""
    T, B, _, H = cache.gates.shape
    W, R, b = params[pre + "W"], params[pre + "R"], params[pre + "b"]
    with np.errstate(all="ignore"):
        a = (cache.x1.reshape(T * B, -1) @ np.concatenate([W, b[None]])
             + cache.h[:-1].reshape(T * B, H) @ R).reshape(T, B, 4, H)
        if cache.peephole is not None:
            for q, c, name in ((I, cache.c[:-1], "p_i"), (F, cache.c[:-1], "p_f"), (O, cache.c[1:], "p_o")):
                p = params[pre + name]
                a[:, :, q] += c * p if cache.peephole == "diagonal" else c @ p
    if not cache.forget_gate:
        a[:, :, F] = 0.0                     # f ≡ 1: the forget block's pre-activation is never used
    return a


def _surely_finite(cache, params, pre) -> bool:
    """True if every input of the forward is finite and no pre-activation can overflow.

    |a| is at most max|x| ‖W_col‖₁ + max|h| ‖R_col‖₁ + |b| + max|c| ‖p_col‖₁, and rounding cannot
    double that; below half the dtype's largest value nothing overflows, with no GEMM to redo.
    """
    peepholes = [params[pre + n] for n in ("p_i", "p_f", "p_o")] if cache.peephole is not None else []
    W, R, b = params[pre + "W"], params[pre + "R"], params[pre + "b"]
    if not all(np.isfinite(a).all() for a in (cache.x1, cache.h, cache.c, W, R, b, *peepholes)):
        return False
    def norm1(M):                            # ‖column‖₁ of a matrix, |entry| of a vector, in float64
        return np.abs(M.astype(np.float64)).sum(axis=0) if M.ndim == 2 else np.abs(M.astype(np.float64))
    bound = _maxabs(cache.x1) * norm1(W) + _maxabs(cache.h) * norm1(R) + norm1(b)   # (4H,)
    if peepholes:
        bound = bound.reshape(4, -1)
        bound[[I, F, O]] += _maxabs(cache.c) * np.stack([norm1(p) for p in peepholes])
    return float(bound.max()) < np.finfo(cache.x1.dtype).max / 2


def check_lstm_forward(scache, params, cfg) -> None:
    """After stack_forward: raise AnomalyError at the first non-finite pre-activation, c_t or h_t."""
    for (k, d, pre), cache in zip(cfg.prefixes(), scache.caches):
        if not _surely_finite(cache, params, pre):
            _forward_autopsy(k, d, pre, cache, _preactivations(cache, params, pre), params, scache)


def _forward_autopsy(k, d, pre, cache, a, params, scache):
    T, B, _, H = a.shape
    valid = _valid(cache.batch_sizes, B)
    bad = {q: ~np.isfinite(a[:, :, q]).all(axis=2) & valid for q in range(4)}
    bad["c"] = ~np.isfinite(cache.c[1:]).all(axis=2) & valid
    bad["h"] = ~np.isfinite(cache.h[1:]).all(axis=2) & valid
    anywhere = np.logical_or.reduce(list(bad.values())).any(axis=1)      # (T,)
    if not anywhere.any():
        return                               # only in padding, which belongs to no sequence
    t = int(anywhere.argmax())
    # within a step: a_i, a_f, a_g, then c_t; a_o before c_t, or after it when o peeks at c_t
    order = [I, F, G, O, "c", "h"] if cache.peephole is None else [I, F, G, "c", O, "h"]
    q = next(q for q in order if bad[q][t].any())
    r, b = _first_row(bad[q][t], scache.order)
    where = {"layer": k, "direction": "reverse" if d else "forward",
             "time step t": _caller_t(t, r, d, scache.lengths), "batch index b": b}
    dtype = cache.x1.dtype
    x_t, h_prev, c_prev, c_t = cache.x1[t, r, :-1], cache.h[t, r], cache.c[t, r], cache.c[t + 1, r]
    x_name = "x_t (the data at this step)" if k == 0 else f"x_t (the output of layer {k - 1})"
    if q in ("c", "h"):
        value = (cache.c if q == "c" else cache.h)[t + 1, r]
        j = int(np.flatnonzero(~np.isfinite(value))[0])
        where["hidden unit"] = j
        i, f, g, o = (cache.gates[t, r, n, j] for n in range(4))
        if q == "c":
            quantity = "the cell state c_t = f_t c_{t-1} + i_t g_t"
            inputs = [("f_t, i_t, g_t", f"{_num(f)}, {_num(i)}, {_num(g)}"),
                      ("c_{t-1}", _num(c_prev[j])), ("max |c_{t-1}| (this row)", _mag(c_prev))]
            causes = [f"the cell state outgrew {dtype.name}'s range ({_num(np.finfo(dtype).max)}): "
                      + ("without a forget gate c_t adds i_t g_t at every step and never decays"
                         if not cache.forget_gate else "the forget gate stays near 1, so c_t keeps growing")]
        else:
            quantity = "the hidden state h_t = o_t tanh(c_t)"
            inputs = [("o_t", _num(o)), ("c_t", _num(c_t[j]))]
            causes = []
        raise AnomalyError(quantity, value[j], "forward pass", where, inputs, causes)
    # a pre-activation: each of its terms at the first bad unit, in the layer's dtype and in float64
    j = int(np.flatnonzero(~np.isfinite(a[t, r, q]))[0])
    where["hidden unit"] = j
    gate, cols, col = "ifgo"[q], slice(q * H, (q + 1) * H), q * H + j
    W, R, bias = params[pre + "W"], params[pre + "R"], params[pre + "b"]
    peek = cache.peephole is not None and q != G
    terms = {"x_t W": (x_t, W[:, col]), "h_{t-1} R": (h_prev, R[:, col])}
    inputs = [(f"max |{x_name}|", _mag(x_t)), ("max |h_{t-1}|", _mag(h_prev))]
    if peek:
        p = params[pre + "p_" + gate]
        c_in, c_label = (c_t, "c_t") if q == O else (c_prev, "c_{t-1}")
        diagonal = cache.peephole == "diagonal"
        terms[f"{c_label} p_{gate}"] = (c_in[j:j + 1], p[j:j + 1]) if diagonal else (c_in, p[:, j])
        inputs.append((f"max |{c_label}|", _mag(c_in)))
    inputs += [(f"max |{pre}W| ({GATES[q]} columns)", _mag(W[:, cols])),
               (f"max |{pre}R| ({GATES[q]} columns)", _mag(R[:, cols])),
               (f"max |{pre}b| ({GATES[q]} block)", _mag(bias[cols]))]
    if peek:
        inputs.append((f"max |{pre}p_{gate}|", _mag(p)))
    limit, shown, overflows = np.finfo(dtype).max, [], []
    with np.errstate(all="ignore"):
        for label, (u, v) in terms.items():
            exact = float(np.dot(u.astype(np.float64), v.astype(np.float64)))
            shown.append(f"{label} = {_num(np.dot(u, v))}")
            if np.isfinite(exact) and abs(exact) > limit:
                overflows.append(f"overflow: {label} at unit {j} is {_num(exact)} in exact arithmetic, beyond "
                                 f"{dtype.name}'s largest value {_num(limit)}, so it becomes inf"
                                 + (" (and inf - inf = nan)" if np.isnan(a[t, r, q, j]) else ""))
    inputs.append((f"terms at unit {j}", ", ".join(shown + [f"b = {_num(bias[col])}"])))
    notes = [_nonfinite_note(pre + n, params[pre + n]) for n in ("W", "R", "b")]
    notes += [_nonfinite_note(f"{pre}p_{gate}", p) if peek else None, _nonfinite_note("x_t at this step", x_t)]
    causes = [n for n in notes if n] + overflows or [
        f"the sum of the terms overflows {dtype.name} ({_num(limit)}): the weights or inputs are huge"]
    peephole = {I: " + c_{t-1} p_i", F: " + c_{t-1} p_f", O: " + c_t p_o"}.get(q, "") if peek else ""
    quantity = f"the pre-activation of the {GATES[q]} (a_{gate} = x_t W + h_{{t-1}} R + b{peephole})"
    raise AnomalyError(quantity, a[t, r, q, j], "forward pass", where, inputs, causes)


# --- the LSTM, backward ---------------------------------------------------------------------------

def check_lstm_inputs_backward(dy, dh_n, dc_n) -> None:
    """The gradients handed to LSTM.backward: from the layer above, the loss, or the next batch."""
    _check("dL/dy given to LSTM.backward (the gradient of the LSTM's outputs)", dy, "backward pass",
           ("batch index b", "time step t", "feature"))
    for name, a in (("dL/dh_n given to LSTM.backward", dh_n), ("dL/dc_n given to LSTM.backward", dc_n)):
        _check(name, a, "backward pass", ("layer·direction", "batch index b", "hidden unit"))


def check_lstm_backward(scache, workspace: dict, params, cfg, dy, dh_n, grads, dx, dh0, dc0) -> None:
    """After stack_backward: raise AnomalyError at the first non-finite dL/da (per step), parameter
    gradient or input gradient, in the order backward computes them (top layer first, t = T-1 down)."""
    D = cfg.num_directions
    for k in reversed(range(cfg.num_layers)):
        for d in range(D):
            pre = f"l{k}_reverse." if d else f"l{k}."
            cache = scache.caches[k * D + d]
            da = workspace[pre + "backward"].last("da")
            if not np.isfinite(da).all():
                _backward_autopsy(k, d, pre, cache, da, params, scache, cfg, workspace, dy, dh_n)
            def explain(da=da, cache=cache):
                return ([("max |dL/da| (all steps)", _mag(da)), ("max |x_t|, |h_t|, |c_t|",
                         f"{_mag(cache.x1[..., :-1])}, {_mag(cache.h)}, {_mag(cache.c)}")],
                        [f"a sum of {cache.x1.shape[0] * cache.x1.shape[1]} finite products overflowed: "
                         f"the gradients are exploding"])
            for name in ("W", "R", "b", "p_i", "p_f", "p_o"):
                if pre + name in grads:
                    _check(f"the gradient of {pre}{name} (dL/d{name}, summed over steps and rows)",
                           grads[pre + name], "backward pass", ("row", "column"), explain,
                           {"layer": k, "direction": "reverse" if d else "forward"})
    causes = ["a sum of finite products overflowed: the gradients or weights are huge (exploding gradient)"]
    _check("dL/dx, the gradient of the input x (dL/da W^T)", dx, "backward pass",
           ("batch index b", "time step t", "feature"), lambda: ([("max |l0.W|", _mag(params["l0.W"]))], causes))
    for name, a in (("dL/dh_0, the gradient of the initial hidden state (dL/da_0 R^T)", dh0),
                    ("dL/dc_0, the gradient of the initial cell state", dc0)):
        if not np.isfinite(a).all():
            j, b, unit = _first_bad(a)
            k, d = divmod(j, D)
            pre = f"l{k}_reverse." if d else f"l{k}."
            da0 = workspace[pre + "backward"].last("da")[0, b if scache.order is None else
                                                          int(np.flatnonzero(scache.order == b)[0])]
            where = {"layer": k, "direction": "reverse" if d else "forward", "batch index b": b, "hidden unit": unit}
            raise AnomalyError(name, a[j, b, unit], "backward pass", where,
                               [("max |dL/da_0| (this row)", _mag(da0)), (f"max |{pre}R|", _mag(params[pre + "R"]))],
                               causes)


def _grad_from_above(k, d, scache, cfg, workspace, params, dy) -> np.ndarray:
    """dL/dh_t arriving from outside the recurrence, time-major (T, B, H) in this direction's order."""
    from .stack import _flip
    H, D = cfg.hidden_size, cfg.num_directions
    if k == cfg.num_layers - 1:
        dout = (dy if scache.order is None else dy[scache.order]).transpose(1, 0, 2)
    else:                                    # dL/dx of the layer above: δa W^T, each direction in input order
        dout = 0
        for e in range(D):
            pre = f"l{k + 1}_reverse." if e else f"l{k + 1}."
            with np.errstate(all="ignore"):
                dx_e = workspace[pre + "backward"].last("da") @ params[pre + "W"].T
            dout = dout + (dx_e if e == 0 else _flip(dx_e, scache.flip))
    part = dout[..., d * H:(d + 1) * H]
    return part if d == 0 else _flip(part, scache.flip)


def _backward_autopsy(k, d, pre, cache, da, params, scache, cfg, workspace, dy, dh_n):
    T, B, H = da.shape[0], da.shape[1], da.shape[2] // 4
    da4 = da.reshape(T, B, 4, H)
    valid = _valid(cache.batch_sizes, B)
    bad = ~np.isfinite(da4) & valid[:, :, None, None]
    steps = np.flatnonzero(bad.any(axis=(1, 2, 3)))
    if not steps.size:
        return
    t = int(steps[-1])                       # backward runs t = T-1 down: the largest t comes first
    r, b = _first_row(bad[t].any(axis=(1, 2)), scache.order)
    blocks = bad[t, r].any(axis=1)
    where = {"layer": k, "direction": "reverse" if d else "forward",
             "time step t": _caller_t(t, r, d, scache.lengths), "batch index b": b}
    last_step = t + 1 >= T or r >= cache.batch_sizes[t + 1]  # t is this row's last step
    above = _grad_from_above(k, d, scache, cfg, workspace, params, dy)[t, r]
    later = "the final-state gradient dh_n" if last_step else "dL/da_{t+1} (the step after)"
    later_mag = _mag(dh_n[k * cfg.num_directions + d][b]) if last_step else _mag(da4[t + 1, r])
    R = params[pre + "R"]
    inputs = [("max |dL/dy_t| (from " + ("the loss/head" if k == cfg.num_layers - 1 else f"layer {k + 1}") + ")",
               _mag(above)), (f"max |{later}|", later_mag), (f"max |{pre}R|", _mag(R))]
    if blocks[O]:
        q = O
        quantity = "dL/dh_t, the gradient of the hidden state h (dL/dh_t = dL/dy_t + dL/da_{t+1} R^T)"
        causes = ([] if np.isfinite(above).all() else ["the gradient from above is already non-finite"]) + [
            f"dL/da_{{t+1}} R^T overflowed {da.dtype.name}: the gradient grows each step it travels back "
            f"through R (exploding gradient)"]
    elif blocks[I] or blocks[G]:
        q = G if blocks[G] else I
        quantity = "dL/dc_t, the gradient of the cell state c (dL/dc_{t-1} = dL/dc_t f_t + ...)"
        inputs.append(("f_{t+1} (carries dL/dc back one step)",
                       "1 (no forget gate)" if not cache.forget_gate else
                       (_mag(cache.gates[t + 1, r, F]) if not last_step else "-")))
        causes = [f"dL/dc accumulated beyond {da.dtype.name}'s range on its way back through time "
                  f"(exploding gradient)"]
    else:
        q = F
        quantity = "dL/da_f, the gradient of the forget gate's pre-activation (dL/dc_t c_{t-1} f_t (1 - f_t))"
        inputs.append(("max |c_{t-1}|", _mag(cache.c[t, r])))
        causes = ["the product of a huge cell state and a huge cell-state gradient overflowed"]
    j = int(np.flatnonzero(bad[t, r, q])[0])
    where["hidden unit"] = j
    m = np.abs(np.where(valid[:, :, None, None], da4, 0)).max(axis=(1, 2, 3))   # max |dL/da_t| per step
    shown = np.unique(np.linspace(T - 1, t, 6).round().astype(int))[::-1]
    tname = "t" if d == 0 else "reverse step"
    inputs.append(("max |dL/da| by step", ", ".join(f"{tname}={s}: {_num(m[s])}" for s in shown)))
    raise AnomalyError(quantity, da4[t, r, q, j], "backward pass", where, inputs, causes)


# --- Linear, losses, optimizers ------------------------------------------------------------------

def check_linear_forward(x, W, b, y) -> None:
    def explain():
        notes = [_nonfinite_note("the Linear layer's W", W), _nonfinite_note("the Linear layer's b", b)]
        return ([("max |x|", _mag(x)), ("max |W|", _mag(W)), ("max |b|", _mag(b))],
                [n for n in notes if n] or [f"x W overflowed {y.dtype.name}: the inputs or weights are huge"])
    _check("the output of the Linear layer (y = x W + b)", y, "forward pass", _out_axes(y), explain)


def check_linear_backward(dy, x, W, dx, grads) -> None:
    def explain():
        return ([("max |dL/dy|", _mag(dy)), ("max |x|", _mag(x)), ("max |W|", _mag(W))],
                ["a sum of finite products overflowed: the gradients or weights are huge"])
    _check("dL/dy given to the Linear layer's backward", dy, "backward pass", _out_axes(dy))
    _check("the gradient of the Linear layer's W", grads["W"], "backward pass", ("row", "column"), explain)
    _check("the gradient of the Linear layer's b", grads["b"], "backward pass", ("column",), explain)
    _check("dL/dx of the Linear layer (the gradient passed back into the LSTM)", dx, "backward pass",
           _out_axes(dx, "feature"), explain)


def check_loss(name: str, loss: float, dpred, pred, target) -> None:
    """After a loss: the prediction, a float target, the loss value and its gradient."""
    _check(f"the prediction given to the {name} loss", pred, "computing the loss", _out_axes(pred))
    if np.issubdtype(target.dtype, np.floating):
        check_data("the target data y", target, _out_axes(target))
    if np.isfinite(loss) and np.isfinite(dpred).all():
        return
    inputs, causes = [("max |prediction|", _mag(pred))], []
    if name == "mse":
        with np.errstate(all="ignore"):
            diff = np.abs(pred.astype(np.float64) - target)
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape))
        inputs += [("max |target|", _mag(target)), ("max |prediction - target|", f"{_num(diff[idx])} at {list(idx)}")]
        causes.append(f"(prediction - target)^2 overflows {pred.dtype.name} once |prediction - target| exceeds "
                      f"{_num(np.sqrt(np.finfo(pred.dtype).max))}: the model's output has exploded")
    else:
        causes.append("the logits are so large that the log-probabilities overflow")
    if not np.isfinite(loss):
        raise AnomalyError(f"the loss ({name})", loss, "computing the loss", {}, inputs, causes)
    _check(f"dL/d(prediction), the gradient of the {name} loss", dpred, "computing the loss", _out_axes(dpred),
           lambda: (inputs, causes))


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
    if np.isfinite(norm):
        return
    inputs = [(f"max |gradient of {k}|", _mag(g)) for k, g in grads.items()]
    raise AnomalyError("the global gradient norm sqrt(sum of g^2)", norm, "clipping the gradients", {}, inputs,
                       ["every gradient is finite, but their squares overflow: the gradients are exploding"])
