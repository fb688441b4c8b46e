"""The LSTM cell written plainly, one step at a time: the equations of docs/math.md, line by line.

This is the file to read to learn how the LSTM computes and backpropagates. It has no tricks: every
gate gets its own array, every backward line names the chain-rule step it takes. The fast engine in
lstm.py (one GEMM over all steps, halved columns, workspaces) computes the same numbers, and
tests/test_reference.py holds it to this file for every variant; this file is in turn checked by
finite differences. It imports NumPy alone, so it can be read without the rest of the package.

Shapes: B batch size, I input size, H hidden size, T steps. One step takes x (B, I), h_prev and
c_prev (B, H). params: "W" (I, 4H), "R" (H, 4H), "b" (4H,), and with peepholes "p_i", "p_f", "p_o",
each (H,) for peephole="diagonal" or (H, H) for peephole="full". Gate blocks along 4H: i, f, g, o.
The sequence functions are time-major: x (T, B, I), h and c (T+1, B, H) with h[0] = h_0, c[0] = c_0.

The keyword flags pick one of the variants of Greff et al. 2017, "LSTM: A Search Space Odyssey"
(VARIANTS names them). A removed gate keeps its block in W, R and b, unused, with zero gradient;
gate_recurrence (FGR) adds "R_gates" (3H, 3H), rows [i, f, o] of step t-1, columns [a_i, a_f, a_o].
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

PEEPHOLES = ("diagonal", "full", None)
ACTIVATIONS = ("tanh", "identity")


class Variant(NamedTuple):
    """Which LSTM a step computes: by default Greff et al.'s vanilla LSTM; each flag is one change."""
    peephole: str | None = "diagonal"  # "full": (H, H) peephole matrices; None: no peepholes (NP)
    input_gate: bool = True            # False: i ≡ 1 (NIG)
    forget_gate: bool = True           # False: f ≡ 1 (NFG), as in the 1997 LSTM
    output_gate: bool = True           # False: o ≡ 1 (NOG)
    input_activation: str = "tanh"     # "identity": g = a_g (NIAF)
    output_activation: str = "tanh"    # "identity": h = o ⊙ c (NOAF)
    coupled: bool = False              # True: f = 1 - i (CIFG)
    gate_recurrence: bool = False      # True: [a_i, a_f, a_o] += [i, f, o]_{t-1} R_gates (FGR)


VANILLA = Variant()._asdict()
VARIANTS = {                           # Greff et al.'s names -> flags, each one change from vanilla
    "vanilla": VANILLA,
    "NIG": {**VANILLA, "input_gate": False},
    "NFG": {**VANILLA, "forget_gate": False},
    "NOG": {**VANILLA, "output_gate": False},
    "NIAF": {**VANILLA, "input_activation": "identity"},
    "NOAF": {**VANILLA, "output_activation": "identity"},
    "NP": {**VANILLA, "peephole": None},
    "CIFG": {**VANILLA, "coupled": True},
    "FGR": {**VANILLA, "gate_recurrence": True},
}


def variant(name: str) -> dict:
    """The flags of one of Greff et al.'s variants, by name (a key of VARIANTS) -> a new dict."""
    if name not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {name!r}")
    return dict(VARIANTS[name])


def check_variant(v: Variant) -> None:
    """Raise ValueError, naming the flag, for flags that describe no variant."""
    if v.peephole not in PEEPHOLES:
        raise ValueError(f"peephole: expected 'diagonal', 'full' or None, got {v.peephole!r}")
    for name in ("input_activation", "output_activation"):
        if getattr(v, name) not in ACTIVATIONS:
            raise ValueError(f"{name}: expected 'tanh' or 'identity', got {getattr(v, name)!r}")
    if v.coupled and not (v.input_gate and v.forget_gate):
        raise ValueError("coupled (CIFG): expected input_gate=True and forget_gate=True, "
                         f"got input_gate={v.input_gate}, forget_gate={v.forget_gate}")


def sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e^-a), any shape."""
    return 0.5 * (1 + np.tanh(0.5 * a))  # the same σ, but tanh saturates where exp(-a) would overflow


def activate(a: np.ndarray, name: str) -> np.ndarray:
    """tanh(a), or a itself for name="identity" (NIAF, NOAF); any shape."""
    return np.tanh(a) if name == "tanh" else a


def activate_backward(dy: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
    """Backprop y = activate(a, name). dy, y: any shape, the same -> da."""
    return dy * (1 - y ** 2) if name == "tanh" else dy  # tanh' = 1 - tanh²; identity' = 1


def peek(c: np.ndarray, p: np.ndarray, peephole: str) -> np.ndarray:
    """A gate's view of the cell state: c ⊙ p ("diagonal", p (H,)) or c P ("full", P (H, H)); (B, H)."""
    return c * p if peephole == "diagonal" else c @ p


def peek_backward(da: np.ndarray, c: np.ndarray, p: np.ndarray, peephole: str):
    """Backprop a_gate += peek(c, p). da, c: (B, H) -> dc (B, H), dp (H,) or (H, H)."""
    if peephole == "diagonal":
        return da * p, (da * c).sum(axis=0)  # a = c ⊙ p: da/dc = p, da/dp = c, summed over rows
    return da @ p.T, c.T @ da                # a = c P: dc = da Pᵀ, dP = cᵀ da


class StepCache(NamedTuple):
    """What lstm_step_backward needs from lstm_step_forward (all (B, H) unless marked)."""
    x: np.ndarray            # (B, I) input x_t
    h_prev: np.ndarray       # h_{t-1}
    c_prev: np.ndarray       # c_{t-1}
    gates_prev: np.ndarray | None  # (B, 3H) [i, f, o] of step t-1 with gate_recurrence, else None
    i: np.ndarray            # input gate (ones without an input gate)
    f: np.ndarray            # forget gate (ones without a forget gate, 1 - i when coupled)
    g: np.ndarray            # cell input
    o: np.ndarray            # output gate (ones without an output gate)
    c: np.ndarray            # c_t, the new cell state
    act_c: np.ndarray        # tanh(c_t), or c_t itself without an output activation (NOAF)
    params: dict             # the params of the step (the same arrays, not copies)
    variant: Variant         # the flags of the step


def lstm_step_forward(x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, params: dict, *,
                      peephole: str | None = "diagonal", input_gate: bool = True, forget_gate: bool = True,
                      output_gate: bool = True, input_activation: str = "tanh", output_activation: str = "tanh",
                      coupled: bool = False, gate_recurrence: bool = False,
                      gates_prev: np.ndarray | None = None):
    """One LSTM step. x: (B, I); h_prev, c_prev: (B, H) -> h (B, H), c (B, H), StepCache.

    The flags are those of Variant. gates_prev: (B, 3H) [i, f, o] of step t-1, read only with
    gate_recurrence (None: zeros, as before the first step).
    """
    v = Variant(peephole, input_gate, forget_gate, output_gate, input_activation, output_activation,
                coupled, gate_recurrence)
    check_variant(v)
    B, H = h_prev.shape
    a = x @ params["W"] + h_prev @ params["R"] + params["b"]  # (B, 4H) a = x W + h_prev R + b
    a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
    if gate_recurrence:                      # FGR: the gates of step t-1 feed the gates of step t
        gates_prev = np.zeros((B, 3 * H)) if gates_prev is None else gates_prev  # no gates before step 1
        a_gates = gates_prev @ params["R_gates"]  # (B, 3H) [a_i, a_f, a_o] += [i, f, o]_{t-1} R_gates
        a_i, a_f, a_o = a_i + a_gates[:, :H], a_f + a_gates[:, H:2 * H], a_o + a_gates[:, 2 * H:]
    else:
        gates_prev = None                    # nothing reads the previous gates
    if peephole is not None:                 # i and f peek at the old cell state c_{t-1}
        a_i = a_i + peek(c_prev, params["p_i"], peephole)
        a_f = a_f + peek(c_prev, params["p_f"], peephole)
    i = sigmoid(a_i) if input_gate else np.ones_like(a_i)  # input gate; NIG: i ≡ 1
    if coupled:
        f = 1 - i                            # CIFG: the cell forgets as much as it lets in
    elif forget_gate:
        f = sigmoid(a_f)                     # forget gate
    else:
        f = np.ones_like(a_f)                # NFG: f ≡ 1, as in the 1997 LSTM
    g = activate(a_g, input_activation)      # cell input: tanh(a_g); NIAF: a_g
    c = f * c_prev + i * g                   # the new cell state
    if peephole is not None:                 # o peeks at the new cell state c_t
        a_o = a_o + peek(c, params["p_o"], peephole)
    o = sigmoid(a_o) if output_gate else np.ones_like(a_o)  # output gate; NOG: o ≡ 1
    act_c = activate(c, output_activation)   # tanh(c); NOAF: c
    h = o * act_c                            # the new hidden state
    return h, c, StepCache(x, h_prev, c_prev, gates_prev, i, f, g, o, c, act_c, params, v)


