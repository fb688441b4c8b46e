"""The question's LSTM checked with nplstm's three tools, defect by defect (docs/check-your-lstm.md).

Part 1 hands the arrays of examples/seed_lstm.py (the question's code as it is) to nplstm.compare_trace, in the
question's own layout (nplstm.layouts preset "seed"). Parts 2 and 3 take `seed_lstm` below, the same forward
and backward with one set of weights shared by all steps, and find what is wrong with its backward:
check_gradients says which gradients are wrong, compare_trace says where the first wrong number is born, and
each fix is switched on in turn. Part 4 moves its weights into nplstm and other frameworks with layouts.convert.

`seed_lstm` is written as a learner would: column vectors, the question's names (i_, f_, a_, o_ for the
pre-activations, a for the cell input g, e_* for the errors), gate index 0 input, 1 output, 2 forget, 3 cell
input. fixes: a subset of FIXES, each one defect of the question's backward repaired (docs/why-nan.md, 1 to 5;
examples/why_nan_demos.py's SeedLayer has the same switches).

Run:  python examples/check_your_lstm.py       (deterministic; a few seconds)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nplstm
from nplstm import layouts

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_lstm as seed                                   # noqa: E402  (the reproduction, next to this file)
from seed_lstm import CELL, FORGET, IN, OUT, Sigmoid, dSigmoid, dtanh, tanh   # noqa: E402

FIXES = ("e_h", "peephole", "recurrent", "carry", "outer")   # in the order compare_trace finds them
WHAT = {"e_h": "e_h = vv.T @ e_o + what step t+1 sends, not 1",
        "peephole": "e_c += v[1].T @ e_o_ (the output gate peeked at c_t)",
        "recurrent": "send sum_k u[k].T @ e_k back to h_(t-1)",
        "carry": "send e_c * f (+ v[0].T @ e_i_ + v[2].T @ e_f_) back to c_(t-1)",
        "outer": "np.outer, not np.dot, for the weight gradients"}
# the question's names -> nplstm's quantities; i, f, o, c, h have the same names in both
NAMES = {"i_": "a_i", "f_": "a_f", "a_": "a_g", "o_": "a_o", "a": "g",
         "e_h": "dh", "e_c": "dc", "e_o_": "da_o", "e_i_": "da_i", "e_f_": "da_f", "e_a_": "da_g"}


def init(n: int = 8, seed_: int = 0) -> dict:
    """One set of the question's weights: w (4, H, I), u, v (4, H, H), b (4, H), vv (O, H), d1 (O,), I = H = O = n."""
    rng = np.random.default_rng(seed_)
    return {"w": rng.normal(0, 0.1, (4, n, n)), "u": rng.normal(0, 0.1, (4, n, n)),
            "v": rng.normal(0, 0.1, (4, n, n)), "b": np.zeros((4, n)), "vv": rng.normal(0, 0.1, (n, n)),
            "d1": np.zeros(n)}


