"""The autopsy of a NaN or Inf in the LSTM or the GRU: which quantity went non-finite first, where, and what fed it.

nplstm.anomaly imports this module only when one of its cheap checks fails. It never re-types the
equations: it runs the core again (stack_forward / stack_backward on the same inputs and cache; for
the GRU, gru_forward on each layer's cached input and gru_stack_backward, which the GRU hands over,
since nplstm.gru imports nplstm.anomaly), with fresh scratch arrays, asking it to record what it
computed, the pre-activations forward, the δ of each step and the gradient arriving from above
backward, and reads those.
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
    shown, overflows = _terms(terms, j, dtype, a[t, r, q, j])
    inputs.append((f"terms at unit {j}", ", ".join(shown + [f"b = {_num(bias[col])}"])))
    notes = [_nonfinite_note(pre + n, params[pre + n]) for n in ("W", "R", "b")]
    notes += [_nonfinite_note(f"{pre}p_{gate}", p) if peek else None, _nonfinite_note("x_t at this step", x_t)]
    causes = [n for n in notes if n] + overflows or [
        f"the sum of the terms overflows {dtype.name} ({_num(np.finfo(dtype).max)}): the weights or inputs are huge"]
    peephole = {I: " + c_{t-1} p_i", F: " + c_{t-1} p_f", O: " + c_t p_o"}.get(q, "") if peek else ""
    quantity = f"the pre-activation of the {GATES[q]} (a_{gate} = x_t W + h_{{t-1}} R + b{peephole})"
    raise AnomalyError(quantity, a[t, r, q, j], "forward pass", where, inputs, causes)


def _terms(terms: dict, j: int, dtype, value) -> tuple[list[str], list[str]]:
    """Each term (u, v) -> u·v of a sum at unit j, as computed in dtype, and a note for each whose exact
    (float64) value is beyond dtype's range; value: the sum as computed (nan: inf - inf happened)."""
    limit, shown, overflows = np.finfo(dtype).max, [], []
    with np.errstate(all="ignore"):
        for label, (u, v) in terms.items():
            exact = float(np.dot(u.astype(np.float64), v.astype(np.float64)))
            shown.append(f"{label} = {_num(np.dot(u, v))}")
            if np.isfinite(exact) and abs(exact) > limit:
                overflows.append(f"overflow: {label} at unit {j} is {_num(exact)} in exact arithmetic, beyond "
                                 f"{np.dtype(dtype).name}'s largest value {_num(limit)}, so it becomes inf"
                                 + (" (and inf - inf = nan)" if np.isnan(value) else ""))
    return shown, overflows


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
            _check_param_grads(k, d, pre, ("W", "R", "b", "p_i", "p_f", "p_o"), grads, da, cache.x1,
                               {"|h_t|": cache.h, "|c_t|": cache.c})
    _check_input_grads(dx, (("dL/dh_0, the gradient of the initial hidden state (dL/da_0 R^T)", dh0),
                            ("dL/dc_0, the gradient of the initial cell state", dc0)),
                       params, cfg, scache, lambda pre: record[pre]["da"])


def _check_param_grads(k, d, pre, names, grads, delta, x1, states: dict) -> None:
    """The gradients of one layer's and direction's parameters, once its δ is known finite: a non-finite
    one is a sum of finite products that overflowed. states: {"|h_t|": array, ...}, shown beside max |x_t|."""
    def explain():
        return ([("max |dL/da| (all steps)", _mag(delta)),
                 (", ".join(["max |x_t|", *states]), ", ".join([_mag(x1[..., :-1]), *map(_mag, states.values())]))],
                [f"a sum of {x1.shape[0] * x1.shape[1]} finite products overflowed: the gradients are exploding"])
    for name in names:
        if pre + name in grads:
            _check(f"the gradient of {pre}{name} (dL/d{name}, summed over steps and rows)", grads[pre + name],
                   "backward pass", ("row", "column"), explain, {"layer": k, "direction": "reverse" if d else "forward"})