def lstm_step_backward(dh: np.ndarray, dc_next: np.ndarray, cache: StepCache,
                       dgates_next: np.ndarray | None = None):
    """Backprop one step.

    dh: (B, H) everything that reaches h_t (the output's gradient plus what step t+1 sends back);
    dc_next: (B, H) what step t+1 sends back to c_t; dgates_next: (B, 3H) what step t+1 sends back
    to this step's [i, f, o] through R_gates (gate_recurrence only; None: zeros, as after the last step).
    Returns dx (B, I), dh_prev (B, H), dc_prev (B, H), then with gate_recurrence only dgates_prev
    (B, 3H), and last grads, a dict with the keys of params.
    """
    x, h_prev, c_prev, gates_prev, i, f, g, o, c, act_c, params, v = cache
    B, H = c.shape
    if dgates_next is None or not v.gate_recurrence:
        dgates_next = np.zeros((B, 3 * H))   # no later step read this step's gates
    di_next, df_next, do_next = dgates_next[:, :H], dgates_next[:, H:2 * H], dgates_next[:, 2 * H:]
    do = dh * act_c + do_next                # h = o * act(c): backprop into o (+ FGR: o fed a_{t+1})
    dact_c = dh * o                          # h = o * act(c): backprop into act(c)
    dc = dc_next + activate_backward(dact_c, act_c, v.output_activation)  # through act(c), + what t+1 sent
    if v.output_gate:
        da_o = do * o * (1 - o)              # backprop through o = σ(a_o)
    else:
        da_o = np.zeros_like(do)             # NOG: o ≡ 1 is a constant, a_o is unused
    if v.peephole is not None:               # a_o += peek(c, p_o): the output gate saw the new c too
        dc_from_o, dp_o = peek_backward(da_o, c, params["p_o"], v.peephole)
        dc = dc + dc_from_o                  # now dc holds every path into c
    df = dc * c_prev + df_next               # c = f * c_prev + i * g: backprop into f (+ FGR)
    dc_prev = dc * f                         # ... into c_prev: the carousel
    di = dc * g + di_next                    # ... into i (+ FGR: i fed a_{t+1})
    dg = dc * i                              # ... into g
    if v.coupled:
        di = di - df                         # CIFG: f = 1 - i, so what reaches f reaches i negated
    if v.input_gate:
        da_i = di * i * (1 - i)              # backprop through i = σ(a_i)
    else:
        da_i = np.zeros_like(di)             # NIG: i ≡ 1 is a constant, a_i is unused
    if v.forget_gate and not v.coupled:
        da_f = df * f * (1 - f)              # backprop through f = σ(a_f)
    else:
        da_f = np.zeros_like(df)             # f ≡ 1 or f = 1 - i: a_f is unused
    da_g = activate_backward(dg, g, v.input_activation)  # backprop through g = tanh(a_g); NIAF: ∂g/∂a_g = 1
    grads = {}
    if v.peephole is not None:               # a_i += peek(c_prev, p_i), a_f += peek(c_prev, p_f)
        dc_prev_from_i, grads["p_i"] = peek_backward(da_i, c_prev, params["p_i"], v.peephole)
        dc_prev_from_f, grads["p_f"] = peek_backward(da_f, c_prev, params["p_f"], v.peephole)
        dc_prev = dc_prev + dc_prev_from_i + dc_prev_from_f  # c_prev also reached a_i and a_f
        grads["p_o"] = dp_o
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H), blocks i, f, g, o
    dx = da @ params["W"].T                  # a = x W + h_prev R + b: backprop into x
    dh_prev = da @ params["R"].T             # ... into h_prev
    grads["W"] = x.T @ da                    # ... into W
    grads["R"] = h_prev.T @ da               # ... into R
    grads["b"] = da.sum(axis=0)              # ... into b, summed over the rows of the batch
    if not v.gate_recurrence:
        return dx, dh_prev, dc_prev, grads
    da_gates = np.concatenate([da_i, da_f, da_o], axis=1)  # (B, 3H) [a_i, a_f, a_o] += gates_prev R_gates
    dgates_prev = da_gates @ params["R_gates"].T  # backprop into the gates of step t-1
    grads["R_gates"] = gates_prev.T @ da_gates    # ... into R_gates
    return dx, dh_prev, dc_prev, dgates_prev, grads