def seed_lstm(params: dict, x, target, fixes=()):
    """Forward over x (I, S), loss 1/2 sum (y - target)^2, the question's backward with `fixes` -> loss, grads, trace."""
    w, u, v, b, vv, d1 = (params[k] for k in ("w", "u", "v", "b", "vv", "d1"))
    H, S = u.shape[1], x.shape[1]
    tr = {k: np.zeros((H, S)) for k in ("i_", "f_", "a_", "o_", "i", "f", "a", "o", "c", "h")}
    y = np.zeros((vv.shape[0], S))
    zero = np.zeros(H)                                      # h and c before step 0, kept apart (defect 8)
    for t in range(S):
        h_prev, c_prev = (tr["h"][:, t - 1], tr["c"][:, t - 1]) if t else (zero, zero)
        tr["i_"][:, t] = w[IN] @ x[:, t] + u[IN] @ h_prev + v[IN] @ c_prev + b[IN]
        tr["f_"][:, t] = w[FORGET] @ x[:, t] + u[FORGET] @ h_prev + v[FORGET] @ c_prev + b[FORGET]
        tr["a_"][:, t] = w[CELL] @ x[:, t] + u[CELL] @ h_prev + b[CELL]
        tr["i"][:, t], tr["f"][:, t], tr["a"][:, t] = Sigmoid(tr["i_"][:, t]), Sigmoid(tr["f_"][:, t]), tanh(tr["a_"][:, t])
        tr["c"][:, t] = tr["i"][:, t] * tr["a"][:, t] + tr["f"][:, t] * c_prev
        tr["o_"][:, t] = w[OUT] @ x[:, t] + u[OUT] @ h_prev + v[OUT] @ tr["c"][:, t] + b[OUT]
        tr["o"][:, t] = Sigmoid(tr["o_"][:, t])
        tr["h"][:, t] = tr["o"][:, t] * tanh(tr["c"][:, t])
        y[:, t] = vv @ tr["h"][:, t] + d1
    e_o = y - target
    loss = 0.5 * float((e_o ** 2).sum())
    tr["dy"] = vv.T @ e_o                                   # (H, S): dL/dh_t through the output layer
    for k in ("e_h", "e_c", "e_o_", "e_i_", "e_f_", "e_a_"):
        tr[k] = np.zeros((H, S))
    grads = {k: np.zeros_like(p) for k, p in params.items()}
    grad_of = np.outer if "outer" in fixes else (lambda e, z: np.full((len(e), len(z)), np.dot(e, z)))
    dh_next = dc_next = zero                                # what step t+1 sends back to h_t and c_t
    for t in reversed(range(S)):                            # the backward runs from the last step down
        i, f, a, o, c = (tr[k][:, t] for k in ("i", "f", "a", "o", "c"))
        h_prev, c_prev = (tr["h"][:, t - 1], tr["c"][:, t - 1]) if t else (zero, zero)
        e_h = (tr["dy"][:, t] if "e_h" in fixes else np.ones(H)) + dh_next
        e_c = e_h * o * dtanh(c)
        e_o_ = e_h * tanh(c) * dSigmoid(tr["o_"][:, t])
        if "peephole" in fixes:
            e_c = e_c + v[OUT].T @ e_o_
        e_c = e_c + dc_next
        e_i_ = e_c * a * dSigmoid(tr["i_"][:, t])
        e_f_ = e_c * c_prev * dSigmoid(tr["f_"][:, t])
        e_a_ = e_c * i * dtanh(tr["a_"][:, t])
        for k, e in ((IN, e_i_), (OUT, e_o_), (FORGET, e_f_), (CELL, e_a_)):
            grads["w"][k] += grad_of(e, x[:, t])            # summed over t: one set of weights (defect 6)
            grads["u"][k] += grad_of(e, h_prev)
            if k != CELL:
                grads["v"][k] += grad_of(e, c if k == OUT else c_prev)
            grads["b"][k] += e
        grads["vv"] += grad_of(e_o[:, t], tr["h"][:, t])
        grads["d1"] += e_o[:, t]
        dc_next = e_c * f if "carry" in fixes else zero
        if "carry" in fixes and "peephole" in fixes:
            dc_next = dc_next + v[IN].T @ e_i_ + v[FORGET].T @ e_f_
        dh_next = sum(u[k].T @ e for k, e in ((IN, e_i_), (OUT, e_o_), (FORGET, e_f_), (CELL, e_a_))) \
            if "recurrent" in fixes else zero
        for k, value in (("e_h", e_h), ("e_c", e_c), ("e_o_", e_o_), ("e_i_", e_i_), ("e_f_", e_f_), ("e_a_", e_a_)):
            tr[k][:, t] = value
    return loss, grads, tr


def lstm_part(params: dict) -> dict:
    """The LSTM's weights of the question's params (w, u, v, b): the "seed" layout, no output layer."""
    return {k: params[k] for k in ("w", "u", "v", "b")}


def part1(steps: int = 100) -> dict:
    """compare_trace on examples/seed_lstm.py itself: its first pass, the same without updates, its second pass."""
    print("== 1. examples/seed_lstm.py as it is, against nplstm (layout 'seed') ==")
    x, target = seed.sine_windows(steps, 8)
    out = {}
    for label, alpha, passes in (("pass 0, alpha = gamma = 0.1", 0.1, 1), ("pass 0, alpha = gamma = 0", 0.0, 1),
                                 ("pass 1, alpha = gamma = 0", 0.0, 2)):
        net = seed.make_net(8, steps)
        weights = {"w": net.w[:, 0].copy(), "u": net.u[:, 0].copy(), "v": net.v[:, 0].copy(), "b": net.b[:, :, 0].copy()}
        for _ in range(passes):
            for t in range(steps):
                seed.seed_step(net, x, target, t, alpha, alpha)
        trace = {k: getattr(net, k) for k in ("i_", "f_", "a_", "o_", "i", "f", "a", "o", "c", "h")}
        r = out[label] = nplstm.compare_trace(trace, weights, x, names=NAMES, layout="seed")
        m = r.first
        print(f"{label}: " + ("all agree" if r.ok else f"first difference {m.name} ({m.quantity}) at t = {m.t}, "
                                                       f"yours {m.theirs:.4g}, nplstm {m.ours:.4g}"))
    print(out["pass 1, alpha = gamma = 0"])
    return out


