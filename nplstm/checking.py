"""Check your own LSTM with nplstm as the answer key, without rewriting it (docs/check-your-lstm.md).

check_gradients(fn, params): your fn(params) -> (loss, grads), in your names and shapes, against central
finite differences, each wrong gradient diagnosed. compare_trace(trace, lstm, x): your intermediates of one
forward (and backward) against nplstm's from the same weights: the first that differs, and its equation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import layouts
from .lstm import lstm_backward, lstm_forward
from .variants import Variant
from .reference import lstm_reference_forward, lstm_step_backward

FLOAT64_ONLY = ("finite differences need float64: with eps ~1e-6, L(w + eps) - L(w - eps) is about 1e-6 L, "
                "below float32's resolution of about 1e-7 L, so its digits are all rounding noise")


@dataclass
class GradientRow:
    """The verdict on one array: the worst of its `checked` elements, analytic against numeric."""
    name: str
    shape: tuple
    verdict: str = "OK"          # OK, WRONG, MISSING, SHAPE, NON-FINITE or EXTRA (a key params lacks)
    checked: int = 0             # elements compared
    index: tuple | None = None   # the worst element
    analytic: float = float("nan")
    numeric: float = float("nan")
    error: float = float("nan")  # |analytic - numeric| / max(|analytic|, |numeric|) at that element
    note: str = ""               # what kind of wrong it looks like

    @property
    def ok(self) -> bool:
        """True when this array's gradient is right."""
        return self.verdict == "OK"


@dataclass
class GradientCheck:
    """check_gradients' result: one GradientRow per array (`rows`); `ok` when every one is OK."""
    rows: list = field(default_factory=list)
    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 1e-8

    @property
    def ok(self) -> bool:
        """True when every gradient is present, of the right shape, finite and equal to the numeric one."""
        return all(r.ok for r in self.rows)

    @property
    def wrong(self) -> list[str]:
        """The names of the arrays that are not OK, in params' order."""
        return [r.name for r in self.rows if not r.ok]

    def __getitem__(self, name: str) -> GradientRow:
        return {r.name: r for r in self.rows}[name]       # KeyError for an array not checked

    def __str__(self) -> str:
        table = [("array", "shape", "checked", "worst at", "analytic", "numeric", "rel. error", "verdict", "note")]
        table += [(r.name, str(r.shape), str(r.checked), "" if r.index is None else str(r.index),
                   *("" if np.isnan(v) else f"{v:.4g}" for v in (r.analytic, r.numeric, r.error)), r.verdict, r.note)
                  for r in self.rows]
        widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
        lines = [f"gradient check: central differences, eps {self.eps:g}; an element is right when "
                 f"|analytic - numeric| <= {self.atol:g} + {self.rtol:g} |numeric|"]
        lines += ["  ".join(s.rjust(w) if 1 < k < 7 else s.ljust(w) for k, (s, w) in enumerate(zip(row, widths))).rstrip()
                  for row in table]
        bad = self.wrong
        return "\n".join(lines + ["all gradients OK" if not bad else f"{len(bad)} of {len(self.rows)} wrong: {', '.join(bad)}"])


def _loss_and_grads(fn, params: dict, want_grads: bool = True):
    """fn(params), checked: (loss as a float64 scalar, grads dict)."""
    out = fn(params)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"{type(out).__name__}" + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
        raise ValueError(f"check_gradients: fn(params) must return (loss, grads), a number and a dict keyed like "
                         f"params; it returned a {got}")
    value, grads = np.asarray(out[0]), out[1]
    if value.size != 1 or value.dtype.kind not in "fiu":
        raise ValueError(f"check_gradients: the loss must be one number, got {type(out[0]).__name__} of shape "
                         f"{value.shape} and dtype {value.dtype.name}")
    if value.dtype.kind == "f" and value.dtype != np.float64:
        raise ValueError(f"check_gradients: the loss is {value.dtype.name}; {FLOAT64_ONLY} (compute it in float64)")
    if want_grads and not isinstance(grads, dict):
        raise ValueError(f"check_gradients: grads must be a dict keyed like params, got {type(grads).__name__}")
    return float(value.reshape(())), grads


