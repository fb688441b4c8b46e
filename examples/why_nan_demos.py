"""Why the question's LSTM gives NaN: one small demonstration per defect (docs/why-nan.md).

Run all:  python examples/why_nan_demos.py           one or more:  python examples/why_nan_demos.py np_dot e_h
Each demo prints its evidence, ends with a line "[name] defect: ... | fix: ...", and returns the numbers it
printed as a dict (tests/test_why_nan.py checks those). Deterministic; each takes at most a few seconds.

`SeedLayer` is the question's forward and backward with one set of weights shared by all steps, in the
question's layout (column vectors, gate index 0 input, 1 output, 2 forget, 3 cell input a), and with
switches for the five fixes of its backward. Shaped as an nplstm layer, nplstm.gradcheck checks it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import nplstm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import seed_lstm as seed                                    # noqa: E402  (the reproduction, next to this file)
from seed_lstm import CELL, FORGET, IN, OUT, Sigmoid, dSigmoid, dtanh, tanh   # noqa: E402

FIXES = ("outer", "e_h", "recurrent", "carry", "peephole")
ALL = frozenset(FIXES)
WHAT = {"outer": "np.outer instead of np.dot",
        "e_h": "e_h from the output error",
        "recurrent": "the recurrent term into h_(t-1)",
        "carry": "the carried dc_(t+1) f_(t+1)",
        "peephole": "the peephole terms in dc"}


class SeedLayer:
    """The question's LSTM and output layer, weights shared over time, backward with chosen fixes.

    params (float64): w (4, H, I), u (4, H, H), v (4, H, H) (v[CELL] unused: a has no peephole),
    b (4, H), vv (O, H), d1 (O,). forward(x=x), x (I, S) -> y (O, S), from h_0 = c_0 = 0.
    backward(dy), dy (O, S) = dL/dy (the question's e_o), fills grads, summed over t, and `per_step`
    (each step's term, (S, *shape)); it returns nothing: the question computes no dL/dx, so
    gradcheck gets x as a keyword argument and holds it fixed. fixes: a subset of FIXES;
    none gives the question's backward, all of them the correct backpropagation through time.
    """

    def __init__(self, n: int = 8, *, fixes=(), seed_: int = 0):
        rng = np.random.default_rng(seed_)
        H = I = O = n
        self.fixes = frozenset(fixes)
        self.params = {"w": rng.normal(0, 0.1, (4, H, I)), "u": rng.normal(0, 0.1, (4, H, H)),
                       "v": rng.normal(0, 0.1, (4, H, H)), "b": np.zeros((4, H)),
                       "vv": rng.normal(0, 0.1, (O, H)), "d1": np.zeros(O)}
        self.params["v"][CELL] = 0.0
        self.grads: dict[str, np.ndarray] = {}

    def forward(self, x):
        w, u, v, b, vv, d1 = (self.params[k] for k in ("w", "u", "v", "b", "vv", "d1"))
        H, S = u.shape[1], x.shape[1]
        c, h = np.zeros((H, S + 1)), np.zeros((H, S + 1))             # column 0: h_0 = c_0 = 0; h_t in column t+1
        pre = np.zeros((4, H, S))                                      # i_, o_, f_, a_ in the question's gate order
        y = np.zeros((vv.shape[0], S))
        for t in range(S):
            x_t, h_prev, c_prev = x[:, t], h[:, t], c[:, t]
            for k in (IN, FORGET):                                     # i and f peek at c_{t-1}
                pre[k, :, t] = w[k] @ x_t + u[k] @ h_prev + v[k] @ c_prev + b[k]
            pre[CELL, :, t] = w[CELL] @ x_t + u[CELL] @ h_prev + b[CELL]
            c[:, t + 1] = Sigmoid(pre[IN, :, t]) * tanh(pre[CELL, :, t]) + Sigmoid(pre[FORGET, :, t]) * c_prev
            pre[OUT, :, t] = w[OUT] @ x_t + u[OUT] @ h_prev + v[OUT] @ c[:, t + 1] + b[OUT]  # o peeks at c_t
            h[:, t + 1] = Sigmoid(pre[OUT, :, t]) * tanh(c[:, t + 1])
            y[:, t] = vv @ h[:, t + 1] + d1
        self._cache = (x, pre, c, h)
        return y

    def backward(self, dy) -> None:
        x, pre, c, h = self._cache
        w, u, v, vv = (self.params[k] for k in ("w", "u", "v", "vv"))
        fix = self.fixes
        S = x.shape[1]
        # np.dot of two 1-D vectors is their inner product, a scalar; np.outer is the (len e, len z) matrix
        grad_of = np.outer if "outer" in fix else (lambda e, z: np.full((len(e), len(z)), np.dot(e, z)))
        steps = {k: np.zeros((S, *p.shape)) for k, p in self.params.items()}
        dh_next = dc_next = 0.0                                        # dL/dh_t, dL/dc_t arriving from step t+1
        for t in range(S - 1, -1, -1):
            i, f, o = Sigmoid(pre[IN, :, t]), Sigmoid(pre[FORGET, :, t]), Sigmoid(pre[OUT, :, t])
            a = tanh(pre[CELL, :, t])
            c_prev, c_t, h_prev, h_t = c[:, t], c[:, t + 1], h[:, t], h[:, t + 1]
            e_h = vv.T @ dy[:, t] if "e_h" in fix else 1.0            # the question: e_h = 1
            e_h = e_h + dh_next
            e_c = e_h * o * dtanh(c_t)                                 # through h = o tanh(c)
            e = np.zeros((4, len(i)))
            e[OUT] = e_h * tanh(c_t) * dSigmoid(pre[OUT, :, t])
            if "peephole" in fix:                                      # o peeked at c_t
                e_c = e_c + v[OUT].T @ e[OUT]
            e_c = e_c + dc_next
            e[IN] = e_c * a * dSigmoid(pre[IN, :, t])
            e[FORGET] = e_c * c_prev * dSigmoid(pre[FORGET, :, t])
            e[CELL] = e_c * i * dtanh(pre[CELL, :, t])
            for k in range(4):
                steps["w"][t, k] = grad_of(e[k], x[:, t])
                steps["u"][t, k] = grad_of(e[k], h_prev)
                if k != CELL:
                    steps["v"][t, k] = grad_of(e[k], c_t if k == OUT else c_prev)
                steps["b"][t, k] = e[k]
            steps["vv"][t] = grad_of(dy[:, t], h_t)
            steps["d1"][t] = dy[:, t]
            dc_next = e_c * f if "carry" in fix else 0.0              # the carousel into c_{t-1}
            if "peephole" in fix:                                      # i and f peeked at c_{t-1}
                dc_next = dc_next + v[IN].T @ e[IN] + v[FORGET].T @ e[FORGET]
            dh_next = sum(u[k].T @ e[k] for k in range(4)) if "recurrent" in fix else 0.0   # a_k(t) read h_{t-1}
        self.per_step = steps
        self.grads = {k: s.sum(axis=0) for k, s in steps.items()}     # shared weights: sum over time


def data(S: int = 6, n: int = 8):
    """The reproduction's sine windows, first S steps: x, target (n, S)."""
    return seed.sine_windows(S, n)


def check(fixes, S: int = 6) -> nplstm.GradcheckReport:
    """nplstm.gradcheck of SeedLayer(fixes) on S steps of the sine windows."""
    x, _ = data(S)
    return nplstm.gradcheck(SeedLayer(fixes=fixes), x=x)


def off_by(fixes, S: int = 6) -> float:
    """|g - g_correct| / |g_correct| over the LSTM's gradients (w, u, v, b together), g_correct from the
    fully fixed backward (which passes gradcheck)."""
    x, _ = data(S)
    dy = np.random.default_rng(1).standard_normal((8, S))
    flat = []
    for f in (fixes, ALL):
        layer = SeedLayer(fixes=f)
        layer.forward(x=x)
        layer.backward(dy)
        flat.append(np.concatenate([layer.grads[k].ravel() for k in ("w", "u", "v", "b")]))
    return float(np.linalg.norm(flat[0] - flat[1]) / np.linalg.norm(flat[1]))


def _row(label, fixes) -> tuple[nplstm.GradcheckReport, float]:
    """Print and return one row of the table: the gradcheck report and off_by(fixes)."""
    report, off = check(fixes), off_by(fixes)
    print(f"  {label:<45} {report.worst:7.1e} at {report.worst_name:<13} {'OK  ' if report.ok else 'FAIL'}"
          f"  {off:8.2g}")
    return report, off


def _leave_one_out(fix) -> tuple[nplstm.GradcheckReport, nplstm.GradcheckReport]:
    """Gradcheck with every fix but `fix`, then with all: the evidence that `fix` alone is needed."""
    return _row(f"all fixed but {WHAT[fix]}", ALL - {fix})[0], _row("all five fixed", ALL)[0]


def nplstm_arrays(p: dict) -> dict:
    """SeedLayer's arrays (params or grads) under nplstm.Model's keys: gates reordered to i, f, g, o and
    matrices transposed (nplstm multiplies row vectors on the right, the question column vectors on the left)."""
    order = (IN, FORGET, CELL, OUT)
    return {"lstm.l0.W": np.concatenate([p["w"][k].T for k in order], axis=1),
            "lstm.l0.R": np.concatenate([p["u"][k].T for k in order], axis=1),
            "lstm.l0.b": np.concatenate([p["b"][k] for k in order]),
            "lstm.l0.p_i": p["v"][IN].T.copy(), "lstm.l0.p_f": p["v"][FORGET].T.copy(),
            "lstm.l0.p_o": p["v"][OUT].T.copy(), "head.W": p["vv"].T.copy(), "head.b": p["d1"].copy()}


def to_nplstm(layer: SeedLayer) -> nplstm.Model:
    """An nplstm Model with full peepholes computing the same function as `layer`."""
    H, I = layer.params["w"].shape[1:]
    model = nplstm.Model(nplstm.LSTM(I, H, peephole="full", dtype=np.float64),
                         nplstm.Linear(H, layer.params["vv"].shape[0], dtype=np.float64))
    model.load_params(nplstm_arrays(layer.params))
    return model


def seed_step_quiet(net, x, target, t, alpha=0.1, gamma=0.1):
    with np.errstate(all="ignore"):
        seed.seed_step(net, x, target, t, alpha, gamma)


def naive_tanh(x):
    """tanh written from its definition: inf / inf = nan once |x| > 709.78 (float64)."""
    return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))


