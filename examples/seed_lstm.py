"""The LSTM of the question this project answers, re-created to run: it reaches NaN.

The question (docs/why-nan.md) shows only the body of a time loop: forward, backward and the
weight update for one step t. This file rebuilds that structure in its own code, defects
included, so that they can be watched. It is NOT how to write an LSTM: nplstm/lstm.py is.

Kept as the question has it:
  - every weight has a copy per time step: w[gate, t] (H, I), u[gate, t] (H, H), v[gate, t] (H, H),
    b[gate, :, t] (H,), the output layer vv[t] (O, H), d1[:, t] (O,); gate index 0 input, 1 output,
    2 forget, 3 cell input a; column vectors, so a gate is w @ x + u @ h + v @ c + b
  - full peephole matrices; i and f peek at c_{t-1}, o at the new c_t; y = identity(q)
  - the backward as written: e_h = 1, e_c[t] = e_h o dtanh(c), e_c[t-1] = e_c[t] f[t],
    gradients of weight matrices taken with np.dot of two 1-D vectors
  - the update inside the time loop, from copy t to copy t+1, with learning rates alpha, gamma
  - h[:, t-1] and c[:, t-1] at t = 0, which Python reads as the LAST column
Filled in (the question leaves them out), each the obvious way:
  - arrays of zeros; weights N(0, 0.1), biases 0 (as the question says); float64 (NumPy's default)
  - Sigmoid(x) = 1 / (1 + exp(-x)): np.exp overflows for x < -709 in float64 (-88 in float32),
    with a RuntimeWarning; the result is still 0, so this one is harmless here
  - dSigmoid(x) = Sigmoid(x) (1 - Sigmoid(x)), tanh = np.tanh, dtanh(x) = 1 - tanh(x)^2
  - np.dot(e, x) with e (H,) and x (I,) runs only when H == I, so I = H = O = 8: the input x_t is
    8 consecutive values of a sine wave (period 25 steps), the target the same window one step later
  - epochs: the loop over t runs again and again; after each pass the last copy of every weight
    becomes the first (w[:, 0] = w[:, S]), otherwise a pass would start from the initial weights
    and nothing would be learnt across epochs

Run:  python examples/seed_lstm.py      (deterministic; under a second)
"""
from __future__ import annotations

import argparse
import linecache
import warnings
from types import SimpleNamespace

import numpy as np

IN, OUT, FORGET, CELL = 0, 1, 2, 3   # the question's gate order (nplstm's is i, f, g, o)


# --- activations, as a learner writes them --------------------------------------------------------

def Sigmoid(x):
    return 1 / (1 + np.exp(-x))


def dSigmoid(x):
    return Sigmoid(x) * (1 - Sigmoid(x))


def tanh(x):
    return np.tanh(x)


def dtanh(x):
    return 1 - tanh(x) ** 2


def equation(x):
    return x                                  # y = x


# --- data and arrays --------------------------------------------------------------------------------

def sine_windows(steps: int, width: int = 8, period: float = 25.0):
    """x (width, steps): x[:, t] = s_t .. s_{t+width-1} of s_k = sin(2πk/period); target = x one step later."""
    s = np.sin(2 * np.pi * np.arange(steps + width) / period)
    windows = np.stack([s[k:k + width] for k in range(steps + 1)], axis=1)   # (width, steps + 1)
    return windows[:, :-1], windows[:, 1:]


def make_net(n: int, steps: int, seed: int = 0) -> SimpleNamespace:
    """Every array of the question, I = H = O = n, S = steps; weight copies for t = 0..S."""
    rng = np.random.default_rng(seed)
    H = I = O = n
    S = steps

    def normal(*shape):
        return rng.normal(0.0, 0.1, shape)

    net = SimpleNamespace(
        w=normal(4, S + 1, H, I), u=normal(4, S + 1, H, H), v=normal(4, S + 1, H, H),
        b=np.zeros((4, H, S + 1)), vv=normal(S + 1, O, H), d1=np.zeros((O, S + 1)))
    for name in ("i_", "i", "f_", "f", "a_", "a", "o_", "o", "c", "h", "e_c", "e_i_", "e_o_", "e_f_", "e_a_"):
        setattr(net, name, np.zeros((H, S)))
    for name in ("q", "y", "e_o"):
        setattr(net, name, np.zeros((O, S)))
    for name in ("w", "u", "v", "b", "vv", "d1"):
        setattr(net, "d" + name, np.zeros_like(getattr(net, name)))
    return net


