"""One LSTM layer's weights in other people's conventions, converted exactly to and from nplstm's.

nplstm's own form is the params of the reference cell: W (I, 4H), R (H, 4H), b (4H,), and with peepholes
p_i, p_f, p_o, each (H,) (diagonal) or (H, H) (full); a row vector x_t (I,) makes a_t = x_t W + h_{t-1} R + b,
gate blocks i, f, g, o along 4H. A Convention describes another way to store the same numbers: the gate
order, whether a weight multiplies row or column vectors, one matrix for all gates or one per gate, one
bias or two that add up, and how peepholes are kept. PRESETS holds the conventions below, each a fact of
the code or spec cited:

- "torch": torch.nn.LSTM's state_dict, weight_ih_l0 (4H, I), weight_hh_l0 (4H, H), bias_ih_l0 and
  bias_hh_l0 (4H,) that add up, gates i, f, g, o, no peepholes; "torch.LSTMCell": the same without "_l0".
- "keras": keras.layers.LSTM, kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,), gates i, f, c, o.
- "onnx": the ONNX LSTM operator, W [1, 4H, I], R [1, 4H, H], B [1, 8H] = [Wb, Rb], gates i, o, f, c,
  diagonal peepholes P [1, 3H] in the order i, o, f (onnx.ai/onnx/operators/onnx__LSTM.html).
- "seed": the question this project answers (examples/seed_lstm.py, weights shared over time as they must
  be): w (4, H, I), u (4, H, H), full peepholes v (4, H, H), b (4, H), column vectors, gate index 0 input,
  1 output, 2 forget, 3 cell input; v[3] is never read (the cell input has no peephole).
- "karpathy": Karpathy's lstm.py gist (gist.github.com/karpathy/587454dc0146a6ae21fc): one matrix WLSTM
  (1 + I + H, 4H) applied to the row [1, x_t, h_{t-1}], so its first row is the bias; gates i, f, o, g.
- "nplstm" (the reference cell's keys) and "nplstm.LSTM" (a one-layer LSTM's keys, "l0.W", ...).

convert(params, src, dst) = from_nplstm(to_nplstm(params, src), dst). Every step is a transpose, a
reordering or a concatenation, so a round trip gives back the same bits; the one sum is PyTorch's and
ONNX's two biases, which nplstm keeps as one (b = b_ih + b_hh; going out, b_hh = 0). With gradient=True
the arrays are gradients: both biases of a pair get the whole db, as each enters a_t the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GATES = "ifgo"    # nplstm's order along 4H: input gate, forget gate, cell input g, output gate
PEEPHOLES = "ifo"  # the gates that peek at the cell state
WEIGHTS = ("fused", "per_gate", "stacked")
BIASES = ("one", "two", "concat", "row")
PEEPHOLE_KINDS = (None, "keys", "stacked", "per_gate")


@dataclass(frozen=True)
class Convention:
    """How one LSTM layer's weights are stored; `shapes(I, H)` gives every array's shape, e.g. W (I, 4H).

    Letters are nplstm's: g is the cell input (Keras and ONNX call it c, the seed a). Keys come from
    `names`, by role: "W" (input weights, or Karpathy's one matrix), "R", "b" (or "b_ih", "b_hh"), "P"
    (or "p_i", "p_f", "p_o").
    """
    name: str
    gates: str = GATES           # order of the four gate blocks (along 4H, or along the gate axis)
    orientation: str = "row"     # "row": x W with W (I, 4H); "column": W x with W (4H, I)
    weights: str = "fused"       # "fused": W, R hold all 4 gates; "per_gate": (4, ·, ·); "stacked": one [1, x, h] matrix
    bias: str = "one"            # "one": b; "two": b_ih + b_hh; "concat": (8H,) [b_ih, b_hh]; "row": row 0 of "stacked"
    peephole: str | None = None  # None; "keys": p_i, p_f, p_o; "stacked": (3H,), diagonal; "per_gate": (4, H, H), full
    peephole_gates: str = PEEPHOLES  # order of the peephole blocks, for peephole="stacked"
    leading_axis: bool = False   # every array has a leading axis of size 1 (ONNX's num_directions)
    axes: str = "tbh"            # how the framework lays out a sequence: t step, b batch, h features (no b: one sequence)
    names: dict = field(default_factory=dict)   # role -> key; roles not named keep their own name

    def __post_init__(self):
        checks = [("gates", sorted(self.gates) == sorted(GATES), "a permutation of 'ifgo'"),
                  ("orientation", self.orientation in ("row", "column"), "'row' or 'column'"),
                  ("weights", self.weights in WEIGHTS, " or ".join(map(repr, WEIGHTS))),
                  ("bias", self.bias in BIASES, " or ".join(map(repr, BIASES))),
                  ("peephole", self.peephole in PEEPHOLE_KINDS, "None, 'keys', 'stacked' or 'per_gate'"),
                  ("peephole_gates", sorted(self.peephole_gates) == sorted(PEEPHOLES), "a permutation of 'ifo'"),
                  ("bias", (self.bias == "row") == (self.weights == "stacked"),
                   "'row' exactly when weights='stacked' (the bias is the stacked matrix's first row)"),
                  ("axes", sorted(self.axes) in (sorted("tbh"), sorted("th")), "'t', 'h' and maybe 'b', e.g. 'tbh'")]
        for what, fine, expected in checks:
            if not fine:
                raise ValueError(f"Convention {self.name!r}: {what}: expected {expected}, got {getattr(self, what)!r}")

    def key(self, role: str) -> str:
        """The dict key this convention stores `role` under ("W", "R", "b", "b_ih", "b_hh", "P", "p_i", ...)."""
        return self.names.get(role, role)

    def roles(self, peepholes: bool = True) -> list[str]:
        """The roles of the arrays it stores, in order; without the optional peepholes if peepholes=False."""
        roles = ["W"] if self.weights == "stacked" else ["W", "R"]
        roles += {"one": ["b"], "two": ["b_ih", "b_hh"], "concat": ["b"], "row": []}[self.bias]
        if self.peephole == "per_gate" or (peepholes and self.peephole == "stacked"):
            roles.append("P")
        elif peepholes and self.peephole == "keys":
            roles += ["p_i", "p_f", "p_o"]
        return roles

    def shapes(self, I: int, H: int, peephole: str | None = "diagonal") -> dict[str, tuple[int, ...]]:
        """Key -> shape for input size I, hidden size H; peephole: "diagonal", "full" or None (keys only)."""
        col = self.orientation == "column"
        gate_in = (4, H, I) if col else (4, I, H)
        W = {"fused": (4 * H, I) if col else (I, 4 * H), "per_gate": gate_in,
             "stacked": (4 * H, 1 + I + H) if col else (1 + I + H, 4 * H)}[self.weights]
        R = (4, H, H) if self.weights == "per_gate" else (4 * H, H) if col else (H, 4 * H)
        b = (4, H) if self.weights == "per_gate" else (4 * H,)
        p = (H,) if peephole == "diagonal" else (H, H)
        by_role = {"W": W, "R": R, "b": (8 * H,) if self.bias == "concat" else b, "b_ih": b, "b_hh": b,
                   "P": (4, H, H) if self.peephole == "per_gate" else (3 * H,), "p_i": p, "p_f": p, "p_o": p}
        lead = (1,) if self.leading_axis else ()
        return {self.key(r): lead + by_role[r] for r in self.roles(peephole is not None)}


NPLSTM = Convention("nplstm", peephole="keys")
PRESETS = {c.name: c for c in [
    NPLSTM,
    Convention("nplstm.LSTM", peephole="keys", axes="bth",
               names={r: "l0." + r for r in ("W", "R", "b", "p_i", "p_f", "p_o")}),
    Convention("torch", orientation="column", bias="two",
               names={"W": "weight_ih_l0", "R": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}),
    Convention("torch.LSTMCell", orientation="column", bias="two",
               names={"W": "weight_ih", "R": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}),
    Convention("keras", axes="bth", names={"W": "kernel", "R": "recurrent_kernel", "b": "bias"}),
    Convention("onnx", gates="iofg", orientation="column", bias="concat", peephole="stacked",
               peephole_gates="iof", leading_axis=True, names={"b": "B"}),
    Convention("seed", gates="iofg", orientation="column", weights="per_gate", peephole="per_gate", axes="ht",
               names={"W": "w", "R": "u", "P": "v"}),
    Convention("karpathy", gates="ifog", weights="stacked", bias="row", names={"W": "WLSTM"}),
]}


def convention(which: str | Convention) -> Convention:
    """A preset by name (a key of PRESETS), or a Convention as it is."""
    if isinstance(which, Convention):
        return which
    if which not in PRESETS:
        raise ValueError(f"layout: expected a Convention or one of {', '.join(PRESETS)}, got {which!r}")
    return PRESETS[which]


def _arrays(params, c: Convention, what: str):
    """params' arrays by role (leading axis dropped), checked against c, and the sizes I, H they imply."""
    if not isinstance(params, dict):
        raise ValueError(f"{what}: expected a dict of arrays keyed {', '.join(map(c.key, c.roles()))}, "
                         f"got {type(params).__name__}")
    required, optional = c.roles(peepholes=False), [r for r in c.roles() if r not in c.roles(False)]
    missing = [c.key(r) for r in required if c.key(r) not in params]
    found = [r for r in optional if c.key(r) in params]
    if found and len(found) != len(optional):
        missing += [c.key(r) for r in optional if r not in found]
    unknown = [k for k in params if k not in {c.key(r) for r in required + optional}]
    if missing or unknown:
        raise ValueError(f"{what}: expected the keys {', '.join(c.key(r) for r in required)}"
                         + (f" [+ {', '.join(map(c.key, optional))}]" if optional else "") + "; "
                         + "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                       f"unexpected {', '.join(unknown)}" if unknown else "") if part))
    a = {r: np.asarray(params[c.key(r)]) for r in required + found}
    I, H = _sizes(a, c)
    kind = None if not found else "full" if c.peephole == "per_gate" or (
        c.peephole == "keys" and a["p_i"].ndim == 2) else "diagonal"
    expected = c.shapes(max(I, 1), max(H, 1), kind)
    wrong = [f"{c.key(r)} {a[r].shape}" for r in a if a[r].shape != expected[c.key(r)]]
    if wrong or I < 1 or H < 1:
        shown = ", ".join(f"{k} {s}" for k, s in expected.items())
        raise ValueError(f"{what}: expected {shown} (I = {I}, H = {H}, read from the weights), "
                         f"got {', '.join(wrong) or 'sizes below 1'}")
    return {r: (v[0] if c.leading_axis else v) for r, v in a.items()}, I, H


def _sizes(a: dict, c: Convention) -> tuple[int, int]:
    """Input size I and hidden size H as c's weight matrices imply them (-1 where they cannot)."""
    lead = 1 if c.leading_axis else 0
    W = a["W"].shape[lead:]
    if c.weights == "stacked":
        if len(W) != 2:
            return -1, -1
        rows, four_h = W[::-1] if c.orientation == "column" else W
        return rows - 1 - four_h // 4, four_h // 4
    R = a["R"].shape[lead:]
    if len(W) < 2 or len(R) < 2:
        return -1, -1
    H = R[-2] if c.orientation == "row" and c.weights == "fused" else R[-1]
    return (W[-1] if c.orientation == "column" else W[-2]), H


def _split(a: np.ndarray, order: str) -> dict[str, np.ndarray]:
    """The blocks of a along its last axis (4H or 3H), keyed by gate letter in the given order."""
    return dict(zip(order, np.split(a, len(order), axis=-1)))


def _row(a: np.ndarray, c: Convention) -> np.ndarray:
    """A fused matrix in row orientation, (in, 4H), blocks in c's order."""
    return a.T if c.orientation == "column" else a


def _per_gate(a: np.ndarray, c: Convention) -> dict[str, np.ndarray]:
    """(4, ·, ·) per-gate matrices -> {gate: (in, H)} in row orientation."""
    return {q: (a[k].T if c.orientation == "column" else a[k]) for k, q in enumerate(c.gates)}


def _fuse(blocks: dict[str, np.ndarray], order: str = GATES) -> np.ndarray:
    return np.concatenate([blocks[q] for q in order], axis=-1)


def to_nplstm(params: dict, src: str | Convention, *, peephole: str | None = "keep",
              gradient: bool = False) -> dict[str, np.ndarray]:
    """params stored as `src` -> nplstm's form: W (I, 4H), R (H, 4H), b (4H,) [, p_i, p_f, p_o (H,) or (H, H)].

    peephole: "keep" as stored; "diagonal" or "full" to ask for that kind (a full matrix must then be
    diagonal; no peepholes become zeros); None to drop peepholes, which must then all be zero. A seed
    layout whose v is all zero has no peepholes. gradient: params are gradients (see the module docstring).
    """
    c = convention(src)
    a, I, H = _arrays(params, c, f"params ({c.name})")
    if c.weights == "stacked":               # rows [1, x, h]: the bias, then W, then R
        M = _row(a["W"], c)
        W, R, b = (_split(part, c.gates) for part in (M[1:1 + I], M[1 + I:], M[0]))
    elif c.weights == "per_gate":
        W, R = _per_gate(a["W"], c), _per_gate(a["R"], c)
    else:
        W, R = _split(_row(a["W"], c), c.gates), _split(_row(a["R"], c), c.gates)
    if c.weights != "stacked":
        b = _bias_in(a, c, gradient)
    out = {"W": _fuse(W), "R": _fuse(R), "b": _fuse(b)}
    p = _peepholes_in(a, c)
    if p is not None and not (c.peephole == "per_gate" and not any(v.any() for v in p.values())):
        out.update(p)
    return _as_asked(out, peephole)


def _bias_in(a: dict, c: Convention, gradient: bool) -> dict[str, np.ndarray]:
    def blocks(v):
        return {q: v[k] for k, q in enumerate(c.gates)} if c.weights == "per_gate" else _split(v, c.gates)
    if c.bias == "one":
        return blocks(a["b"])
    first, second = (a["b_ih"], a["b_hh"]) if c.bias == "two" else np.split(a["b"], 2)
    if not gradient:
        return blocks(first + second)        # both add into a_t: nplstm keeps their sum
    if not np.array_equal(first, second):    # each gets the whole db: two different ones are a bug
        raise ValueError(f"gradient ({c.name}): the two bias gradients differ (max |difference| "
                         f"{np.abs(first - second).max():.3g}); both must be dL/db")
    return blocks(first)


def _peepholes_in(a: dict, c: Convention):
    """{p_i, p_f, p_o} in nplstm's row form, or None."""
    if c.peephole == "keys" and "p_i" in a:
        return {r: (a[r].T if c.orientation == "column" and a[r].ndim == 2 else a[r]) for r in ("p_i", "p_f", "p_o")}
    if c.peephole == "stacked" and "P" in a:
        return {"p_" + q: v for q, v in _split(a["P"], c.peephole_gates).items()}
    if c.peephole == "per_gate":
        V = _per_gate(a["P"], c)
        return {"p_" + q: V[q] for q in PEEPHOLES}
    return None


def _as_asked(p: dict, peephole: str | None) -> dict:
    """The peepholes of nplstm-form p as the caller asked: "keep", "diagonal", "full" or None."""
    if peephole not in ("keep", "diagonal", "full", None):
        raise ValueError(f"peephole: expected 'keep', 'diagonal', 'full' or None, got {peephole!r}")
    keys = ("p_i", "p_f", "p_o")
    H = p["R"].shape[0]
    if peephole is None:
        nonzero = [k for k in keys if k in p and p[k].any()]
        if nonzero:
            raise ValueError(f"peephole=None: {', '.join(nonzero)} are not all zero; an LSTM without peepholes "
                             "cannot compute what these weights compute")
        return {k: v for k, v in p.items() if k not in keys}
    if peephole == "keep":
        return p
    for k in keys:
        v = p.get(k, np.zeros(H, p["W"].dtype))
        if peephole == "full" and v.ndim == 1:
            v = np.diag(v)
        elif peephole == "diagonal" and v.ndim == 2:
            v = _diagonal_of(v, k, "peephole='diagonal'")
        p[k] = v
    return p


def _diagonal_of(P: np.ndarray, key: str, who: str) -> np.ndarray:
    """The diagonal (H,) of a full (H, H) peephole matrix that has nothing off its diagonal."""
    off = P - np.diag(np.diag(P))
    if off.any():
        raise ValueError(f"{who}: {key} is a full (H, H) matrix with entries off its diagonal (max "
                         f"|off-diagonal| {np.abs(off).max():.3g}); diagonal peepholes cannot hold it")
    return np.diag(P).copy()


def from_nplstm(params: dict, dst: str | Convention, *, gradient: bool = False) -> dict[str, np.ndarray]:
    """nplstm's form, W (I, 4H), R (H, 4H), b (4H,) [, p_i, p_f, p_o (H,) or (H, H)] -> new arrays stored as `dst`.

    ValueError, naming why, where dst cannot hold the peepholes: none in PyTorch, Keras, Karpathy's gist
    (unless every peephole weight is zero), diagonal ones only in ONNX. gradient: as in to_nplstm.
    """
    c = convention(dst)
    a, _, H = _arrays(params, NPLSTM, "params (nplstm)")
    W, R, b = a["W"], a["R"], a["b"]
    p = {k: a[k] for k in ("p_i", "p_f", "p_o") if k in a}
    Wb, Rb, bb = _split(W, GATES), _split(R, GATES), _split(b, GATES)
    col = c.orientation == "column"
    out = {}
    if c.weights == "stacked":
        M = _fuse({q: np.concatenate([bb[q][None], Wb[q], Rb[q]]) for q in GATES}, c.gates)
        out["W"] = M.T if col else M
    elif c.weights == "per_gate":
        out["W"], out["R"] = (np.stack([(m[q].T if col else m[q]) for q in c.gates]) for m in (Wb, Rb))
    else:
        out["W"], out["R"] = ((_fuse(m, c.gates).T if col else _fuse(m, c.gates)) for m in (Wb, Rb))
    if c.weights != "stacked":
        one = np.stack([bb[q] for q in c.gates]) if c.weights == "per_gate" else _fuse(bb, c.gates)
        other = one if gradient else np.zeros_like(one)   # the second bias: db again, or 0 (the sum is b)
        out.update({"one": {"b": one}, "two": {"b_ih": one, "b_hh": other},
                    "concat": {"b": np.concatenate([one, other])}}[c.bias])
    out.update(_peepholes_out(p, c, H, W.dtype))
    lead = (lambda v: v[None]) if c.leading_axis else (lambda v: v)
    return {c.key(r): np.array(lead(v), copy=True) for r, v in out.items()}


def _peepholes_out(p: dict, c: Convention, H: int, dtype) -> dict:
    if c.peephole is None:
        nonzero = [k for k, v in p.items() if v.any()]
        if nonzero:
            raise ValueError(f"{c.name} has no peephole connections, and {', '.join(nonzero)} are not zero: these "
                             f"weights compute something its LSTM cannot. Use an LSTM with peephole=None, or a "
                             f"layout that has peepholes (nplstm, onnx, seed)")
        return {}
    if not p and c.peephole != "per_gate":
        return {}
    if c.peephole == "keys":
        return {k: (v.T if c.orientation == "column" and v.ndim == 2 else v) for k, v in p.items()}
    if c.peephole == "stacked":
        diag = {k: (_diagonal_of(v, k, f"{c.name} (diagonal peepholes only)") if v.ndim == 2 else v)
                for k, v in p.items()}
        return {"P": np.concatenate([diag["p_" + q] for q in c.peephole_gates])}
    full = {k: (np.diag(v) if v.ndim == 1 else v) for k, v in p.items()}   # per_gate: full matrices
    zero = np.zeros((H, H), dtype)
    return {"P": np.stack([(full["p_" + q].T if c.orientation == "column" else full["p_" + q])
                           if q in PEEPHOLES and full else zero for q in c.gates])}


def convert(params: dict, src: str | Convention, dst: str | Convention, *, peephole: str | None = "keep",
            gradient: bool = False) -> dict[str, np.ndarray]:
    """One LSTM layer's arrays from convention `src` to `dst` (presets: PRESETS), through nplstm's form.

    E.g. torch.nn.LSTM's weight_ih_l0 (4H, I) ... -> nplstm's W (I, 4H), R (H, 4H), b (4H,). peephole and
    gradient: as in to_nplstm. Returns new arrays; the given ones are not changed.
    """
    return from_nplstm(to_nplstm(params, src, peephole=peephole, gradient=gradient), dst, gradient=gradient)


def layout_of(layout) -> tuple[str, Convention]:
    """(axes, weights Convention) of a layout argument: None (nplstm: "tbh"), a preset name or Convention
    (its own axes and weights), or a dict {"axes": "bth", "weights": "torch"} (either key may be left out)."""
    if layout is None:
        return "tbh", NPLSTM
    if isinstance(layout, (str, Convention)):
        c = convention(layout)
        return c.axes, c
    if isinstance(layout, dict) and set(layout) <= {"axes", "weights"}:
        c = convention(layout.get("weights", NPLSTM))
        axes = layout.get("axes", c.axes)
        if not isinstance(axes, str) or sorted(axes) not in (sorted("tbh"), sorted("th")):
            raise ValueError(f"layout['axes']: expected the letters t, h and maybe b, e.g. 'bth', got {axes!r}")
        return axes, c
    raise ValueError(f"layout: expected None, a preset ({', '.join(PRESETS)}), a Convention or a dict with keys "
                     f"'axes' and 'weights', got {layout!r}")


def time_major(a, axes: str, what: str = "array") -> np.ndarray:
    """A sequence laid out as `axes` (t step, b batch, h features: "tbh", "bth", or "ht" for the seed's
    columns (H, T) of one sequence) -> a float64 array (T, B, F), B = 1 where axes has no b."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != len(axes):
        raise ValueError(f"{what}: expected {len(axes)} axes ({axes!r}: t step, b batch, h features), got shape {a.shape}")
    if "b" not in axes:
        a, axes = a[..., None], axes + "b"
    return a.transpose([axes.index(k) for k in "tbh"])