def naive_dsigmoid(x):
    """σ'(x) written from its definition: 0 once the square overflows (x < -354.9 in float64), then
    inf / inf = nan once exp(-x) does (x < -709.78; in float32 -44.4 and -88.7)."""
    return np.exp(-x) / (1 + np.exp(-x)) ** 2


def sine_model(seed_: int = 0):
    """The same data for nplstm, batch-first: x, target (1, 100, 8) float32; a Model with full peepholes."""
    x, target = seed.sine_windows(100, 8)
    model = nplstm.Model(nplstm.LSTM(8, 8, peephole="full", seed=seed_), nplstm.Linear(8, 8, seed=seed_ + 1))
    return x.T[None].astype(np.float32), target.T[None].astype(np.float32), model


def run_passes(steps: int, epochs: int, *, carry: bool, gamma: float = 0.1) -> dict:
    """The reproduction's loop (alpha = 0.1), `epochs` passes of `steps` steps, until the output is NaN.

    carry=True: each pass continues from the last weight copy (what examples/seed_lstm.py does); False: each
    pass starts again from copy 0, the other literal reading of the question's loop (copies 1..S are rewritten
    from it). The state h, c wraps around in both (defect 8). Returns nan (pass, t) or None, vv (max |vv[t+1]|
    after each step of pass 0) and passes, one dict per pass: max_vv, mean_o, closed (units whose output gate
    stayed below 0.01 all pass), sum_h (min, max of sum_j h_t[j]).
    """
    x, target = seed.sine_windows(steps, 8)
    net = seed.make_net(8, steps)
    r = {"nan": None, "vv": [], "passes": []}
    for epoch in range(epochs):
        for t in range(steps):
            seed_step_quiet(net, x, target, t)
            if epoch == 0:
                r["vv"].append(float(np.abs(net.vv[t + 1]).max()))
            if np.isnan(net.y[:, t]).any():
                r["nan"] = (epoch, t)
                return r
        sum_h = net.h.sum(axis=0)
        r["passes"].append({"max_vv": float(np.abs(net.vv).max()), "mean_o": float(net.o.mean()),
                            "closed": int((net.o.max(axis=1) < 0.01).sum()),
                            "sum_h": (float(sum_h.min()), float(sum_h.max()))})
        if carry:                                               # the last copy starts the next pass
            for name in ("w", "u", "v"):
                getattr(net, name)[:, 0] = getattr(net, name)[:, steps]
            net.vv[0], net.b[:, :, 0], net.d1[:, 0] = net.vv[steps], net.b[:, :, steps], net.d1[:, steps]
    return r