def lstm_reference_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, params: dict, *,
                           peephole: str | None = "diagonal", input_gate: bool = True, forget_gate: bool = True,
                           output_gate: bool = True, input_activation: str = "tanh",
                           output_activation: str = "tanh", coupled: bool = False, gate_recurrence: bool = False):
    """Run lstm_step_forward over a sequence; the flags are those of Variant.

    x: (T, B, I); h0, c0: (B, H).
    Returns h (T+1, B, H) with h[1:] the outputs, c (T+1, B, H), and a list of T StepCaches.
    """
    flags = Variant(peephole, input_gate, forget_gate, output_gate, input_activation, output_activation,
                    coupled, gate_recurrence)._asdict()
    h, c, caches = [h0], [c0], []
    gates = None                             # FGR: [i, f, o] of the step before; none before step 1
    for t in range(x.shape[0]):
        h_t, c_t, cache = lstm_step_forward(x[t], h[t], c[t], params, gates_prev=gates, **flags)
        h.append(h_t)
        c.append(c_t)
        caches.append(cache)
        if gate_recurrence:                  # a removed gate's constant 1 feeds R_gates too
            gates = np.concatenate([cache.i, cache.f, cache.o], axis=1)  # (B, 3H)
    return np.stack(h), np.stack(c), caches


def lstm_reference_backward(dy: np.ndarray, dh_n: np.ndarray, dc_n: np.ndarray, caches: list):
    """Backpropagate through time with lstm_step_backward, last step first.

    dy: (T, B, H) gradient of the outputs h_1..h_T; dh_n, dc_n: (B, H) gradient of the final state.
    Returns dx (T, B, I), dh0 (B, H), dc0 (B, H) and grads summed over the steps (the weights are shared).
    """
    T = len(caches)
    dx = [None] * T
    dh_next, dc_next = dh_n, dc_n            # what reaches h_T, c_T from after the sequence
    dgates_next = None                       # FGR: what reaches the gates of step t from step t+1
    grads = {}
    for t in range(T - 1, -1, -1):
        dh = dy[t] + dh_next                 # h_t is the output y_t and feeds step t+1
        if caches[t].variant.gate_recurrence:
            dx[t], dh_next, dc_next, dgates_next, step_grads = lstm_step_backward(dh, dc_next, caches[t],
                                                                                  dgates_next)
        else:
            dx[t], dh_next, dc_next, step_grads = lstm_step_backward(dh, dc_next, caches[t])
        for name, d in step_grads.items():   # every step used the same params: add its share
            grads[name] = grads[name] + d if name in grads else d
    return np.stack(dx), dh_next, dc_next, grads
