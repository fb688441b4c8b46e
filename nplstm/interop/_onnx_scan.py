"""The ONNX graph builder behind interop/onnx.py, and the general LSTM cell as a Scan over elementary ops.

ONNX's LSTM operator has one sigmoid for all gates, diagonal peepholes only and no gate recurrence,
so every other cell nplstm trains (full peepholes, a removed gate, an identity activation, FGR) runs
as a Scan whose body is reference.lstm_step_forward, op for op. Inside the graph arrays are
time-major, (T, B, ·), and gate blocks along 4H are nplstm's i, f, g, o. onnx is imported inside
the functions, so importing this module loads nothing but NumPy.
"""
from __future__ import annotations

import itertools
from typing import Callable, NamedTuple

import numpy as np

from ..variants import Variant


class GraphBuilder:
    """The nodes and initializers of one ONNX graph. Value names are unique across a graph and the
    bodies made with `body()` (a Scan body may read outer values, but must not shadow them)."""

    def __init__(self, counter=None):
        self.nodes: list = []
        self.initializers: list = []
        self._count = itertools.count() if counter is None else counter
        self._memo: dict = {}

    def name(self, hint: str) -> str:
        return f"{hint}_{next(self._count)}"

    def const(self, hint: str, array) -> str:
        """An initializer holding `array` (as it is: the caller picks the dtype) -> its name."""
        from onnx import numpy_helper
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, hint: str | None = None, **attrs):
        """Append one node -> its output name (a list of names when outputs > 1)."""
        from onnx import helper
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def memo(self, key, make):
        """make() the first time `key` is asked for, the same name after: shared shapes, masks, zeros."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def body(self) -> GraphBuilder:
        """A builder for a subgraph (a Scan body) whose names cannot clash with this graph's."""
        return GraphBuilder(self._count)

    def ints(self, values) -> str:
        """A shared int64 initializer: axes, split sizes, shapes."""
        values = tuple(int(v) for v in values)
        return self.memo(("ints", values), lambda: self.const("ints", np.array(values, np.int64)))


class Batch(NamedTuple):
    """Names of the per-batch values a recurrent layer needs, all computed from the time-major input."""
    x: str                   # (T, B, ·) any input of the batch, to read T and B from
    lengths: str | None      # (B,) int32 sequence lengths, None when every sequence runs all T steps


def zeros(g: GraphBuilder, batch: Batch, width: int, value: float = 0.0) -> str:
    """(B, width) float32 filled with value, B read from the input at run time."""
    from onnx import TensorProto, helper

    def make():
        B = g.memo("B", lambda: g.op("Gather", g.memo("shape", lambda: g.op("Shape", batch.x)), g.ints([1]),
                                     axis=0, hint="B"))       # (1,) the batch size
        shape = g.op("Concat", B, g.ints([width]), axis=0)
        return g.op("ConstantOfShape", shape, hint="full",
                    value=helper.make_tensor("value", TensorProto.FLOAT, [1], [value]))
    return g.memo(("full", width, value), make)


def step_mask(g: GraphBuilder, batch: Batch) -> str:
    """(T, B, 1) bool: t < length, true at the steps a sequence really has."""
    from onnx import TensorProto

    def make():
        shape = g.memo("shape", lambda: g.op("Shape", batch.x))
        zero, one = g.const("zero", np.array(0, np.int64)), g.const("one", np.array(1, np.int64))
        T = g.op("Gather", shape, zero, axis=0, hint="T")                    # a scalar: Range wants one
        t = g.op("Range", zero, T, one)                                       # (T,) 0, 1, ..., T-1
        lengths = g.op("Cast", batch.lengths, to=TensorProto.INT64)
        running = g.op("Less", g.op("Unsqueeze", t, g.ints([1])), lengths)  # (T, 1) < (B,) -> (T, B)
        return g.op("Unsqueeze", running, g.ints([2]), hint="mask")
    return g.memo("mask", make)