def _check_input_grads(dx, initial, params, cfg, scache, delta) -> None:
    """dL/dx, then each initial state's gradient ((name, (L·D, B, H) array) pairs). delta(prefix): that
    layer's and direction's δ, time-major (T, B, ...) in sorted rows, whose first step is shown."""
    causes = ["a sum of finite products overflowed: the gradients or weights are huge (exploding gradient)"]
    _check("dL/dx, the gradient of the input x (dL/da W^T)", dx, "backward pass",
           ("batch index b", "time step t", "feature"), lambda: ([("max |l0.W|", _mag(params["l0.W"]))], causes))
    for name, a in initial:
        if not np.isfinite(a).all():
            j, b, unit = _first_bad(a)
            k, d = divmod(j, cfg.num_directions)
            pre = cfg.prefix(k, d)
            da0 = delta(pre)[0, b if scache.order is None else int(np.flatnonzero(scache.order == b)[0])]
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
    above = dy_from_above[t, r]
    where, inputs, last_step = _step_context(k, d, pre, t, r, b, cache, above, lambda: da4[t + 1, r], params,
                                             scache, cfg, dh_n)
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
    inputs.append(_by_step(np.abs(np.where(valid[:, :, None, None], da4, 0)).max(axis=(1, 2, 3)), t, d))
    raise AnomalyError(quantity, da4[t, r, q, j], "backward pass", where, inputs, causes)


def _step_context(k, d, pre, t, r, b, cache, above, next_delta, params, scache, cfg, dh_n):
    """Where backward step t of sorted row r (caller row b) is, and what reached it: the gradient from
    above, that from the step after (next_delta(): its δ) or dh_n at the row's last step, and R.
    Returns (where, inputs, whether t is the row's last step)."""
    last_step = t + 1 >= len(cache.batch_sizes) or r >= cache.batch_sizes[t + 1]
    where = {"layer": k, "direction": "reverse" if d else "forward",
             "time step t": _caller_t(t, r, d, scache.lengths), "batch index b": b}
    later = "the final-state gradient dh_n" if last_step else "dL/da_{t+1} (the step after)"
    later_mag = _mag(dh_n[k * cfg.num_directions + d][b]) if last_step else _mag(next_delta())
    inputs = [("max |dL/dy_t| (from " + ("the loss/head" if k == cfg.num_layers - 1 else f"layer {k + 1}") + ")",
               _mag(above)), (f"max |{later}|", later_mag), (f"max |{pre}R|", _mag(params[pre + "R"]))]
    return where, inputs, last_step


def _by_step(m, t, d) -> tuple[str, str]:
    """The line "max |dL/da| by step": m (T,) per step, from the last step down to t, six of them at most."""
    shown = np.unique(np.linspace(len(m) - 1, t, 6).round().astype(int))[::-1]
    tname = "t" if d == 0 else "reverse step"
    return "max |dL/da| by step", ", ".join(f"{tname}={s}: {_num(m[s])}" for s in shown)


# --- the GRU: gates r, z and the candidate n along 3H; hn = h_{t-1} R_n + b_hn is what r scales -------------

GRU_QUANTITIES = {
    0: "the pre-activation of the reset gate (a_r = x_t W_r + h_{t-1} R_r + b_r)",
    1: "the pre-activation of the update gate (a_z = x_t W_z + h_{t-1} R_z + b_z)",
    "hn": "the recurrent part of the candidate's pre-activation (hn_t = h_{t-1} R_n + b_hn, which r_t scales)",
    2: "the pre-activation of the candidate (a_n = x_t W_n + b_in + r_t hn_t)",
    "h": "the hidden state h_t = (1 - z_t) n_t + z_t h_{t-1}"}
GRU_BLOCKS = ("reset gate", "update gate", "candidate")


def gru_forward(scache, params, cfg, run) -> None:
    """Raise AnomalyError at the first non-finite a_r, a_z, hn_t, a_n or h_t of this forward, if there is one.
    run: gru.gru_forward, rerun on each layer's and direction's cached input to record its pre-activations."""
    for (k, d, pre), cache in zip(cfg.prefixes(), scache.caches):
        a = np.zeros((3,) + cache.hn.shape, cache.x1.dtype)   # (3, T, B, H): a_r, a_z, a_n
        with np.errstate(all="ignore"):
            run(cache.x1[..., :-1], cache.h[0], *(params[pre + n] for n in ("W", "R", "b", "b_hn")),
                batch_sizes=cache.batch_sizes, a_out=a)
        _gru_forward_autopsy(k, d, pre, cache, a, params, scache)