def check_gradients(fn, params: dict, *, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
                    elements: int | None = None, seed: int = 0, print_fn=print) -> GradientCheck:
    """Compare the gradients of your code with central finite differences, array by array.

    fn(params) -> (loss, grads): params, a dict name -> float64 array of any shape; loss, a float64
    number; grads, a dict with the same keys and shapes. elements: check at most that many randomly
    chosen elements (seed) of each array (None: all). fn is called with private copies of the arrays,
    so yours are never changed; it must not change them either (no weight update inside the loss).
    print_fn: called with the table (None: silent). Returns a GradientCheck.
    """
    if not isinstance(params, dict) or not params:
        raise ValueError(f"check_gradients: params must be a non-empty dict name -> array, got {type(params).__name__}")
    for k, v in params.items():
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
            what = f"{v.dtype.name} array" if isinstance(v, np.ndarray) else type(v).__name__
            raise ValueError(f"check_gradients: params[{k!r}] must be a float64 numpy array, got {what}")
        if v.dtype != np.float64:
            raise ValueError(f"check_gradients: params[{k!r}] is {v.dtype.name}; {FLOAT64_ONLY} (.astype(np.float64))")
    if not (eps > 0 and (elements is None or (isinstance(elements, int) and elements >= 1))):
        raise ValueError(f"check_gradients: expected eps > 0 and elements None or an int >= 1, got {eps!r}, {elements!r}")
    work = {k: v.copy() for k, v in params.items()}
    loss, grads = _loss_and_grads(fn, work)
    if not np.isfinite(loss):
        raise ValueError(f"check_gradients: the loss is {loss} at the given params; a check needs a finite loss")
    grads = {k: np.array(g, dtype=float, copy=True) if isinstance(g, np.ndarray) or np.isscalar(g) else g
             for k, g in grads.items()}      # your code may reuse its arrays on the next call
    changed = [k for k in params if not np.array_equal(work[k], params[k], equal_nan=True)]
    if changed:
        raise ValueError(f"check_gradients: fn changed params[{changed[0]!r}]; it must compute the loss and "
                         "gradients without updating the weights (an update inside the loss function?)")
    rng = np.random.default_rng(seed)
    result = GradientCheck([_check_one(fn, work, k, a, grads.get(k), grads, elements, rng, eps, rtol, atol)
                            for k, a in work.items()], eps, rtol, atol)
    result.rows += [GradientRow(k, np.shape(g), "EXTRA", note="params has no such array (a typo in the key?)")
                    for k, g in grads.items() if k not in work]
    if print_fn is not None:
        print_fn(str(result))
    return result


def _unusable(k, a, g, grads, work) -> tuple[str, str] | None:
    """(verdict, note) when grads[k] cannot be compared with params[k] at all, else None."""
    if g is None:
        hint = [n for n in grads if n not in work and n.removeprefix("d").removeprefix("_") == k]
        return "MISSING", f"grads has {hint[0]!r}: use params' own keys" if hint else "not in grads"
    if not isinstance(g, np.ndarray):
        return "SHAPE", f"grads[{k!r}] is a {type(g).__name__}, not an array"
    if g.shape != a.shape:
        return "SHAPE", f"grads[{k!r}] has shape {g.shape}" + (" (transposed?)" if g.shape == a.shape[::-1] else "")
    if not np.isfinite(g).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0])
        return "NON-FINITE", f"{int((~np.isfinite(g)).sum())} of {g.size} elements are NaN or Inf, the first at {first}"
    return None