def scan_lstm_layer(g: GraphBuilder, x: str, params: dict, pre: Callable[[int], str], v: Variant, H: int, D: int,
                    batch: Batch):
    """One layer, both directions, as Scans. x: (T, B, in) -> y (T, B, D·H), h_n and c_n (D, B, H).

    params: float32 arrays keyed as in stack.LSTMConfig ("l0.W", ...); pre(d) gives a direction's prefix.
    The reverse direction scans from step T-1 down to 0. A sequence's state stays at its zero start
    through its padded steps (t >= length), so it really starts at its own last step: the same as
    stack_forward's run on each sequence reversed within its own length.
    """
    ys, hs, cs = [], [], []
    for d in range(D):
        p = {k[len(pre(d)):]: a for k, a in params.items() if k.startswith(pre(d))}
        xw = g.op("Add", g.op("MatMul", x, g.const("W", p["W"])), g.const("b", p["b"]))  # (T, B, 4H): x W + b

        def weight(name, d=d, p=p):          # an initializer of the outer graph, made once, when first read
            return g.memo(("w", pre(d), name), lambda: g.const(name, p[name]))
        y, h, c = _scan_direction(g, xw, weight, v, H, batch, backwards=d == 1)
        ys.append(y)
        hs.append(g.op("Unsqueeze", h, g.ints([0])))
        cs.append(g.op("Unsqueeze", c, g.ints([0])))
    if D == 1:
        return ys[0], hs[0], cs[0]
    return g.op("Concat", *ys, axis=2), g.op("Concat", *hs, axis=0), g.op("Concat", *cs, axis=0)


def _scan_direction(g: GraphBuilder, xw: str, weight, v: Variant, H: int, batch: Batch, backwards: bool):
    """The recurrence over xw (T, B, 4H) -> y (T, B, H) (zero past each length), h_n, c_n (B, H)."""
    from onnx import TensorProto, helper

    masked = batch.lengths is not None
    body = g.body()
    vi = helper.make_tensor_value_info
    h_prev, c_prev, xw_t = body.name("h_prev"), body.name("c_prev"), body.name("xw_t")
    inputs = [vi(h_prev, TensorProto.FLOAT, [None, H]), vi(c_prev, TensorProto.FLOAT, [None, H])]
    gates_prev = None
    if v.gate_recurrence:
        gates_prev = body.name("gates_prev")
        inputs.append(vi(gates_prev, TensorProto.FLOAT, [None, 3 * H]))
    inputs.append(vi(xw_t, TensorProto.FLOAT, [None, 4 * H]))
    if masked:
        m_t = body.name("m_t")
        inputs.append(vi(m_t, TensorProto.BOOL, [None, 1]))
    ones = zeros(g, batch, H, 1.0) if v.gate_recurrence and not (v.input_gate and v.forget_gate and v.output_gate) \
        else None                            # FGR reads a removed gate's constant 1
    h, c, gates = _cell(body, g, xw_t, h_prev, c_prev, gates_prev, weight, v, H, ones)
    states = [h, c] + ([gates] if gates is not None else [])
    prev = [h_prev, c_prev] + ([gates_prev] if gates_prev is not None else [])
    if masked:                               # a finished sequence keeps its state; its outputs are 0
        states = [body.op("Where", m_t, s, s_prev, hint="kept") for s, s_prev in zip(states, prev)]
        y_t = body.op("Where", m_t, h, g.memo("fzero", lambda: g.const("fzero", np.array(0, np.float32))), hint="y_t")
    else:
        y_t = body.op("Identity", h, hint="y_t")
    widths = [H, H, 3 * H][:len(states)]
    outputs = [vi(s, TensorProto.FLOAT, [None, w]) for s, w in zip(states, widths)]
    outputs.append(vi(y_t, TensorProto.FLOAT, [None, H]))
    graph = helper.make_graph(body.nodes, body.name("lstm_step"), inputs, outputs)
    init = [zeros(g, batch, w) for w in widths]   # h_0 = c_0 = 0; no gates before the first step
    scans = [xw] + ([step_mask(g, batch)] if masked else [])
    direction = [int(backwards)] * len(scans)
    out = g.op("Scan", *init, *scans, outputs=len(init) + 1, hint="scan", body=graph, num_scan_inputs=len(scans),
               scan_input_directions=direction, scan_output_directions=[int(backwards)])
    return out[-1], out[0], out[1]


