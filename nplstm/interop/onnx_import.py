"""Load an ONNX graph of LSTM / GRU operators (and a linear head) into nplstm (`pip install onnx`).

ONNX's LSTM stores, per direction d, W[d] (4H, I), R[d] (4H, H) in gate order i, o, f, c, applied as
x Wᵀ, and B[d] (8H,) = [Wb, Rb]; nplstm's W (I, 4H), R (H, 4H) in order i, f, g, o, and b = Wb + Rb.
Its peepholes P[d] (3H,) = [p_i, p_o, p_f] are nplstm's diagonal ones (o peeks at c_t, i and f at
c_{t-1}, in both); input_forget=1 is nplstm's coupled (CIFG) gate, f = 1 - i; the activations g, h are
Tanh or Affine(alpha=1, beta=0), nplstm's "identity" (NIAF, NOAF). ONNX's GRU (gates z, r, h) with
linear_before_reset=1 is torch's GRU, nplstm.GRU (gates r, z, n): b = [Wb_r + Rb_r, Wb_z + Rb_z, Wb_h],
b_hn = Rb_h. Several LSTM nodes are the layers of one stacked nplstm.LSTM; one MatMul (+ Add) or Gemm
after them is the head of an nplstm.Model.
How the nodes are wired (the Transpose, Reshape, Gather, ... plumbing torch.onnx.export writes between
them, and whether the head reads every step or the final states) is not pattern-matched: `load` runs
the graph on a probe input, in NumPy, with nplstm computing its LSTM and GRU nodes, and keeps the
nplstm object (batch-first or time-major input; many-to-many or many-to-one) that computes the same.
onnx is imported inside `load`, never by `import nplstm`.
"""
from __future__ import annotations

import numpy as np

from ..gru import GRU
from ..layers import LSTM, Linear, Model

PLUMBING = {"Identity", "Cast", "Transpose", "Shape", "Gather", "Unsqueeze", "Squeeze", "Reshape", "Slice",
            "Concat", "Expand", "Constant", "ConstantOfShape"}
SUPPORTED = PLUMBING | {"LSTM", "GRU", "MatMul", "Gemm", "Add"}
LSTM_BLOCKS = [0, 2, 3, 1]   # nplstm's i, f, g, o are ONNX's blocks i, o, f, c at 0, 2, 3, 1
GRU_BLOCKS = [1, 0, 2]       # nplstm's r, z, n are ONNX's blocks z, r, h at 1, 0, 2
PROBE_TOL = 1e-4             # relative: the probe's candidates run the same float32 engine, wrong ones differ by O(1)


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _where(node) -> str:
    return f"{node.op_type} node {node.name!r}" if node.name else f"{node.op_type} node (output {node.output[0]!r})"


def _const(node, consts, k, name, required=True):
    """Input k of node as a NumPy array, from an initializer or a Constant node (None if absent and optional)."""
    key = node.input[k] if k < len(node.input) else ""
    if not key:
        if required:
            raise ValueError(f"load: {_where(node)} has no input {name}; expected a weight tensor")
        return None
    if key not in consts:
        raise ValueError(f"load: input {name} of {_where(node)} is computed in the graph; expected an initializer "
                         "or a Constant")
    return consts[key]


def _blocks(a: np.ndarray, order: list, H: int) -> np.ndarray:
    """(nG·H, ...) with ONNX's gate blocks -> the same rows in nplstm's block order."""
    return a.reshape(len(order), H, *a.shape[1:])[order].reshape(a.shape)


def _activations(node, attrs, defaults: list, D: int) -> list[str]:
    """The node's activation names per slot (f, g, h for LSTM; f, g for GRU), one set for all directions;
    Affine(1, 0) reads as "Identity"."""
    names = [_text(a) for a in attrs.get("activations", [])] or defaults * D
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    out = []
    for name in names:
        if name.lower() == "affine":
            alpha, beta = (alphas.pop(0) if alphas else 1.0), (betas.pop(0) if betas else 0.0)
            name = "Identity" if (alpha, beta) == (1.0, 0.0) else f"Affine(alpha={alpha}, beta={beta})"
        out.append(name)
    n = len(defaults)
    if out[:n] != out[n:] and len(out) > n:
        raise ValueError(f"load: {_where(node)} has different activations per direction ({out}); nplstm's two "
                         "directions share one variant")
    return out[:n]