def _check_one(fn, work, k, a, g, grads, elements, rng, eps, rtol, atol) -> GradientRow:
    row = GradientRow(k, a.shape)
    problem = _unusable(k, a, g, grads, work)
    if problem:
        row.verdict, row.note = problem
        return row
    idx = np.arange(a.size) if elements is None or a.size <= elements else \
        np.sort(rng.choice(a.size, elements, replace=False))
    flat, numeric = a.reshape(-1), np.empty(len(idx))   # a view of the private copy
    for n, j in enumerate(idx):
        old = flat[j]
        flat[j] = old + eps
        up = _loss_and_grads(fn, work, False)[0]
        flat[j] = old - eps
        down = _loss_and_grads(fn, work, False)[0]
        flat[j] = old                        # restored exactly: the same float goes back
        numeric[n] = (up - down) / (2 * eps)  # central difference: error O(eps²) plus rounding ~1e-16 L / eps
    exact, row.checked = g.reshape(-1)[idx], len(idx)
    if not np.isfinite(numeric).all():
        row.verdict, row.note = "NON-FINITE", "the loss is not finite at params ± eps: the numeric gradient is"
        return row
    diff = np.abs(exact - numeric)
    bad = diff > atol + rtol * np.abs(numeric)
    w = int(np.argmax(diff / (atol + rtol * np.abs(numeric))))   # the worst against its tolerance
    row.index = tuple(int(i) for i in np.unravel_index(idx[w], a.shape))
    row.analytic, row.numeric = float(exact[w]), float(numeric[w])
    row.error = float(diff[w] / max(abs(exact[w]), abs(numeric[w]), np.finfo(float).tiny))
    if bad.any():
        row.verdict, row.note = "WRONG", _diagnosis(exact, numeric, bad, rtol, atol, g)
    return row


def _diagnosis(a, n, bad, rtol, atol, whole) -> str:
    """What kind of wrong the checked analytic elements a are, against numeric n (bad: out of tolerance;
    whole: the whole analytic array)."""
    m, close = int(bad.sum()), dict(rtol=max(10 * rtol, 1e-4), atol=10 * atol)
    if not a.any():
        return "all zero: never computed or never accumulated?"
    if np.allclose(a, -n, **close):
        return "sign flipped: analytic = -numeric"
    big = np.abs(n) > 1e3 * atol
    if big.any():
        r = float(np.median(a[big] / n[big]))
        if np.allclose(a, r * n, **close):
            hint = " (counted twice?)" if abs(r - 2) < 1e-3 else " (a factor 2 missing?)" if abs(r - 0.5) < 1e-3 else ""
            return f"off by a constant factor: analytic = {r:.4g} x numeric{hint}"
    mats = whole.reshape(-1, *whole.shape[-2:]) if whole.ndim > 1 else None
    if mats is not None and (mats.max(axis=(1, 2)) == mats.min(axis=(1, 2))).all():
        return f"each {whole.shape[-2:]} matrix is one number repeated: np.dot of two 1-D vectors, not np.outer?"
    zero = int((bad & (a == 0)).sum())
    if zero:
        return f"{zero} of {m} wrong elements are exactly 0 where the numeric one is not (a missing term?)"
    flipped = int((bad & (np.sign(a) == -np.sign(n))).sum())
    return f"{m} of {len(a)} elements wrong" + (f", {flipped} with the opposite sign" if flipped else "")


# --- compare_trace -------------------------------------------------------------------------------

FORWARD_ANCHOR = "docs/math.md#forward-lstm_step_forward-the-engines-lstm_forward"
BACKWARD_ANCHOR = "docs/math.md#backward-through-time-lstm_step_backward-the-engines-lstm_backward"
_A = "a_t = x_t W + h_{t−1} R + b, split into a_i, a_f, a_g, a_o"
_IF = "i_t = σ(a_i + c_{t−1} ⊙ p_i),  f_t = σ(a_f + c_{t−1} ⊙ p_f)"
_O = "o_t = σ(a_o + c_t ⊙ p_o)"
_DW = "∂L/∂W = Σ_t x_tᵀ δa_t,  ∂L/∂b = Σ_t Σ_rows δa_t"
_DP = "∂L/∂p_i = Σ_t Σ_rows δa_i ⊙ c_{t−1}"
# nplstm's quantities in the order one step computes them, each with the lines of docs/math.md that do
FORWARD = {"a": (_A,), "a_i": (_A, _IF), "a_f": (_A, _IF), "a_g": (_A,), "i": (_IF,), "f": (_IF,),
           "g": ("g_t = tanh(a_g)",), "c": ("c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t",), "a_o": (_A, _O), "o": (_O,),
           "h": ("h_t = o_t ⊙ tanh(c_t)",)}