# --- the demonstrations ---------------------------------------------------------------------------------

def demo_readings() -> dict:
    """When the NaN comes depends on two choices the question leaves open; the growth per step does not.

    Returns runs {(S, carry): run_passes(...)} for S in 50, 100, 200, 430 over 20 passes, growth (median,
    min, max of |vv| after a step over |vv| before it, steps 20..99 of pass 0, S = 100) and
    nan_steps (the sorted step counts at which the runs that reached NaN did), shut_from (the pass from which, S = 100
    from copy 0, some output gates stay shut) and gain (the range of the output layer's gain from then on).
    """
    print("S, the steps per pass, and where a pass starts are not in the question; "
          "20 passes of each, alpha = gamma = 0.1")
    print(f"  {'S':>4}  {'each pass from the last copy':<34}{'each pass from copy 0 (copies 1..S rewritten)'}")
    runs = {}
    for S in (50, 100, 200, 430):
        cells = []
        for carry in (True, False):
            r = runs[S, carry] = run_passes(S, 20, carry=carry)
            if r["nan"]:
                e, t = r["nan"]
                cells.append(f"NaN in pass {e}, t = {t} (step {e * S + t})")
            else:
                cells.append(f"no NaN; max |vv| {r['passes'][0]['max_vv']:.2g} after pass 0, "
                             f"{r['passes'][-1]['max_vv']:.2g} after pass 19")
        print(f"  {S:>4}  {cells[0]:<34}{cells[1]}")
    vv = np.array(runs[100, True]["vv"])                        # pass 0 is the same in both readings
    ratios = vv[20:] / vv[19:-1]
    growth = (float(np.median(ratios)), float(ratios.min()), float(ratios.max()))
    steps = sorted(r["nan"][0] * S + r["nan"][1] for (S, _), r in runs.items() if r["nan"])
    print(f"what does not depend on them: in pass 0, |vv| grows by a factor {growth[0]:.2f} per step "
          f"(steps 20..99, range {growth[1]:.2f} to {growth[2]:.2f}), and every NaN above comes "
          f"{steps[0]} to {steps[-1]} steps after the start, whichever pass that falls in")
    passes = runs[100, False]["passes"]
    first = next(k for k in range(len(passes)) if all(p["closed"] for p in passes[k:]))
    lo, hi = min(p["sum_h"][0] for p in passes[first:]), max(p["sum_h"][1] for p in passes[first:])
    gain = sorted(1 - 0.1 * (1 + v ** 2) for v in (lo, hi))
    print(f"from copy 0 (S = 100): from pass {first} on, {passes[first]['closed']} of 8 output gates stay shut "
          f"(mean o {passes[first]['mean_o']:.3f}), sum_j h_t[j] stays within {lo:.2f} to {hi:.2f}, so the output "
          f"layer's gain 1 - 0.1 (1 + (sum h)^2) stays within {gain[0]:.2f} to {gain[1]:.2f}, inside (-1, 1): "
          f"vv stops growing")
    e, t = runs[100, True]["nan"]
    print(f"[readings] defect: NaN in pass {e} (S = 100, from the last copy), none in 20 passes from copy 0 | "
          f"growth {growth[0]:.2f} per step in both")
    return {"runs": runs, "growth": growth, "nan_steps": steps, "shut_from": first, "gain": tuple(gain)}



def demo_gradcheck() -> dict:
    """The question's backward against finite differences: as written, each fix left out, all fixed; nplstm.

    Returns rows {label: (report, off_by)} in the printed order, nplstm (its LSTM's report), and the corrected
    SeedLayer against nplstm.Model: outputs_differ, agreement (of the gradients, relative).
    """
    print("nplstm.gradcheck(SeedLayer(fixes=...), x=x): 8 units, 6 steps of the sine windows, float64")
    print(f"  {'backward':<45} {'worst rel. error':<31} |dW - dW_correct| / |dW_correct| (w, u, v, b)")
    rows = [("as written (all five defects)", frozenset())]
    rows += [(f"all fixed but {WHAT[f]}", ALL - {f}) for f in FIXES] + [("all five fixed", ALL)]
    table = {label: _row(label, fixes) for label, fixes in rows}
    reports = {label: report for label, (report, _) in table.items()}
    print("\nthe corrected backward, array by array:")
    print(reports["all five fixed"])
    x, _ = data()
    lstm = nplstm.LSTM(8, 8, peephole="full", dtype=np.float64, seed=0)
    ours = nplstm.gradcheck(lstm, x.T[None].copy())
    print(f"\nnplstm.LSTM(8, 8, peephole='full'): worst rel. error {ours.worst:.1e} ({'OK' if ours.ok else 'FAIL'})")
    layer = SeedLayer(fixes=ALL)
    dy = np.random.default_rng(1).standard_normal((8, x.shape[1]))
    y = layer.forward(x=x)
    layer.backward(dy)
    model = to_nplstm(layer)
    y2 = model.forward(x.T[None].copy())
    model.backward(dy.T[None].copy())
    mine = nplstm_arrays(layer.grads)
    diff = max(float(np.abs(mine[k] - g).max() / np.abs(g).max()) for k, g in model.grads.items())
    outputs_differ = float(np.abs(y.T - y2[0]).max())
    print(f"the corrected SeedLayer against nplstm.Model (same weights): outputs differ by "
          f"{outputs_differ:.1e}, gradients by {diff:.1e} (relative)")
    worst = reports["as written (all five defects)"]
    print(f"[gradcheck] defect: as written, worst rel. error {worst.worst:.2g} ({worst.worst_name}), "
          f"each fix left out fails | fix: all five fixed {reports['all five fixed'].worst:.1e}, "
          f"nplstm {ours.worst:.1e}, agreement {diff:.1e}")
    return {"rows": table, "nplstm": ours, "outputs_differ": outputs_differ, "agreement": diff}