def _check_recurrent(node, attrs, kind: str) -> int:
    """Attributes nplstm cannot follow -> ValueError; returns D."""
    direction = _text(attrs.get("direction", "forward"))
    if direction not in ("forward", "bidirectional"):
        raise ValueError(f"load: {_where(node)} has direction={direction!r}; nplstm runs a reverse direction only as "
                         "half of a bidirectional layer, expected 'forward' or 'bidirectional'")
    if "clip" in attrs:
        raise ValueError(f"load: {_where(node)} clips its cell at {attrs['clip']}; nplstm's {kind} has no clip")
    return 2 if direction == "bidirectional" else 1


def _lstm_spec(node, consts) -> dict:
    """The nplstm view of one ONNX LSTM node: kind, D, H, I, the variant's flags, params per direction."""
    attrs = _attrs(node)
    D = _check_recurrent(node, attrs, "LSTM")
    W, R = _const(node, consts, 1, "W"), _const(node, consts, 2, "R")
    B, P = _const(node, consts, 3, "B", False), _const(node, consts, 7, "P", False)
    H = R.shape[-1]
    f, g, h = _activations(node, attrs, ["Sigmoid", "Tanh", "Tanh"], D)
    named = {"Tanh": "tanh", "Identity": "identity"}
    if f != "Sigmoid" or g not in named or h not in named:
        raise ValueError(f"load: {_where(node)} has activations f={f}, g={g}, h={h}; expected f=Sigmoid and g, h "
                         "each Tanh or Affine(alpha=1, beta=0)")
    flags = dict(peephole=None if P is None else "diagonal", coupled=bool(attrs.get("input_forget", 0)),
                 input_activation=named[g], output_activation=named[h])
    params = []
    for d in range(D):
        b = np.zeros(4 * H, W.dtype) if B is None else B[d, :4 * H] + B[d, 4 * H:]   # Wb + Rb
        p = {"W": _blocks(W[d], LSTM_BLOCKS, H).T.copy(), "R": _blocks(R[d], LSTM_BLOCKS, H).T.copy(),
             "b": _blocks(b, LSTM_BLOCKS, H)}
        if P is not None:                    # P[d] = [p_i, p_o, p_f]
            p.update(p_i=P[d, :H].copy(), p_o=P[d, H:2 * H].copy(), p_f=P[d, 2 * H:].copy())
        params.append(p)
    return dict(kind="LSTM", D=D, H=H, I=W.shape[-1], flags=flags, params=params, dtype=W.dtype,
                layout=attrs.get("layout", 0), node=node)


def _gru_spec(node, consts) -> dict:
    """The nplstm view of one ONNX GRU node (linear_before_reset=1 only)."""
    attrs = _attrs(node)
    D = _check_recurrent(node, attrs, "GRU")
    if not attrs.get("linear_before_reset", 0):
        raise ValueError(f"load: {_where(node)} has linear_before_reset=0 (r applied before R, Cho et al.'s GRU); "
                         "nplstm.GRU is torch's, expected linear_before_reset=1")
    if _activations(node, attrs, ["Sigmoid", "Tanh"], D) != ["Sigmoid", "Tanh"]:
        raise ValueError(f"load: {_where(node)}: expected activations Sigmoid, Tanh (nplstm.GRU's), got "
                         f"{_activations(node, attrs, ['Sigmoid', 'Tanh'], D)}")
    W, R, B = _const(node, consts, 1, "W"), _const(node, consts, 2, "R"), _const(node, consts, 3, "B", False)
    H = R.shape[-1]
    params = []
    for d in range(D):
        Wb, Rb = (np.zeros(3 * H, W.dtype),) * 2 if B is None else (_blocks(B[d, :3 * H], GRU_BLOCKS, H),
                                                                   _blocks(B[d, 3 * H:], GRU_BLOCKS, H))
        params.append({"W": _blocks(W[d], GRU_BLOCKS, H).T.copy(), "R": _blocks(R[d], GRU_BLOCKS, H).T.copy(),
                       "b": Wb + np.concatenate([Rb[:2 * H], np.zeros(H, W.dtype)]), "b_hn": Rb[2 * H:].copy()})
    return dict(kind="GRU", D=D, H=H, I=W.shape[-1], flags={}, params=params, dtype=W.dtype,
                layout=attrs.get("layout", 0), node=node)