BACKWARD = {"dh": ("δh_t = ∂L/∂y_t + δa_{t+1} Rᵀ",),
            "da_o": ("δo_t = δh_t ⊙ tanh(c_t),  δa_o = δo_t ⊙ o_t (1 − o_t)",),
            "dc": ("δc_t += δh_t ⊙ o_t ⊙ (1 − tanh² c_t)", "δc_t += δa_o ⊙ p_o"),
            "da_i": ("δa_i = δc_t ⊙ g_t ⊙ i_t (1 − i_t)",), "da_f": ("δa_f = δc_t ⊙ c_{t−1} ⊙ f_t (1 − f_t)",),
            "da_g": ("δa_g = δc_t ⊙ i_t ⊙ (1 − g_t²)",), "da": ("δa_t = [δa_i, δa_f, δa_g, δa_o]",),
            "dc_prev": ("δc_{t−1} = δc_t ⊙ f_t + δa_i ⊙ p_i + δa_f ⊙ p_f",),
            "dh_prev": ("δa_t Rᵀ, the second term of step 1 for the previous step",),
            "dx": ("∂L/∂x_t = δa_t Wᵀ",)}
GRADIENTS = {"W": (_DW,), "R": ("∂L/∂R = Σ_t h_{t−1}ᵀ δa_t",), "b": (_DW,), "b_ih": (_DW,), "b_hh": (_DW,),
             "P": (_DP,), "p_i": (_DP,), "p_f": ("∂L/∂p_f likewise with δa_f",),
             "p_o": ("∂L/∂p_o = Σ_t Σ_rows δa_o ⊙ c_t",)}


class Mismatch(NamedTuple):
    """Where your trace first differs from nplstm's, for one quantity."""
    name: str            # your name
    quantity: str        # nplstm's
    t: int | None        # the step (None for a weight gradient)
    index: tuple         # into your array: trace[name][index] is `theirs`
    ours: float
    theirs: float


@dataclass
class TraceComparison:
    """compare_trace's result: `first` (a Mismatch, None if all agree), `firsts` per quantity, `ok`."""
    first: Mismatch | None
    firsts: dict         # your name -> its first Mismatch, or None where it agrees at every step
    order: list          # your names, in the order they were compared
    steps: int
    equation: tuple      # the lines of docs/math.md that compute the first difference (() if none)
    anchor: str          # where they stand: "docs/math.md#..."

    @property
    def ok(self) -> bool:
        """True when every quantity agrees at every step."""
        return self.first is None

    def __str__(self) -> str:
        last = self.steps - 1
        lines = [f"compare_trace: {len(self.order)} quantities over {self.steps} steps (forward t = 0..{last}, "
                 f"then backward t = {last}..0, then the weight gradients)"]
        if self.first is None:
            return "\n".join(lines + ["all agree: " + ", ".join(self.order)])
        m = self.first
        lines += [f"first difference: {m.name} (nplstm's {m.quantity}){'' if m.t is None else f' at t = {m.t}'}, "
                  f"index {m.index}: yours {m.theirs:.6g}, nplstm {m.ours:.6g}"]
        lines += [("  computed by  " if k == 0 else " " * 15) + line for k, line in enumerate(self.equation)]
        lines.append(f"  see {self.anchor}")
        lines.append("first difference of each: " + ", ".join(
            f"{n} " + ("agrees" if f is None else "differs" if f.t is None else f"t = {f.t}")
            for n, f in self.firsts.items()))
        return "\n".join(lines)


def _params_of(lstm, weights: layouts.Convention):
    """(nplstm-form params in float64, Variant) of an nplstm.LSTM, or of params in the `weights` layout."""
    if hasattr(lstm, "config") and hasattr(lstm, "params"):
        cfg = lstm.config
        if cfg.num_layers != 1 or cfg.bidirectional:
            raise ValueError(f"compare_trace: expected one layer in one direction, got num_layers={cfg.num_layers}, "
                             f"bidirectional={cfg.bidirectional}")
        params, v = {k[3:]: val for k, val in lstm.params.items() if k.startswith("l0.")}, cfg.variant
    elif isinstance(lstm, dict):
        src = layouts.PRESETS["nplstm.LSTM"] if weights is layouts.NPLSTM and "l0.W" in lstm else weights
        params = layouts.to_nplstm(lstm, src)
        v = Variant(peephole=None if "p_i" not in params else "diagonal" if params["p_i"].ndim == 1 else "full")
    else:
        raise ValueError(f"compare_trace: lstm must be an nplstm.LSTM or a dict of weights, got {type(lstm).__name__}")
    if v.gate_recurrence:
        raise ValueError("compare_trace: gate recurrence (FGR) is not supported")
    return {k: np.asarray(val, dtype=np.float64) for k, val in params.items()}, v