def _cell(b: GraphBuilder, g: GraphBuilder, xw_t, h_prev, c_prev, gates_prev, const, v: Variant, H: int, ones):
    """reference.lstm_step_forward in ONNX ops, written into the body b (weights live in the outer g).

    xw_t: (B, 4H) x_t W + b; h_prev, c_prev: (B, H); gates_prev: (B, 3H) [i, f, o]_{t-1} with FGR.
    const(name) -> the outer initializer of one weight ("R", "p_i", ...).
    Returns h, c (B, H) and, with FGR, [i, f, o] (B, 3H) for the next step.
    """
    def peek(c, name):                       # c ⊙ p (diagonal) or c P (full)
        return b.op("Mul" if v.peephole == "diagonal" else "MatMul", c, const(name))

    a = b.op("Add", xw_t, b.op("MatMul", h_prev, const("R")), hint="a")   # a = x W + h_prev R + b
    a_i, a_f, a_g, a_o = b.op("Split", a, g.ints([H] * 4), axis=1, outputs=4, hint="a")
    use_f = v.forget_gate and not v.coupled
    if v.gate_recurrence:                    # FGR: [a_i, a_f, a_o] += [i, f, o]_{t-1} R_gates
        r_i, r_f, r_o = b.op("Split", b.op("MatMul", gates_prev, const("R_gates")), g.ints([H] * 3), axis=1,
                             outputs=3, hint="a_gates")
        a_i, a_f, a_o = b.op("Add", a_i, r_i), b.op("Add", a_f, r_f), b.op("Add", a_o, r_o)
    if v.peephole is not None:               # i and f peek at c_{t-1}
        a_i = b.op("Add", a_i, peek(c_prev, "p_i")) if v.input_gate else a_i
        a_f = b.op("Add", a_f, peek(c_prev, "p_f")) if use_f else a_f
    i = b.op("Sigmoid", a_i, hint="i") if v.input_gate else None       # None: the gate is ≡ 1
    if v.coupled:
        f = b.op("Sub", g.memo("fone", lambda: g.const("fone", np.array(1, np.float32))), i, hint="f")  # f = 1 - i
    else:
        f = b.op("Sigmoid", a_f, hint="f") if v.forget_gate else None
    g_t = b.op("Tanh", a_g, hint="g") if v.input_activation == "tanh" else a_g  # NIAF: g = a_g
    kept = b.op("Mul", f, c_prev) if f is not None else c_prev             # f ⊙ c_{t-1}
    c = b.op("Add", kept, b.op("Mul", i, g_t) if i is not None else g_t, hint="c")  # c = f c_{t-1} + i g
    if v.peephole is not None and v.output_gate:                          # o peeks at the new c_t
        a_o = b.op("Add", a_o, peek(c, "p_o"))
    o = b.op("Sigmoid", a_o, hint="o") if v.output_gate else None
    act_c = b.op("Tanh", c) if v.output_activation == "tanh" else c       # NOAF: h = o c
    h = b.op("Mul", o, act_c, hint="h") if o is not None else b.op("Identity", act_c, hint="h")
    gates = None
    if v.gate_recurrence:                    # a removed gate feeds its constant 1 to R_gates
        gates = b.op("Concat", *(q if q is not None else ones for q in (i, f, o)), axis=1, hint="gates")
    return h, c, gates