# --- one step of the question's loop body -----------------------------------------------------------

def seed_step(net: SimpleNamespace, x, target, t: int, alpha: float, gamma: float) -> None:
    """Forward, backward and update at step t, in the question's order. x, target: (n, S)."""
    n = net
    x_t, h_prev, c_prev = x[:, t], n.h[:, t - 1], n.c[:, t - 1]   # t = 0 reads column -1: the last one
    # forward
    for k, name in ((IN, "i"), (FORGET, "f")):                     # i and f peek at c_{t-1}
        pre = getattr(n, name + "_")
        pre[:, t] = n.w[k, t] @ x_t + n.u[k, t] @ h_prev + n.v[k, t] @ c_prev + n.b[k, :, t]
        getattr(n, name)[:, t] = Sigmoid(pre[:, t])
    n.a_[:, t] = n.w[CELL, t] @ x_t + n.u[CELL, t] @ h_prev + n.b[CELL, :, t]
    n.a[:, t] = tanh(n.a_[:, t])
    n.c[:, t] = n.i[:, t] * n.a[:, t] + n.f[:, t] * c_prev          # the CEC
    n.o_[:, t] = n.w[OUT, t] @ x_t + n.u[OUT, t] @ h_prev + n.v[OUT, t] @ n.c[:, t] + n.b[OUT, :, t]
    n.o[:, t] = Sigmoid(n.o_[:, t])                                 # o peeks at the new c_t
    n.h[:, t] = n.o[:, t] * tanh(n.c[:, t])
    n.q[:, t] = n.vv[t] @ n.h[:, t] + n.d1[:, t]
    n.y[:, t] = equation(n.q[:, t])
    # backward, as written in the question
    e_h = 1
    n.e_c[:, t] = e_h * n.o[:, t] * dtanh(n.c[:, t])
    n.e_c[:, t - 1] = n.e_c[:, t] * n.f[:, t]                        # step t-1 is done: nothing reads this
    n.e_o[:, t] = n.y[:, t] - target[:, t]
    n.e_i_[:, t] = n.e_c[:, t] * n.a[:, t] * dSigmoid(n.i_[:, t])
    n.e_o_[:, t] = e_h * tanh(n.c[:, t]) * dSigmoid(n.o_[:, t])
    n.e_f_[:, t] = n.e_c[:, t] * c_prev * dSigmoid(n.f_[:, t])
    n.e_a_[:, t] = n.e_c[:, t] * n.i[:, t] * dtanh(n.a_[:, t])
    for k, e in ((IN, n.e_i_), (OUT, n.e_o_), (FORGET, n.e_f_), (CELL, n.e_a_)):
        n.dw[k, t] = np.dot(e[:, t], x_t)                           # a scalar, broadcast to (H, I)
        n.du[k, t] = np.dot(e[:, t], h_prev)
        if k != CELL:
            n.dv[k, t] = np.dot(e[:, t], n.c[:, t] if k == OUT else c_prev)
        n.db[k, :, t] = e[:, t]
    n.dvv[t] = np.dot(n.e_o[:, t], n.h[:, t])
    n.dd1[:, t] = n.e_o[:, t]
    # update, inside the time loop: copy t+1 = copy t - learning rate * gradient at t
    for name in ("w", "u", "v"):
        p, g = getattr(n, name), getattr(n, "d" + name)
        p[:, t + 1] = p[:, t] - alpha * g[:, t]
    n.b[:, :, t + 1] = n.b[:, :, t] - alpha * n.db[:, :, t]
    n.vv[t + 1] = n.vv[t] - gamma * n.dvv[t]
    n.d1[:, t + 1] = n.d1[:, t] - gamma * n.dd1[:, t]


# --- the run, watched -------------------------------------------------------------------------------

WATCHED = ("i_", "f_", "a_", "c", "o_", "h", "q", "y", "e_c", "e_o", "e_i_", "e_o_", "e_f_", "e_a_",
           "dw", "du", "dv", "db", "dvv", "dd1", "w", "u", "v", "b", "vv", "d1")   # in the order a step writes them


def _written_at(net, name, t):
    """What step t wrote into array `name`: column t, or copy t+1 for the weights."""
    a = getattr(net, name)
    if name in ("w", "u", "v"):
        return a[:, t + 1]
    if name in ("b", "d1"):
        return a[..., t + 1]
    if name == "vv":
        return a[t + 1]
    if name in ("dw", "du", "dv", "dvv"):
        return a[:, t] if name != "dvv" else a[t]
    return a[..., t]