def part2_and_3(n: int = 8, S: int = 6) -> list:
    """check_gradients and compare_trace on seed_lstm, switching on one fix after another."""
    print("\n== 2 and 3. seed_lstm (one set of weights): check_gradients, then compare_trace, fix by fix ==")
    x, target = seed.sine_windows(S, n)
    params = init(n)
    rounds = []
    for k in range(len(FIXES) + 1):
        fixes = FIXES[:k]
        table = k in (0, len(FIXES))                        # the first and last: a table of 64 elements per array
        check = nplstm.check_gradients(lambda p: seed_lstm(p, x, target, fixes)[:2], params,
                                       elements=64 if table else 16, print_fn=print if table else None)
        _, grads, tr = seed_lstm(params, x, target, fixes)
        trace = {name: tr[name] for name in NAMES}
        trace.update({"d" + name: grads[name] for name in ("w", "u", "v", "b")})
        r = nplstm.compare_trace(trace, lstm_part(params), x, names=NAMES, dy=tr["dy"], layout="seed")
        rounds.append((fixes, check, r))
        done = ", ".join(fixes) or "none"
        print(f"fixed: {done:<39} check_gradients wrong: {', '.join(check.wrong) or '-':<17}", end=" ")
        m = r.first
        print("compare_trace: all agree" if r.ok else f"compare_trace: first {m.name} ({m.quantity})"
              + ("" if m.t is None else f" at t = {m.t}") + f", yours {m.theirs:.4g}, nplstm {m.ours:.4g}")
        if k < len(FIXES):
            print(f"    {' and '.join(r.equation)}   ->  fix {FIXES[k]}: {WHAT[FIXES[k]]}")
    print(rounds[0][2])
    return rounds


def part4(n: int = 8, S: int = 6) -> dict:
    """The corrected code's weights in nplstm: same outputs; PyTorch and ONNX cannot hold its full peepholes."""
    print("\n== 4. layouts: the question's weights in nplstm and elsewhere ==")
    x, target = seed.sine_windows(S, n)
    params = init(n)
    _, _, tr = seed_lstm(params, x, target, FIXES)
    W = layouts.convert(lstm_part(params), "seed", "nplstm.LSTM")
    lstm = nplstm.LSTM(n, n, peephole="full", dtype=np.float64)
    lstm.params = W
    h, _ = lstm.forward(x.T[None])                        # (1, S, H): batch-first, one sequence
    diff = float(np.abs(h[0].T - tr["h"]).max())
    print(f"layouts.convert(w, u, v, b: 'seed' -> 'nplstm.LSTM'): {', '.join(f'{k} {v.shape}' for k, v in W.items())}")
    print(f"nplstm.LSTM(peephole='full') on the same x: max |h - h_seed| = {diff:.2g}")
    back = layouts.convert(W, "nplstm.LSTM", "seed")
    exact = all(np.array_equal(back[k], lstm_part(params)[k]) for k in ("w", "u", "b")) and \
        np.array_equal(back["v"][[IN, OUT, FORGET]], params["v"][[IN, OUT, FORGET]])
    print(f"and back to 'seed': the same arrays, bit for bit: {exact} (v[3], never read, comes back as 0)")
    errors = {}
    for dst in ("torch", "onnx"):
        try:
            layouts.convert(lstm_part(params), "seed", dst)
        except ValueError as err:
            errors[dst] = str(err)
            print(f"to {dst!r}: ValueError: {err}")
    return {"diff": diff, "exact": exact, "errors": errors}


def main() -> dict:
    return {"part1": part1(), "rounds": part2_and_3(), "part4": part4()}


if __name__ == "__main__":
    main()
