"""The autopsy of a NaN or Inf in the LSTM: which quantity went non-finite first, where, and what fed it.

nplstm.anomaly imports this module only when one of its cheap checks fails. It never re-types the
equations: it runs the core again (stack_forward / stack_backward on the same inputs and cache,
with fresh scratch arrays) asking it to record what it computed, the pre-activations a_t forward,
δa_t and the gradient arriving from above backward, and reads those.
"""
from __future__ import annotations

import numpy as np

from ..errors import GATES, AnomalyError, _check, _first_bad, _mag, _nonfinite_note, _num
from ..lstm import F, G, I, O
from ..stack import stack_backward, stack_forward


def lstm_forward(scache, params, cfg, x, h0, c0, lengths) -> None:
    """Raise AnomalyError at the first non-finite a_t, c_t or h_t of this forward, if there is one."""
    record = {}
    stack_forward(params, x, h0, c0, lengths, cfg, None, record, scache.dropout)
    for (k, d, pre), cache in zip(cfg.prefixes(), scache.caches):
        a = record[pre]["a"]
        T, B, _ = a.shape
        _forward_autopsy(k, d, pre, cache, a.reshape(T, B, 4, -1), params, scache)


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


def lstm_backward(scache, params, cfg, dy, dh_n, dc_n, grads, dx, dh0, dc0) -> None:
    """Raise AnomalyError at the first non-finite δa (per step), parameter gradient or input gradient,
    in the order backward computes them (top layer first, t = T-1 down)."""
    record = {}
    stack_backward(dy, dh_n, dc_n, scache, params, cfg, None, record)
    D = cfg.num_directions
    for k in reversed(range(cfg.num_layers)):
        for d in range(D):
            pre = cfg.prefix(k, d)
            cache = scache.caches[k * D + d]
            da = record[pre]["da"]
            if not np.isfinite(da).all():
                _backward_autopsy(k, d, pre, cache, da, record[pre]["dy"], params, scache, cfg, dh_n)
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
            pre = cfg.prefix(k, d)
            da0 = record[pre]["da"][0, b if scache.order is None else
                                                          int(np.flatnonzero(scache.order == b)[0])]
            where = {"layer": k, "direction": "reverse" if d else "forward", "batch index b": b, "hidden unit": unit}
            raise AnomalyError(name, a[j, b, unit], "backward pass", where,
                               [("max |dL/da_0| (this row)", _mag(da0)), (f"max |{pre}R|", _mag(params[pre + "R"]))],
                               causes)


def _backward_autopsy(k, d, pre, cache, da, dy_from_above, params, scache, cfg, dh_n):
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
    above = dy_from_above[t, r]
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