def demo_e_h() -> dict:
    """e_h = 1: the LSTM's gradient ignores the target, and descent drives every h_t to -1.

    Returns same (largest change of w, u, v, b's gradients with the target), moved (of vv's), mean_h (pass 0,
    pass 1), min_c, gates {i, f, o, a}, and the reports without and with the fix.
    """
    x, target = data()
    layer = SeedLayer()
    y = layer.forward(x=x)
    layer.backward(y - target)
    g1 = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(y + 5 * target)                              # a different target: -5 x the sine
    same = max(float(np.abs(layer.grads[k] - g1[k]).max()) for k in ("w", "u", "v", "b"))
    moved = float(np.abs(layer.grads["vv"] - g1["vv"]).max())
    print("the question's backward with two different targets (the sine, and -5 x the sine):")
    print(f"  LSTM weights w, u, v, b: gradients differ by at most {same:.1e}")
    print(f"  output layer vv:          gradients differ by up to {moved:.2g}")
    r = seed.train(epochs=2, gamma=0.01, log=lambda line: None)
    h0, h1 = (p["mean_h"] for p in r["epochs"])
    net = r["net"]
    print(f"e_h = 1 is the gradient of sum_t sum_j h_t[j]; descending it pushes h to -1: mean h over "
          f"pass 0 {h0:.3f}, pass 1 {h1:.3f}; min c {net.c.min():.3g}")
    gates = {g: float(getattr(net, g)[:, 50:].mean()) for g in "ifoa"}
    print("  gates over the second half of pass 1: mean i {:.3f}, f {:.3f}, o {:.3f}, a {:.3f} "
          "(so c falls by about 1 per step)".format(*gates.values()))
    without, with_ = _leave_one_out("e_h")
    print(f"[e_h] defect: gradient of w, u, v, b independent of the target (difference {same:.1e}), "
          f"mean h {h1:.3f}, leaving it out gradcheck {without.worst:.2g} | fix: e_h = vv^T e_o + "
          f"(from t+1), gradcheck {with_.worst:.1e}")
    return {"same": same, "moved": moved, "mean_h": (h0, h1), "min_c": float(net.c.min()), "gates": gates,
            "without": without, "with": with_}


def demo_recurrent() -> dict:
    """No gradient flows into h_{t-1}: dL/dh_{t-1} = sum_k u_k^T e_k(t) is missing.

    Returns the reports without and with the fix.
    """
    without, with_ = _leave_one_out("recurrent")
    print(f"[recurrent] defect: without dh_(t-1) += sum_k u_k^T e_k(t), gradcheck {without.worst:.2g} "
          f"({without.worst_name}) | fix: gradcheck {with_.worst:.1e}")
    return {"without": without, "with": with_}


def demo_carry() -> dict:
    """e_c[:, t-1] = e_c[:, t] * f[:, t] is overwritten before anything reads it: deleting it changes nothing.

    Returns identical (one pass with and without the line: same weights and outputs, bit for bit) and the reports
    without and with the fix.
    """
    x, target = seed.sine_windows(100, 8)
    runs = []
    for undo in (False, True):
        net = seed.make_net(8, 100)
        for t in range(100):
            before = net.e_c[:, t - 1].copy()
            seed_step_quiet(net, x, target, t)
            if undo:                                            # as if the line were not there
                net.e_c[:, t - 1] = before
        runs.append(net)
    identical = all(np.array_equal(getattr(runs[0], k), getattr(runs[1], k))
                    for k in ("w", "u", "v", "b", "vv", "d1", "y"))
    print(f"one pass of the reproduction, with and without the line e_c[:, t-1] = e_c[:, t] * f[:, t]: "
          f"weights and outputs bit-identical: {identical}")
    print("(at step t, e_c[:, t-1] was already used at step t-1; the value written now is read by nobody;"
          " at t = 0 it writes column -1, the last one)")
    without, with_ = _leave_one_out("carry")
    print(f"[carry] defect: the line has no effect (bit-identical: {identical}), without dc_(t-1) += "
          f"dc_t * f_t gradcheck {without.worst:.2g} | fix: gradcheck {with_.worst:.1e}")
    return {"identical": identical, "without": without, "with": with_}


def demo_peephole() -> dict:
    """The peepholes are used forward but dropped backward: dL/dc misses v_o^T e_o(t) and v_i^T e_i, v_f^T e_f (t+1).

    Returns the reports without and with the fix.
    """
    without, with_ = _leave_one_out("peephole")
    print(f"[peephole] defect: without the peephole terms in dc, gradcheck {without.worst:.2g} "
          f"({without.worst_name}) | fix: gradcheck {with_.worst:.1e}")
    return {"without": without, "with": with_}


def demo_np_dot() -> dict:
    """np.dot of two 1-D vectors is a scalar: every entry of dW gets the same number.

    Returns distinct (values in the np.dot gradient), shape_error (the ValueError's message when I != H),
    err_dot, err_outer (against finite differences), and |y - target| over 10 steps {"np.dot": [...], "np.outer": [...]}.
    """
    rng = np.random.default_rng(0)
    e, z = rng.standard_normal(8), rng.standard_normal(8)
    dW = np.zeros((8, 8))
    dW[...] = np.dot(e, z)                                      # what dw[k, t, :, :] = np.dot(e, x) does
    print(f"np.dot(e, x) with e, x of shape (8,): {float(np.dot(e, z)):.4g}, of shape {np.shape(np.dot(e, z))}")
    print(f"assigned into an (8, 8) gradient: {np.unique(dW).size} distinct value(s) among 64 entries")
    try:
        np.dot(e, z[:3])
        error = "none"
    except ValueError as err:
        error = str(err)
    print(f"with H = 8, I = 3: ValueError: {error}  (so the question's code runs only when I = H = O)")
    # finite differences of L = e . (W x) with respect to W
    W = rng.standard_normal((8, 8))
    num = np.zeros((8, 8))
    for j in range(8):
        for k in range(8):
            d = np.zeros((8, 8))
            d[j, k] = 1e-6
            num[j, k] = (e @ ((W + d) @ z) - e @ ((W - d) @ z)) / 2e-6
    err_outer = float(np.abs(np.outer(e, z) - num).max() / np.abs(num).max())
    err_dot = float(np.abs(dW - num).max() / np.abs(num).max())
    print(f"against finite differences of L = e . (W x): np.outer rel. error {err_outer:.1e}, np.dot {err_dot:.2g}")
    # why it blows up: one online step of the output layer, with h saturated at -1 as in the reproduction
    gamma, h = 0.1, -np.ones(8)
    gains = {}
    for name, grad in (("np.dot", lambda e_o: np.dot(e_o, h)), ("np.outer", lambda e_o: np.outer(e_o, h))):
        vv, d1, err = np.zeros((8, 8)), np.zeros(8), []
        y_target = seed.sine_windows(1, 8)[1][:, 0]               # the reproduction's first target
        for _ in range(10):
            e_o = vv @ h + d1 - y_target
            err.append(float(np.abs(e_o).max()))
            vv, d1 = vv - gamma * grad(e_o), d1 - gamma * e_o
        gains[name] = err
        print(f"  output layer, gamma = 0.1, h = -1: |y - target| over 10 steps with {name:<8}: "
              + " ".join(f"{v:.2g}" for v in err))
    print(f"[np_dot] defect: a scalar, {np.unique(dW).size} distinct value in dW, rel. error {err_dot:.2g}, "
          f"|y - target| after 10 steps {gains['np.dot'][-1]:.2g} | fix: np.outer rel. error {err_outer:.1e}, "
          f"|y - target| {gains['np.outer'][-1]:.2g}")
    return {"distinct": int(np.unique(dW).size), "shape_error": error, "err_dot": err_dot, "err_outer": err_outer,
            "gains": gains}