def _carousel_off(cache):
    """The step's cache with f_t = 1 and p_i = p_f = 0. lstm_step_backward's dc_prev is δc_t ⊙ f_t +
    δa_i ⊙ p_i + δa_f ⊙ p_f (docs/math.md, step 5), so with this cache it is δc_t itself, complete."""
    params = {k: (np.zeros_like(p) if k in ("p_i", "p_f") else p) for k, p in cache.params.items()}
    return cache._replace(f=np.ones_like(cache.f), params=params)


def _ours(params: dict, v: Variant, x, dy, want_backward: bool) -> dict:
    """nplstm's quantities of one sequence from zero state: per step (T, B, ·), weight gradients as in params."""
    (T, B, _), (H, _) = x.shape, params["R"].shape
    W, R, b, p = params["W"], params["R"], params["b"], None if v.peephole is None else (
        params["p_i"], params["p_f"], params["p_o"])
    zero, a = np.zeros((B, H)), np.zeros((T, B, 4 * H))
    h, c, cache = lstm_forward(x, zero, zero, W, R, b, p, batch_sizes=[B] * T, variant=v, a_out=a)
    q = {"a": a, "c": c[1:], "h": h[1:], **{g: cache.gates[:, :, k] for k, g in enumerate("ifgo")},
         **{"a_" + g: a[..., k * H:(k + 1) * H] for k, g in enumerate("ifgo")}}
    if not want_backward:
        return q
    da = np.zeros((T, B, 4 * H))
    _, _, _, q["grads"] = lstm_backward(dy, zero, zero, cache, W, R, p, da_out=da)
    q.update(da=da, **{"da_" + g: da[..., k * H:(k + 1) * H] for k, g in enumerate("ifgo")})
    _, _, steps = lstm_reference_forward(x, zero, zero, params, **v._asdict())
    per_step = {k: [None] * T for k in ("dh", "dc", "dc_prev", "dh_prev", "dx")}
    dh_next, dc_next = zero, zero
    for t in range(T - 1, -1, -1):           # as lstm_reference_backward, keeping each step's gradients
        dh = dy[t] + dh_next
        per_step["dc"][t] = lstm_step_backward(dh, dc_next, _carousel_off(steps[t]))[2]
        per_step["dh"][t] = dh
        per_step["dx"][t], dh_next, dc_next, _ = lstm_step_backward(dh, dc_next, steps[t])
        per_step["dh_prev"][t], per_step["dc_prev"][t] = dh_next, dc_next
    q.update({k: np.stack(s) for k, s in per_step.items()})
    return q