def _build(specs: list[dict]) -> LSTM | GRU:
    """One nplstm.LSTM or nplstm.GRU whose layers are the nodes of `specs`, in order."""
    s = specs[0]
    if s["dtype"] not in (np.float32, np.float64):
        raise ValueError(f"load: {_where(s['node'])}: expected float32 or float64 weights, got {s['dtype']}")
    for k, t in enumerate(specs[1:], 1):
        same = [(t[key], s[key]) for key in ("kind", "D", "H", "flags", "dtype")]
        if any(a != b for a, b in same) or t["I"] != s["D"] * s["H"]:
            raise ValueError(f"load: {_where(t['node'])} cannot be layer {k} of one nplstm {s['kind']}: expected "
                             f"{s['kind']} D={s['D']} H={s['H']} {s['flags']} on {s['D'] * s['H']} inputs, got "
                             f"{t['kind']} D={t['D']} H={t['H']} {t['flags']} on {t['I']}")
    options = dict(num_layers=len(specs), bidirectional=s["D"] == 2, dtype=s["dtype"])
    layer = GRU(s["I"], s["H"], **options) if s["kind"] == "GRU" else LSTM(s["I"], s["H"], **options, **s["flags"])
    for k, t in enumerate(specs):
        for d, p in enumerate(t["params"]):
            layer.params.update({layer.config.prefix(k, d) + name: v.astype(s["dtype"]) for name, v in p.items()})
    return layer


def _head(graph, consts, dtype) -> Linear | None:
    """The one MatMul (+ Add of a constant) or Gemm of the graph as a Linear head; None if there is none."""
    nodes = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    if not nodes:
        return None
    if len(nodes) > 1:
        raise ValueError(f"load: expected one MatMul or Gemm (nplstm.Model's single Linear head), got "
                         f"{len(nodes)}: {', '.join(_where(n) for n in nodes)}")
    node = nodes[0]
    if node.op_type == "Gemm":
        a = _attrs(node)
        if a.get("transA", 0):
            raise ValueError(f"load: {_where(node)} has transA=1; expected the features as its first input A")
        W = _const(node, consts, 1, "B")
        W = a.get("alpha", 1.0) * (W.T if a.get("transB", 0) else W)
        C = _const(node, consts, 2, "C", False)
        b = np.zeros(W.shape[1]) if C is None else a.get("beta", 1.0) * np.broadcast_to(C, W.shape[1])
    else:
        W = _const(node, consts, 1, "B")
        adds = [n for n in graph.node if n.op_type == "Add" and node.output[0] in n.input]
        other = [i for n in adds for i in n.input if i != node.output[0] and i in consts]
        b = np.broadcast_to(consts[other[0]], W.shape[1]) if other else np.zeros(W.shape[1])
    head = Linear(W.shape[0], W.shape[1], dtype=dtype)
    head.params = {"W": np.ascontiguousarray(W, dtype), "b": np.array(b, dtype)}
    return head


# --- running the graph in NumPy (the probe) ------------------------------------------------------

def _axes(node, attrs, values, k=1):
    axes = attrs.get("axes")
    if axes is None and len(node.input) > k and node.input[k]:
        axes = values[node.input[k]].tolist()
    return axes


def _slice(node, attrs, values, x):
    if "starts" in attrs:                    # opset < 10: attributes
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = (values[node.input[k]].tolist() for k in (1, 2))
        axes, steps = (values[node.input[k]].tolist() if len(node.input) > k and node.input[k] else None
                       for k in (3, 4))
    index = [slice(None)] * x.ndim
    for j, axis in enumerate(axes if axes is not None else range(len(starts))):
        index[axis] = slice(starts[j], ends[j], steps[j] if steps else 1)
    return x[tuple(index)]


def _reshape(x, shape, allowzero):
    shape = [x.shape[j] if s == 0 and not allowzero else s for j, s in enumerate(shape.tolist())]
    return x.reshape(shape)