def demo_shared_weights() -> dict:
    """One matrix is used at every step, so its gradient is the sum of every step's term.

    Returns report (gradcheck of the summed gradient), last_off, biggest_off (one step's term of u against the sum,
    relative), drift (max |w[:, S] - w[:, 0]| after one pass of the reproduction) and overrun (t, message) of the
    IndexError the last step raises when the weight copies have S slots instead of S+1.
    """
    S, H = 100, 8
    print(f"the question keeps a copy per step: w, u, v of shape (4, S+1, H, H) = {4 * (S + 1) * H * H} numbers "
          f"each for S = {S}, H = {H}; shared over time, {4 * H * H}")
    x, _ = data()
    layer = SeedLayer(fixes=ALL)
    report = nplstm.gradcheck(layer, x=x)
    layer.forward(x=x)
    layer.backward(np.random.default_rng(0).standard_normal((8, x.shape[1])))   # any dy: grads = sum of per_step
    total = layer.grads["u"]
    last = layer.per_step["u"][-1]
    biggest = max(layer.per_step["u"], key=lambda g: float(np.abs(g).sum()))
    rel = lambda g: float(np.abs(g - total).max() / np.abs(total).max())   # noqa: E731
    print(f"gradient of the shared u: the sum over t passes gradcheck ({report.worst:.1e}); "
          f"the last step's term alone is off by {rel(last):.0%}, the largest single term by {rel(biggest):.0%}")
    start = seed.make_net(8, S).w[:, 0]
    r = seed.train(epochs=1, gamma=0.01, log=lambda line: None)
    drift = float(np.abs(r["net"].w[:, S] - start).max())
    print(f"in the reproduction the copies are the history of one matrix, changed at every step: after one pass "
          f"max |w[:, S] - w[:, 0]| = {drift:.3g}, for entries drawn from N(0, 0.1)")
    # the update writes copy t+1, so at t = S-1 it writes copy S: sized S like every other array, it fails
    net = seed.make_net(8, S)
    for name in ("w", "u", "v", "vv"):
        setattr(net, name, getattr(net, name)[:S] if name == "vv" else getattr(net, name)[:, :S])
    net.b, net.d1 = net.b[..., :S], net.d1[..., :S]
    x, target = seed.sine_windows(S, 8)
    try:
        for t in range(S):
            seed_step_quiet(net, x, target, t)
        overrun = None
    except IndexError as err:
        overrun = (t, str(err))
    print(f"and they need S+1 slots: w[:, t+1] at t = S-1 writes copy S; with w, u, v, b, vv, d1 of S slots, like "
          f"the other arrays, step t = {overrun[0]} raises IndexError: {overrun[1]}")
    print(f"[shared_weights] defect: {4 * (S + 1) * H * H} numbers per matrix, one step's term off by "
          f"{rel(last):.0%}, S+1 copies needed | fix: one matrix, gradients summed over t, "
          f"gradcheck {report.worst:.1e}")
    return {"report": report, "last_off": rel(last), "biggest_off": rel(biggest), "drift": drift, "overrun": overrun}


def demo_update_in_loop() -> dict:
    """Updating at every step: the fit is the optimizer chasing the target, not a model that predicts it.

    Returns the mean squared errors of the last pass in_loop (updating) and frozen, spread (how much the frozen
    output varies over t) and zero (the error of predicting 0).
    """
    x, target = seed.sine_windows(100, 8)
    r = seed.train(epochs=20, gamma=0.01, log=lambda line: None)
    net = r["net"]
    in_loop = float(np.mean((net.y - target) ** 2))
    for name in ("w", "u", "v"):                                # freeze: every copy = the last one
        getattr(net, name)[:] = getattr(net, name)[:, -1:]
    net.vv[:], net.b[:], net.d1[:] = net.vv[-1], net.b[:, :, -1:], net.d1[:, -1:]
    for t in range(100):
        seed_step_quiet(net, x, target, t, alpha=0.0, gamma=0.0)
    frozen = float(np.mean((net.y - target) ** 2))
    spread = float(net.y.std(axis=1).max())
    print("20 passes of the reproduction with gamma = 0.01 (small enough not to blow up):")
    print(f"  mean squared error during the last pass, updating at every step: {in_loop:.3f}")
    print(f"  the same pass with the final weights frozen: {frozen:.3f}; the output then varies over t by {spread:.1e}")
    zero = float(np.mean(target ** 2))
    print(f"  (predicting 0 all the time gives {zero:.3f})")
    print("online updates are not the defect (RTRL computes the gradient forward in time and can update online); "
          "the question's per-step gradient is neither BPTT's nor RTRL's, and each update writes a new copy instead "
          "of changing the one shared matrix")
    print(f"[update_in_loop] defect: error {in_loop:.3f} while updating, {frozen:.3f} frozen, output constant "
          f"({spread:.1e}) | fix: update once per sequence, after the backward pass")
    return {"in_loop": in_loop, "frozen": frozen, "spread": spread, "zero": zero}