def train(*, n: int = 8, steps: int = 100, epochs: int = 50, alpha: float = 0.1, gamma: float = 0.1,
          seed: int = 0, log=print) -> dict:
    """Run the question's loop for up to `epochs` passes over the sine wave, until the output y is NaN.

    Returns a dict: "warning" (epoch, t, message, source line) of NumPy's first RuntimeWarning;
    "inf", "nan" (epoch, t, array) of the first Inf and the first NaN in any array; "nan_y" (epoch, t)
    of the first NaN in the output (None where it never happened); "epochs", one dict per pass with
    the largest |y - target| (err), max |vv|, max |w, u, v, b|, max |c| and the mean of h; and the arrays, "net".
    """
    x, target = sine_windows(steps, n)
    net = make_net(n, steps, seed)
    r = {"warning": None, "inf": None, "nan": None, "nan_y": None, "epochs": []}
    for epoch in range(epochs):
        for t in range(steps):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RuntimeWarning)
                seed_step(net, x, target, t, alpha, gamma)
            if caught and r["warning"] is None:
                w = caught[0]
                r["warning"] = (epoch, t, str(w.message), linecache.getline(w.filename, w.lineno).strip())
            for name in WATCHED:
                a = _written_at(net, name, t)
                for kind, test in (("inf", np.isinf), ("nan", np.isnan)):
                    if r[kind] is None and test(a).any():
                        r[kind] = (epoch, t, name)
            if np.isnan(net.y[:, t]).any():
                r["nan_y"] = (epoch, t)
                break
        done = t + 1 if r["nan_y"] is None else t          # the steps of this pass with a finite output
        with np.errstate(all="ignore"):
            row = {"epoch": epoch, "err": float(np.abs(net.y[:, :done] - target[:, :done]).max()),
                   "max_vv": float(np.abs(net.vv).max()),
                   "max_lstm": max(float(np.abs(getattr(net, k)).max()) for k in ("w", "u", "v", "b")),
                   "max_c": float(np.abs(net.c).max()), "mean_h": float(net.h[:, :done].mean())}
        r["epochs"].append(row)
        log(f"pass {epoch:3d}  max|y - target| {row['err']:9.3g}  max|vv| {row['max_vv']:9.3g}  "
            f"max|w,u,v,b| {row['max_lstm']:6.3g}  max|c| {row['max_c']:6.3g}  mean h {row['mean_h']:6.3f}")
        if r["nan_y"]:
            break
        for name in ("w", "u", "v"):                       # the last copy starts the next pass
            getattr(net, name)[:, 0] = getattr(net, name)[:, steps]
        net.vv[0], net.b[:, :, 0], net.d1[:, 0] = net.vv[steps], net.b[:, :, steps], net.d1[:, steps]
    r["net"] = net
    return r


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="I = H = O (default 8)")
    ap.add_argument("--steps", type=int, default=100, help="time steps per pass, S (default 100)")
    ap.add_argument("--epochs", type=int, default=50, help="passes at most (default 50)")
    ap.add_argument("--alpha", type=float, default=0.1, help="learning rate of the LSTM weights (default 0.1)")
    ap.add_argument("--gamma", type=float, default=0.1, help="learning rate of the output layer (default 0.1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"the question's LSTM: I = H = O = {args.n}, S = {args.steps} steps per pass, "
          f"alpha = {args.alpha:g}, gamma = {args.gamma:g}, seed {args.seed}")
    r = train(n=args.n, steps=args.steps, epochs=args.epochs, alpha=args.alpha, gamma=args.gamma, seed=args.seed)
    if r["warning"]:
        e, t, message, line = r["warning"]
        print(f"first RuntimeWarning: pass {e}, t = {t}: {message}\n    in: {line}")
    for kind in ("inf", "nan"):
        if r[kind]:
            e, t, name = r[kind]
            print(f"first {kind.capitalize() if kind == 'inf' else 'NaN'}: pass {e}, t = {t}, in {name}")
    if r["nan_y"]:
        print(f"the output y is NaN from pass {r['nan_y'][0]}, t = {r['nan_y'][1]}")
    else:
        print(f"no NaN in the output in {len(r['epochs'])} passes")
    return r


if __name__ == "__main__":
    main()