def _run_recurrent(node, spec, values):
    """An LSTM or GRU node computed by a one-layer nplstm object: its outputs Y, Y_h (and Y_c) in ONNX's layout."""
    x = values[node.input[0]]
    x = x if spec["layout"] else x.transpose(1, 0, 2)   # layout 0: (T, B, I); nplstm is batch-first
    for k in (5, 6):
        if len(node.input) > k and node.input[k] and values[node.input[k]].any():
            raise ValueError(f"load: {_where(node)} has a nonzero {('initial_h', 'initial_c')[k - 5]}; expected "
                             "zero initial states (nplstm's forward takes the state)")
    lengths = values[node.input[4]].astype(np.int64) if len(node.input) > 4 and node.input[4] else None
    y, state = _build([spec]).forward(np.ascontiguousarray(x, spec["dtype"]), lengths=lengths)
    B, T, D = y.shape[0], y.shape[1], spec["D"]
    Y = y.reshape(B, T, D, spec["H"])        # layout 1: (B, T, D, H)
    states = list(state) if isinstance(state, tuple) else [state]   # each (D, B, H)
    if not spec["layout"]:
        return [Y.transpose(1, 2, 0, 3)] + states                   # (T, D, B, H), (D, B, H)
    return [Y] + [s.transpose(1, 0, 2) for s in states]             # (B, T, D, H), (B, D, H)


def _run(graph, consts, feeds, specs):
    """Every node of the graph, in order, on NumPy arrays -> the value of the graph's first output.
    specs: {index of a recurrent node in graph.node: its spec}."""
    from onnx import helper, numpy_helper
    values = {**consts, **feeds}
    for j, node in enumerate(graph.node):
        a, x = _attrs(node), [values.get(i) for i in node.input]
        op = node.op_type
        if op in ("LSTM", "GRU"):
            out = _run_recurrent(node, specs[j], values)
        elif op == "Constant":
            continue                         # already in consts
        elif op == "ConstantOfShape":
            fill = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
            out = [np.full(x[0].astype(int).tolist(), fill.reshape(-1)[0], fill.dtype)]
        else:
            out = [{"Identity": lambda: x[0],
                    "Cast": lambda: x[0].astype(helper.tensor_dtype_to_np_dtype(a["to"])),
                    "Transpose": lambda: np.transpose(x[0], a.get("perm")),
                    "Shape": lambda: np.array(x[0].shape[a.get("start", 0):a.get("end")], np.int64),
                    "Gather": lambda: np.take(x[0], x[1], axis=a.get("axis", 0)),
                    "Unsqueeze": lambda: np.expand_dims(x[0], tuple(_axes(node, a, values))),
                    "Squeeze": lambda: np.squeeze(x[0], None if (ax := _axes(node, a, values)) is None else tuple(ax)),
                    "Reshape": lambda: _reshape(x[0], x[1], a.get("allowzero", 0)),
                    "Slice": lambda: _slice(node, a, values, x[0]),
                    "Concat": lambda: np.concatenate(x, axis=a["axis"]),
                    "Expand": lambda: np.broadcast_to(x[0], np.broadcast_shapes(x[0].shape, tuple(x[1]))).copy(),
                    "MatMul": lambda: x[0] @ x[1],
                    "Gemm": lambda: _gemm(a, *x),
                    "Add": lambda: x[0] + x[1]}[op]()]
        values.update(zip(node.output, out))
    return values[graph.output[0].name]


def _gemm(a, A, B, C=None):
    A, B = (A.T if a.get("transA", 0) else A), (B.T if a.get("transB", 0) else B)
    return a.get("alpha", 1.0) * (A @ B) + (0 if C is None else a.get("beta", 1.0) * C)


def _probe_input(graph, consts, I, dtype) -> tuple[str, np.ndarray, str | None]:
    """The graph's sequence input, a probe value for it (declared sizes, or distinct ones), and the name of
    its lengths input (integers (B,), the recurrent nodes' sequence_lens) or None."""
    inputs = [v for v in graph.input if v.name not in consts]
    lens = [v for v in inputs if v.type.tensor_type.elem_type in (6, 7) and len(v.type.tensor_type.shape.dim) == 1]
    if len(inputs) - len(lens[:1]) != 1:
        raise ValueError(f"load: expected one graph input, the sequence (B, T, I) or (T, B, I), and at most one of "
                         f"lengths (B,), got {len(inputs)}: {', '.join(v.name for v in inputs)}")
    v = next(v for v in inputs if v not in lens[:1])
    if v.type.tensor_type.elem_type not in (1, 11):          # FLOAT, DOUBLE
        raise ValueError(f"load: graph input {v.name!r}: expected float sequences, got ONNX element type "
                         f"{v.type.tensor_type.elem_type} (token ids need an embedding, which load does not read)")
    dims = [d.dim_value or None for d in v.type.tensor_type.shape.dim]
    if len(dims) != 3:
        raise ValueError(f"load: graph input {v.name!r}: expected 3 dimensions, got {len(dims)}")
    free = iter(n for n in (3, 5, 2, 7) if n not in dims)
    shape = [d if d else next(free) for d in dims[:2]] + [I]
    return v.name, np.random.default_rng(0).standard_normal(shape).astype(dtype), lens[0].name if lens else None