def demo_wraparound() -> dict:
    """h[:, t-1] and c[:, t-1] at t = 0 read column -1: the state of the previous pass, never reset.

    Returns carried (max |c| in column -1 after pass 0) and growth (max |c| at the end of each of 4 passes).
    """
    r = seed.train(epochs=1, gamma=0.01, log=lambda line: None)
    carried = float(np.abs(r["net"].c[:, -1]).max())
    r = seed.train(epochs=4, gamma=0.01, log=lambda line: None)
    growth = [p["max_c"] for p in r["epochs"]]
    print(f"after pass 0, column -1 of c (read as c_(t-1) at t = 0 of pass 1) has max |c| = {carried:.3g}")
    print("max |c| at the end of each pass: " + ", ".join(f"{g:.3g}" for g in growth))
    print(f"[wraparound] defect: pass 1 starts from max |c| = {carried:.3g}, max |c| grows "
          f"{growth[-1] - growth[-2]:.3g} per pass | fix: an explicit initial state h_0 = c_0 = 0 in column 0")
    return {"carried": carried, "growth": growth}


def demo_overflow() -> dict:
    """np.exp overflows: harmless in 1 / (1 + exp(-x)), NaN in a tanh or σ' written from exp.

    Returns table {(dtype name, x): {column: value}} as printed, and nan (pass, t, array) of the reproduction's
    first NaN with a tanh from exp.
    """
    print(f"{'x':>8} {'dtype':>8} {'1/(1+exp(-x))':>15} {'exp(-x)/(1+exp(-x))**2':>24} {'tanh from exp':>15} "
          f"{'nplstm.sigmoid':>15} {'np.tanh':>8}")
    table = {}
    with np.errstate(all="ignore"):
        for dtype in (np.float32, np.float64):
            for v in (-30.0, -100.0, -400.0, -800.0):
                x = np.array([v], dtype)
                row = {"sigmoid": Sigmoid(x)[0], "dsigmoid": naive_dsigmoid(x)[0], "tanh": naive_tanh(x)[0],
                       "nplstm.sigmoid": nplstm.sigmoid(x)[0], "np.tanh": np.tanh(x)[0]}
                table[np.dtype(dtype).name, v] = {k: float(a) for k, a in row.items()}
                print(f"{v:8g} {np.dtype(dtype).name:>8} {row['sigmoid']:15.3g} {row['dsigmoid']:24.3g} "
                      f"{row['tanh']:15.3g} {row['nplstm.sigmoid']:15.3g} {row['np.tanh']:8.3g}")
    # the reproduction with a tanh written from exp: the cell state passes -710 after a few passes
    original = seed.tanh
    seed.tanh = naive_tanh
    try:
        r = seed.train(epochs=20, gamma=0.01, log=lambda line: None)
    finally:
        seed.tanh = original
    e, t, name = r["nan"]
    print(f"the reproduction (gamma = 0.01) with tanh from exp: first NaN at pass {e}, t = {t}, in {name}; "
          f"max |c| at the end of the previous pass {r['epochs'][e - 1]['max_c']:.3g}")
    print(f"[overflow] defect: tanh from exp gives nan at |x| > 710 (float64), 89 (float32); the reproduction "
          f"reaches NaN in {name} at pass {e} | fix: np.tanh and nplstm.sigmoid, finite for every finite x")
    return {"table": table, "nan": r["nan"]}


def sigmoid_where(x):
    """A relative-accurate sigmoid, as often suggested: each branch in its safe form. np.where evaluates both
    branches everywhere, so exp overflows (and warns) for |x| > 88.7 in float32."""
    return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))


def sigmoid_branchless(x):
    """exp(min(x, 0)) / (1 + exp(-|x|)): both exponentials are at most 1, so nothing overflows, and each branch's
    value is computed without cancellation: relative error of a few ulps for every x."""
    num = np.minimum(x, 0)
    np.exp(num, out=num)
    den = np.abs(x)
    np.negative(den, out=den)
    np.exp(den, out=den)
    den += 1
    num /= den
    return num


def demo_sigmoid(runs: int = 5) -> dict:
    """nplstm.sigmoid = 0.5 + 0.5 tanh(x/2): no overflow, a tiny absolute error, no relative accuracy for x << 0.

    Returns accuracy {(dtype, form): (max absolute error on [-40, 40], max relative error for x < 0, largest x
    that gives exactly 0 or None)}, at_minus_30 {dtype: value of nplstm.sigmoid(-30)} and cost {(shape, form): the
    time over nplstm.sigmoid's, one per interleaved run} (float32; `runs` runs, 0 for none).
    """
    import timeit
    forms = {"nplstm.sigmoid": nplstm.sigmoid, "np.where form": sigmoid_where,
             "exp(min(x,0))/(1+exp(-|x|))": sigmoid_branchless}
    accuracy, at_minus_30 = {}, {}
    print(f"  {'dtype':<8}{'form':<30}{'max abs error':>14}{'max rel error, x < 0':>22}  exactly 0 from")
    for dtype in (np.float32, np.float64):
        x = np.linspace(-40, 40, 80001).astype(dtype)           # steps of 1e-3
        exact = 1 / (1 + np.exp(-x.astype(np.longdouble)))     # the same x, in extended precision
        for name, f in forms.items():
            with np.errstate(all="ignore"):
                y = f(x).astype(np.longdouble)
            err = np.abs(y - exact)
            zero = x[y == 0]
            row = (float(err.max()), float((err / exact)[x < 0].max()), float(zero.max()) if zero.size else None)
            accuracy[np.dtype(dtype).name, name] = row
            print(f"  {np.dtype(dtype).name:<8}{name:<30}{row[0]:14.2g}{row[1]:22.2g}  "
                  f"{'never' if row[2] is None else f'x <= {row[2]:.2f}'}")
        at_minus_30[np.dtype(dtype).name] = float(nplstm.sigmoid(np.array([-30.0], dtype))[0])
    print(f"  sigma(-30) = 1/(1 + e^30) = {1 / (1 + np.exp(30.0)):.3g}; nplstm.sigmoid gives "
          f"{at_minus_30['float32']:.3g} in float32, {at_minus_30['float64']:.3g} in float64")
    cost = {}
    rng = np.random.default_rng(0)
    for shape in ((64, 512), (64 * 100, 512)):
        x = (4 * rng.standard_normal(shape)).astype(np.float32)  # gate pre-activations of a (B, H) or (B·T, H) block
        n = 300 if shape[0] == 64 else 5
        for _ in range(runs):                                      # interleaved: every form in every run
            t = {name: min(timeit.repeat(lambda f=f: f(x), number=n, repeat=3)) / n for name, f in forms.items()}
            for name in list(forms)[1:]:
                cost.setdefault((shape, name), []).append(t[name] / t["nplstm.sigmoid"])
        for name in list(forms)[1:]:
            if runs:
                r = cost[shape, name]
                print(f"  {str(shape):<12} float32, {name:<28} / nplstm.sigmoid: median {np.median(r):.2f} "
                      f"over {runs} interleaved runs ({', '.join(f'{v:.2f}' for v in r)})")
    a32 = accuracy["float32", "nplstm.sigmoid"]
    print(f"[sigmoid] defect: float32 absolute error {a32[0]:.2g} but 0 from x <= {a32[2]:.2f} "
          f"(relative error 1) | fix: where relative accuracy matters, a branch-safe form, at a cost")
    return {"accuracy": accuracy, "at_minus_30": at_minus_30, "cost": cost}