def _gru_forward_autopsy(k, d, pre, cache, a, params, scache):
    _, T, B, H = a.shape
    valid = _valid(cache.batch_sizes, B)
    bad = {q: ~np.isfinite(a[q]).all(axis=2) & valid for q in range(3)}
    bad["hn"] = ~np.isfinite(cache.hn).all(axis=2) & valid
    bad["h"] = ~np.isfinite(cache.h[1:]).all(axis=2) & valid
    anywhere = np.logical_or.reduce(list(bad.values())).any(axis=1)      # (T,)
    if not anywhere.any():
        return                               # only in padding, which belongs to no sequence
    t = int(anywhere.argmax())
    q = next(q for q in (0, 1, "hn", 2, "h") if bad[q][t].any())   # the order a step computes them in
    r, b = _first_row(bad[q][t], scache.order)
    value = cache.hn[t, r] if q == "hn" else cache.h[t + 1, r] if q == "h" else a[q, t, r]
    j = int(np.flatnonzero(~np.isfinite(value))[0])
    where = {"layer": k, "direction": "reverse" if d else "forward",
             "time step t": _caller_t(t, r, d, scache.lengths), "batch index b": b, "hidden unit": j}
    x_t, h_prev, (r_t, z_t, n_t), hn_t = cache.x1[t, r, :-1], cache.h[t, r], cache.gates[:, t, r], cache.hn[t, r]
    if q == "h":                             # unreachable from finite gates and h_{t-1}; said plainly if it happens
        raise AnomalyError(GRU_QUANTITIES[q], value[j], "forward pass", where,
                           [("z_t, n_t, h_{t-1}", f"{_num(z_t[j])}, {_num(n_t[j])}, {_num(h_prev[j])}")], [])
    W, R, b_all, b_hn = (params[pre + n] for n in ("W", "R", "b", "b_hn"))
    dtype, block = cache.x1.dtype, 2 if q == "hn" else q
    cols = slice(block * H, (block + 1) * H)
    x_name = "x_t (the data at this step)" if k == 0 else f"x_t (the output of layer {k - 1})"
    inputs = [(f"max |{x_name}|", _mag(x_t)), ("max |h_{t-1}|", _mag(h_prev))]
    inputs += [(f"max |{pre}W| ({GRU_BLOCKS[block]} columns)", _mag(W[:, cols]))] if q != "hn" else []
    inputs.append((f"max |{pre}R| ({GRU_BLOCKS[block]} columns)", _mag(R[:, cols])))
    if q == "hn":
        terms, bias = {"h_{t-1} R_n": (h_prev, R[:, 2 * H + j])}, f"b_hn = {_num(b_hn[j])}"
        inputs.append((f"max |{pre}b_hn|", _mag(b_hn)))
    elif q == 2:
        terms = {"x_t W_n": (x_t, W[:, 2 * H + j]), "r_t hn_t": (r_t[j:j + 1], hn_t[j:j + 1])}
        bias = f"b_in = {_num(b_all[2 * H + j])}"
        inputs.append(("r_t, hn_t", f"{_num(r_t[j])}, {_num(hn_t[j])}"))
    else:
        terms = {"x_t W": (x_t, W[:, q * H + j]), "h_{t-1} R": (h_prev, R[:, q * H + j])}
        bias = f"b = {_num(b_all[q * H + j])}"
    shown, overflows = _terms(terms, j, dtype, value[j])
    inputs.append((f"terms at unit {j}", ", ".join(shown + [bias])))
    notes = [_nonfinite_note("x_t at this step", x_t)]
    causes = [n for n in notes if n] + overflows or [
        f"the sum of the terms overflows {dtype.name} ({_num(np.finfo(dtype).max)}): the weights or inputs are huge"]
    raise AnomalyError(GRU_QUANTITIES[q], value[j], "forward pass", where, inputs, causes)