def load(path) -> LSTM | GRU | Model:
    """An nplstm.LSTM, nplstm.GRU or nplstm.Model computing what an ONNX graph computes.

    path: a .onnx file (or an onnx.ModelProto) whose nodes are LSTM or GRU operators, at most one MatMul
    (+ Add) or Gemm head, and plumbing (Transpose, Squeeze, Unsqueeze, Reshape, Slice, Gather, Concat,
    Shape, Expand, Constant, ConstantOfShape, Cast, Identity); weights in initializers or Constant nodes;
    one graph input, the sequence, and optionally a second, its lengths (B,), fed to the nodes'
    sequence_lens (nplstm's `lengths`); zero initial states. The result is batch-first, as nplstm is: for
    a time-major graph (torch's batch_first=False) feed it x.transpose(1, 0, 2).
    Anything else -> ValueError naming the first thing nplstm does not compute.
    """
    import onnx
    from onnx import numpy_helper

    model = path if isinstance(path, onnx.ModelProto) else onnx.load(str(path))
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type not in SUPPORTED or node.domain not in ("", "ai.onnx"):
            raise ValueError(f"load: unsupported {_where(node)}; nplstm reads LSTM, GRU, a MatMul/Gemm/Add head "
                             "and shape plumbing")
        if node.op_type == "Constant":
            a = _attrs(node)
            if "value" not in a:
                raise ValueError(f"load: {_where(node)}: expected a tensor `value`, got {', '.join(a)}")
            consts[node.output[0]] = numpy_helper.to_array(a["value"])
    recurrent = {j: n for j, n in enumerate(graph.node) if n.op_type in ("LSTM", "GRU")}
    if not recurrent:
        raise ValueError("load: expected at least one LSTM or GRU node, got none")
    by_index = {j: (_lstm_spec if n.op_type == "LSTM" else _gru_spec)(n, consts) for j, n in recurrent.items()}
    specs = list(by_index.values())
    rnn = _build(specs)
    head = _head(graph, consts, rnn.dtype)
    name, x, lens_name = _probe_input(graph, consts, rnn.config.input_size, rnn.dtype)
    candidates = [rnn] if head is None else [Model(rnn, head, many_to_one=m) for m in (False, True)]
    failures = []
    for batch_first in (True, False):        # the graph's input: (B, T, I) or (T, B, I)
        xb = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
        B, T = xb.shape[:2]
        lengths = None if lens_name is None else np.r_[T, np.random.default_rng(1).integers(1, T + 1, B - 1)]
        try:
            expected = _run(graph, consts, {name: x, **({lens_name: lengths} if lengths is not None else {})},
                            by_index)
        except (ValueError, IndexError, KeyError, TypeError) as e:   # numpy's, on the wrong layout (AxisError too)
            if str(e).startswith("load:"):
                raise
            failures.append(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        scale = max(1.0, float(np.abs(expected).max()))
        for candidate in candidates:
            out = candidate.forward(xb, lengths=lengths)
            out = out if head is not None else out[0]
            if out.ndim == 3 and not batch_first:
                out = out.transpose(1, 0, 2)
            if out.shape == expected.shape and np.abs(out - expected).max() <= PROBE_TOL * scale:
                return candidate
    if len(failures) == 2:
        raise ValueError(f"load: the graph's plumbing fails on a probe input {x.shape}: {failures[0]}")
    raise ValueError(f"load: the graph's wiring of its {len(specs)} {specs[0]['kind']} node(s) and "
                     f"{'head' if head is not None else 'outputs'} computes no nplstm "
                     f"{'Model (many-to-many or many-to-one on the final states h_n)' if head else specs[0]['kind']} "
                     f"(e.g. a bidirectional head on y[:, -1] sees the reverse direction after one step)")