def demo_clipping() -> dict:
    """A fixed, too large learning rate without clipping: nplstm itself diverges, and the detector says where.

    Returns stopped (the update the AnomalyError stopped, None if none), error (its printed message), growth (of the
    gradient norm per update, median of the last 20), curvature (λ, the largest eigenvalue of the loss's curvature
    in the output layer's weights), size (max |.| of head.b, head.W, lstm.l0.R when it stopped),
    cosine (the largest between successive gradients of head.b over the last 11 updates),
    lr1 (the mse before update 200 of unclipped SGD at lr = 1) and loss (of the 200th clipped update at lr = 10).
    """
    x, target, model = sine_model()
    opt, norms, heads, stopped, error = nplstm.SGD(10.0), [], [], None, None
    try:
        with nplstm.detect_anomaly():
            for step in range(1, 201):
                loss, dpred = nplstm.mse(model.forward(x), target)
                model.backward(dpred)
                norms.append(nplstm.clip_grad_norm(model.grads, np.inf))   # the norm only: no clipping
                heads = [*heads[-10:], model.grads["head.b"].astype(np.float64)]  # the last 11 updates' gradients
                opt.step(model.params, model.grads)
    except nplstm.AnomalyError as err:
        stopped = step
        err.add_training_context(update=step, lr=opt.lr, optimizer="SGD", clip=None,
                                 grad_norms=norms[-5:], params=model.params)
        error = str(err)
        print(err)
    growth = float(np.median(np.array(norms[-20:]) / np.array(norms[-21:-1])))
    size = {k: float(np.abs(model.params[k]).max()) for k in ("head.b", "head.W", "lstm.l0.R")}
    cosine = max(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(heads, heads[1:]))
    # The loss is quadratic in the output layer's weights, with curvature (2/N) Zᵀ Z, Z = [h_t, 1] over the steps
    # and N the number of squares averaged. Along its largest eigenvalue λ, an SGD step multiplies the error by
    # 1 - lr λ: once the LSTM's features stop changing, the gradient grows by |1 - lr λ| per update.
    h = model.lstm.forward(x)[0].reshape(-1, 8).astype(np.float64)
    Z = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    lam = float(np.linalg.eigvalsh(2 / target.size * Z.T @ Z).max())
    print(f"\nthe gradient norm grew by a factor {growth:.2f} per update (median of the last 20); largest weights: "
          + ", ".join(f"|{k}| {v:.2g}" for k, v in size.items()))
    print(f"the output layer's largest curvature is λ = {lam:.3g}, so each update multiplies the error along it by "
          f"1 - lr λ = {1 - opt.lr * lam:.2f}")
    print(f"each of the last 10 gradients of head.b points opposite to the one before (cosine at most {cosine:.2f}): "
          f"each step overshoots the minimum by more than it corrects")
    x, target, model = sine_model()
    opt = nplstm.SGD(1.0)
    for step in range(1, 201):
        loss, dpred = nplstm.mse(model.forward(x), target)
        model.backward(dpred)
        opt.step(model.params, model.grads)
    small = float(loss)
    print(f"the same SGD without clipping at lr = 1: 200 updates, all finite, mse {small:.3g} before update 200 "
          f"(a step small enough for the curvature of the loss)")
    x, target, model = sine_model()
    opt = nplstm.SGD(10.0)
    with nplstm.detect_anomaly():
        for step in range(1, 201):
            loss, dpred = nplstm.mse(model.forward(x), target)
            model.backward(dpred)
            nplstm.clip_grad_norm(model.grads, 1.0)
            opt.step(model.params, model.grads)
    print(f"the same SGD(lr=10) with clip_grad_norm(grads, 1.0): 200 updates, all finite, loss {loss:.3g}")
    print("(finite, but worse than predicting 0, which gives 0.5: clipping stops the blow-up; "
          "it does not make a learning rate of 10 a good one)")
    result = "no anomaly" if stopped is None else f"AnomalyError at update {stopped}"
    print(f"[clipping] defect: SGD lr 10 without clipping: {result} | fix: clipped, 200 updates finite, "
          f"loss {loss:.3g}")
    return {"stopped": stopped, "error": error, "loss": float(loss), "growth": growth, "size": size,
            "cosine": cosine, "lr1": small, "curvature": lam}


def demo_fixed_seed_layout() -> dict:
    """The question's layout with all five fixes, its own settings (alpha = 0.1, e_o = y - T): clipping decides.

    Returns (loss, gradient norm) of the last update, unclipped (update 30) and clipped (update 300); the loss of
    update N is measured by its forward pass, before the update is applied.
    """
    x, target = seed.sine_windows(100, 8)
    print("SeedLayer(fixes=ALL): one set of weights, backward from t = S-1 to 0, one update per pass;")
    print("e_o = y - T as in the question, so the gradient is summed over 100 steps; SGD with alpha = gamma = 0.1")
    results = {}
    for clip, updates, shown in ((None, 30, (1, 2, 3, 5, 10, 20, 30)), (1.0, 300, (1, 10, 50, 100, 200, 300))):
        layer, opt, line = SeedLayer(fixes=ALL), nplstm.SGD(0.1), []
        with np.errstate(all="ignore"):
            for step in range(1, updates + 1):
                y = layer.forward(x=x)
                loss = float(np.mean((y - target) ** 2))
                layer.backward(y - target)
                norm = nplstm.clip_grad_norm(layer.grads, clip or np.inf)
                opt.step(layer.params, layer.grads)
                if step in shown:
                    line.append(f"{step}: {loss:.3g}")
        results[clip] = (loss, norm)
        print(f"  {'no clipping' if clip is None else 'clip_grad_norm 1.0':<18} mse before update " + ", ".join(line)
              + f"  (gradient norm {norm:.3g})")
    (lost, _), (kept, _) = results[None], results[1.0]
    print(f"[fixed_seed_layout] defect: correct gradients, no clipping: mse {lost:.3g} before update 30 | "
          f"fix: clipped, mse {kept:.3g} before update 300")
    return {"unclipped": results[None], "clipped": results[1.0]}