def compare_trace(trace: dict, lstm, x, *, names: dict | None = None, dy=None, rtol: float = 1e-6,
                  atol: float = 1e-9, layout=None) -> TraceComparison:
    """Find the first quantity, in computation order, where your LSTM's trace differs from nplstm's.

    trace: your name -> array: per-step quantities of one sequence from zero state, (T, B, H) by default
    (a, da: (T, B, 4H); dx: (T, B, I)), and weight gradients "d" + a weight's key, e.g. dW (I, 4H).
    names: your name -> nplstm's (FORWARD, BACKWARD, or "d" + key; unnamed keys are taken as nplstm's).
    lstm: an nplstm.LSTM of one layer, or its weights as a dict (in layout's weights convention).
    x: (T, B, I) and dy = dL/dh (T, B, H) in the same axes (dy is needed for backward quantities).
    layout: None (axes "tbh", nplstm's weights), a preset of nplstm.layouts or Convention (its axes and
    weights, e.g. "seed": columns (H, T)), or {"axes": "bth", "weights": "torch"}. Elements agree when
    |yours - nplstm's| <= atol + rtol |nplstm's|. Returns a TraceComparison.
    """
    axes, weights = layouts.layout_of(layout)
    if not isinstance(trace, dict) or not trace:
        raise ValueError(f"compare_trace: trace must be a non-empty dict your name -> array, got {type(trace).__name__}")
    names = dict(names or {})                # names of quantities the trace lacks are simply not compared
    params, v = _params_of(lstm, weights)
    x = layouts.time_major(x, axes, "x")
    if x.shape[2] != params["W"].shape[0]:
        raise ValueError(f"compare_trace: x has {x.shape[2]} features a step; the weights take I = {params['W'].shape[0]}")
    mapping = {k: names.get(k, k) for k in trace}
    grad_keys = {"d" + weights.key(r): r for r in weights.roles()}
    known = {**FORWARD, **BACKWARD, **dict.fromkeys(grad_keys)}
    unknown = [f"{k!r} -> {q!r}" if k != q else repr(k) for k, q in mapping.items() if q not in known]
    if unknown:
        raise ValueError(f"compare_trace: {', '.join(unknown)}: not a quantity nplstm computes; map your names to "
                         f"one of {', '.join(known)} with names={{...}}")
    backward = [k for k, q in mapping.items() if q not in FORWARD]
    if backward and dy is None:
        raise ValueError(f"compare_trace: {', '.join(backward)} are from the backward pass: pass dy, dL/dh of every "
                         f"step, in the axes {axes!r}")
    dy = None if dy is None else layouts.time_major(dy, axes, "dy")
    if dy is not None and dy.shape != x.shape[:2] + params["R"].shape[:1]:
        raise ValueError(f"compare_trace: dy is {dy.shape} as (T, B, H); expected {x.shape[:2] + params['R'].shape[:1]}")
    ours = _ours(params, v, x, dy, bool(backward))
    if backward:
        ours.update({"d" + k: g for k, g in layouts.from_nplstm(ours.pop("grads"), weights, gradient=True).items()})
    absent = [f"{k!r} -> {q!r}" for k, q in mapping.items() if q not in ours]
    if absent:
        raise ValueError(f"compare_trace: {', '.join(absent)}: this LSTM has no such weight (no peepholes?)")

    def position(q: str, t: int) -> tuple:   # forward t = 0..T-1, then backward t = T-1..0, then gradients
        for phase, qs in enumerate((FORWARD, BACKWARD, grad_keys)):
            if q in qs:
                return phase, (-t if phase == 1 else t), list(qs).index(q)
    order = sorted(trace, key=lambda k: position(mapping[k], 0))
    firsts = {k: _first(k, mapping[k], trace[k], ours[mapping[k]], axes, mapping[k] in grad_keys, rtol, atol)
              for k in order}
    found = [m for m in firsts.values() if m is not None]
    first = min(found, key=lambda m: position(m.quantity, m.t or 0), default=None)
    q = first and first.quantity
    equation = FORWARD.get(q) or BACKWARD.get(q) or GRADIENTS.get(grad_keys.get(q), ())
    return TraceComparison(first, firsts, order, x.shape[0], equation, FORWARD_ANCHOR if q in FORWARD else
                           BACKWARD_ANCHOR if first else "")


def _first(name, q, theirs, ours, axes, is_grad, rtol, atol) -> Mismatch | None:
    """The first step (and element) where your array differs from nplstm's, or None."""
    mine = np.asarray(theirs, dtype=np.float64) if is_grad else layouts.time_major(theirs, axes, f"trace[{name!r}]")
    if mine.shape != ours.shape:
        raise ValueError(f"compare_trace: trace[{name!r}] is {mine.shape}{'' if is_grad else ' as (T, B, ·)'}; "
                         f"nplstm's {q} is {ours.shape}")
    bad = ~np.isclose(mine, ours, rtol=rtol, atol=atol)
    if not bad.any():
        return None
    if is_grad:
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        return Mismatch(name, q, None, at, float(ours[at]), float(mine[at]))
    steps = np.flatnonzero(bad.any(axis=(1, 2)))
    t = int(steps[0] if q in FORWARD else steps[-1])     # backward runs from the last step down
    b, f = (int(i) for i in np.argwhere(bad[t])[0])
    at = tuple({"t": t, "b": b, "h": f}[k] for k in axes)    # the element in your own axes
    return Mismatch(name, q, t, at, float(ours[t, b, f]), float(mine[t, b, f]))