def gru_backward(scache, params, cfg, dy, dh_n, grads, dx, dh0, run) -> None:
    """Raise AnomalyError at the first non-finite δ (per step), parameter gradient or input gradient, in the
    order backward computes them (top layer first, t = T-1 down). run: gru.gru_stack_backward, rerun to record."""
    record = {}
    with np.errstate(all="ignore"):
        run(dy, dh_n, scache, params, cfg, None, record)
    D = cfg.num_directions
    for k in reversed(range(cfg.num_layers)):
        for d in range(D):
            pre, cache = cfg.prefix(k, d), scache.caches[k * D + d]
            delta = record[pre]["d"]         # (4, T, B, H): δa_n, δa_r, δa_z, δhn
            if not np.isfinite(delta).all():
                _gru_backward_autopsy(k, d, pre, cache, delta, record[pre]["dy"], params, scache, cfg, dh_n)
            _check_param_grads(k, d, pre, ("W", "R", "b", "b_hn"), grads, delta, cache.x1, {"|h_t|": cache.h})
    _check_input_grads(dx, (("dL/dh_0, the gradient of the initial hidden state (dL/dh_1 z_1 + dL/da_1 R^T)", dh0),),
                       params, cfg, scache, lambda pre: record[pre]["d"].transpose(1, 2, 0, 3))


def _gru_backward_autopsy(k, d, pre, cache, delta, dy_from_above, params, scache, cfg, dh_n):
    _, T, B, H = delta.shape
    valid = _valid(cache.batch_sizes, B)
    bad = ~np.isfinite(delta) & valid[None, :, :, None]
    steps = np.flatnonzero(bad.any(axis=(0, 2, 3)))
    if not steps.size:
        return
    t = int(steps[-1])                       # backward runs t = T-1 down: the largest t comes first
    r, b = _first_row(bad[:, t].any(axis=(0, 2)), scache.order)
    blocks = bad[:, t, r].any(axis=1)        # δa_n, δa_r, δa_z, δhn
    above = dy_from_above[t, r]
    where, inputs, _ = _step_context(k, d, pre, t, r, b, cache, above, lambda: delta[:, t + 1, r], params, scache,
                                     cfg, dh_n)
    if blocks[0]:    # δa_n = δh_t (1 - z_t)(1 - n_t²), a factor in [0, 1]: δh_t itself is non-finite
        q, quantity = 0, "dL/dh_t, the gradient of the hidden state h (dL/dh_t = dL/dy_t + dL/dh_{t+1} z_{t+1} + " \
                         "dL/da_{t+1} R^T)"
        causes = ([] if np.isfinite(above).all() else ["the gradient from above is already non-finite"]) + [
            f"dL/da_{{t+1}} R^T overflowed {delta.dtype.name}: the gradient grows each step it travels back "
            f"through R (exploding gradient)"]
    elif blocks[2]:
        q, quantity = 2, "dL/da_z, the gradient of the update gate's pre-activation (dL/dh_t (h_{t-1} - n_t) z_t (1 - z_t))"
        inputs.append(("max |h_{t-1}|", _mag(cache.h[t, r])))
        causes = ["the product of dL/dh_t and a huge h_{t-1} - n_t overflowed"]
    elif blocks[1]:
        q, quantity = 1, "dL/da_r, the gradient of the reset gate's pre-activation (dL/da_n hn_t r_t (1 - r_t))"
        inputs.append(("max |hn_t| (h_{t-1} R_n + b_hn)", _mag(cache.hn[t, r])))
        causes = ["the product of dL/da_n and a huge hn_t = h_{t-1} R_n + b_hn overflowed"]
    else:
        q, quantity = 3, "dL/dhn_t, the gradient of hn_t = h_{t-1} R_n + b_hn (dL/da_n r_t)"
        causes = ["dL/da_n r_t overflowed"]
    j = int(np.flatnonzero(bad[q, t, r])[0])
    where["hidden unit"] = j
    inputs.append(_by_step(np.abs(np.where(valid[None, :, :, None], delta, 0)).max(axis=(0, 2, 3)), t, d))
    raise AnomalyError(quantity, delta[q, t, r, j], "backward pass", where, inputs, causes)