def train_adam(model, x, target, updates: int = 500, shown=()) -> float:
    """Adam(1e-2), clip_grad_norm 1.0, one update per pass; prints and returns the loss of each update in `shown`
    (measured by that update's forward pass, before the update). Returns the loss of the last update."""
    opt = nplstm.Adam(1e-2)
    for step in range(1, updates + 1):
        loss, dpred = nplstm.mse(model.forward(x), target)
        model.backward(dpred)
        nplstm.clip_grad_norm(model.grads, 1.0)
        opt.step(model.params, model.grads)
        if step in shown:
            print(f"  before update {step:3d}  mse {loss:.2e}")
    return float(loss)


def least_squares(x, target):
    """The best affine map y = x A + b in float64: x (N, I), target (N, O) -> (A, b)."""
    X = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(X, target, rcond=None)
    return coef[:-1], coef[-1]


def demo_fixed() -> dict:
    """The corrected version: nplstm, Adam and clipping, one update per pass; and what a linear map does.

    Returns the mean squared errors trained (before update 500), unseen (windows shifted by half a step),
    no_change (predicting y_t = x_t), linear (train, unseen: the least-squares affine map of x_t), and one value per
    step (I = 1): memory (trained, unseen for the LSTM) and memory_linear (train, unseen for the affine map of x_t).
    """
    x, target, model = sine_model()
    copy = float(np.mean((x - target) ** 2))                   # predict "no change": y_t = x_t
    print(f"the same 8-wide sine windows, 100 steps; predicting 'no change' (y_t = x_t) gives mse {copy:.4f}")
    print("nplstm.Model(LSTM(8, 8, peephole='full'), Linear(8, 8)), Adam(1e-2), clip_grad_norm 1.0, "
          "one update per pass:")
    loss = train_adam(model, x, target, shown=(1, 10, 50, 100, 200, 300, 400, 500))
    # the period, 25 steps, divides 100: every window of the wave at whole steps was in the training data.
    # Shifted by half a step, the wave gives windows the model has never seen.
    s = np.sin(2 * np.pi * (np.arange(108) + 0.5) / 25.0)
    xs = np.stack([s[k:k + 8] for k in range(101)], axis=1)    # (8, 101), float64
    unseen = model.forward(xs[:, :-1].T[None].astype(np.float32))
    unseen_mse = float(np.mean((unseen - xs[:, 1:].T[None]) ** 2))
    print(f"on the wave shifted by half a step (windows not in the training data): mse {unseen_mse:.2e}")
    # a linear map needs no memory here: y_t[:7] = x_t[1:], and y_t[7] = s_(t+8) = 2 cos(2 pi/25) s_(t+7) - s_(t+6)
    xw, tw = seed.sine_windows(100, 8)                          # the same windows in float64, (8, 100)
    A, b = least_squares(xw.T, tw.T)
    linear = (float(np.mean((xw.T @ A + b - tw.T) ** 2)), float(np.mean((xs[:, :-1].T @ A + b - xs[:, 1:].T) ** 2)))
    print(f"the least-squares affine map y_t = x_t A + b (float64): mse {linear[0]:.1e} on the training windows, "
          f"{linear[1]:.1e} on the shifted ones: this data needs no LSTM")
    # one value per step: s_(t+1) depends on s_t and on the phase, which only the past tells
    s1, s1u = (np.sin(2 * np.pi * (np.arange(101) + shift) / 25.0) for shift in (0.0, 0.5))
    x1, y1 = s1[None, :-1, None].astype(np.float32), s1[None, 1:, None].astype(np.float32)
    print("one value per step instead (I = 1: x_t = s_t, target s_(t+1)), "
          "nplstm.Model(LSTM(1, 8, peephole='full'), Linear(8, 1)), the same training:")
    one = nplstm.Model(nplstm.LSTM(1, 8, peephole="full", seed=0), nplstm.Linear(8, 1, seed=1))
    memory_trained = train_adam(one, x1, y1, shown=(500,))
    memory_unseen = float(np.mean((one.forward(s1u[None, :-1, None].astype(np.float32))[0, :, 0] - s1u[1:]) ** 2))
    a1, b1 = least_squares(s1[:-1, None], s1[1:, None])
    memory_linear = (float(np.mean((s1[:-1, None] @ a1 + b1 - s1[1:, None]) ** 2)),
                     float(np.mean((s1u[:-1, None] @ a1 + b1 - s1u[1:, None]) ** 2)))
    print(f"  the LSTM: mse {memory_trained:.2e}, {memory_unseen:.2e} on the shifted wave; the least-squares "
          f"affine map of x_t: {memory_linear[0]:.4f}, {memory_linear[1]:.4f} (the LSTM keeps the past in its state)")
    print(f"[fixed] defect: none | fix: mse {loss:.2e} before update 500, {unseen_mse:.2e} on unseen windows, "
          f"'no change' {copy:.4f}, linear map {linear[1]:.1e}; one value per step: LSTM {memory_unseen:.2e}, "
          f"linear map {memory_linear[1]:.4f}")
    return {"trained": loss, "unseen": unseen_mse, "no_change": copy, "linear": linear,
            "memory": (memory_trained, memory_unseen), "memory_linear": memory_linear}


DEMOS = {name[5:]: fn for name, fn in globals().items() if name.startswith("demo_")}


def main(argv=None) -> dict:
    """Run the demos named in argv (default: all), in order; return {name: what the demo returned}."""
    names = (sys.argv[1:] if argv is None else argv) or list(DEMOS)
    unknown = [n for n in names if n not in DEMOS]
    if unknown:
        raise SystemExit(f"unknown demo {unknown[0]!r}; choose from {', '.join(DEMOS)}")
    results = {}
    for name in names:
        print(f"=== {name}: {DEMOS[name].__doc__.splitlines()[0]}")
        results[name] = DEMOS[name]()
        print()
    return results


if __name__ == "__main__":
    main()
