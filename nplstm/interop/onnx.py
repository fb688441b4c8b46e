"""Export an nplstm.LSTM, nplstm.GRU or nplstm.Model to ONNX (`pip install onnx`; run it with onnxruntime).

Cells the ONNX operators express become those operators, so a runtime's fused kernels run them:
ONNX LSTM (gate order i, o, f, c; diagonal peepholes P = [p_i, p_o, p_f]; CIFG as input_forget=1)
and ONNX GRU (gate order z, r, h; linear_before_reset=1 is torch's and nplstm's formula). Every
other LSTM variant (full peepholes, NIG, NFG, NOG, NIAF, NOAF, FGR, any mix) becomes a Scan over
elementary ops that computes reference.lstm_step_forward (interop/_onnx_scan.py).

The graph is batch-first at its boundary, like nplstm, with dynamic batch and time axes:
inputs "x" (B, T, I) float32 (or "tokens" (B, T) int64 for a model with an embedding) and, with
lengths=True, "sequence_lens" (B,) int32. Outputs: an LSTM "y" (B, T, D·H), "h_n", "c_n"
(L·D, B, H); a GRU "y", "h_n"; a Model "out" (B, T, O), or (B, O) if many_to_one. onnx is imported
inside the functions, never when nplstm is imported.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._checks import check_params
from ..gru import GRU
from ..layers import LSTM, Model
from ..lstm import F, G, I, O
from ._onnx_scan import Batch, GraphBuilder, scan_lstm_layer

MIN_OPSET = 13       # Split, Squeeze and Unsqueeze take their sizes and axes as inputs from opset 13 on
# The default: every op used here has kept its meaning since opset 14 (later versions add types only),
# and 17 loads in every ONNX Runtime since 1.11 and in the other runtimes of the last few years.
DEFAULT_OPSET = 17


def export(model_or_layer, path, *, opset: int | None = None, lengths: bool | None = None, dtype=None) -> Path:
    """Write an nplstm.LSTM, nplstm.GRU or nplstm.Model as an ONNX model at `path` -> that Path.

    opset: the ONNX opset, MIN_OPSET to onnx's newest (None: DEFAULT_OPSET).
    lengths: add the input "sequence_lens" (B,) int32, each in [1, T] (None: True for a Model only).
    dtype: None keeps a float32 model's weights; np.float32 also exports a float64 model, cast.
    """
    import onnx
    from onnx import helper

    layer, model = _parts(model_or_layer)
    path, opset = _check_path(path), _check_opset(opset)
    if lengths is None:
        lengths = model is not None
    if not isinstance(lengths, (bool, np.bool_)):
        raise ValueError(f"lengths: expected True or False, got {lengths!r}")
    params = _float32_params(layer, model, dtype)
    g = GraphBuilder()
    inputs, x = _graph_inputs(g, layer, model, params, lengths)
    batch = Batch(x, "sequence_lens" if lengths else None)
    y, h_n, c_n = _recurrent(g, x, layer, {k[len("lstm."):]: a for k, a in params.items() if k.startswith("lstm.")},
                             batch)
    if model is None:
        outputs = _layer_outputs(g, layer.config, y, h_n, c_n)
    else:
        outputs = _model_outputs(g, model, y, h_n, params)
    graph = helper.make_graph(g.nodes, f"nplstm_{type(model_or_layer).__name__}", inputs, outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="nplstm",
                                   ir_version=helper.find_min_ir_version_for(opsets))
    helper.set_model_props(onnx_model, {"nplstm.kind": type(model_or_layer).__name__,
                                        "nplstm.config": json.dumps(_describe(layer, model))})
    onnx.checker.check_model(onnx_model)
    try:
        onnx.save(onnx_model, str(path))
    except OSError as err:
        raise ValueError(f"path: cannot write {str(path)!r} ({err.strerror or err})") from None
    return path


def native(layer) -> bool:
    """True if ONNX's LSTM (or GRU) operator computes this layer's cell, False if it needs a Scan."""
    if isinstance(layer, GRU):
        return True
    v = layer.config.variant
    return (v.peephole in ("diagonal", None) and v.input_gate and v.forget_gate and v.output_gate
            and v.input_activation == "tanh" and v.output_activation == "tanh" and not v.gate_recurrence)


def _graph_inputs(g: GraphBuilder, layer, model, params: dict, lengths: bool):
    """The graph's inputs and what the recurrent layer reads: x (T, B, I) float32, time-major."""
    from onnx import TensorProto, helper
    embedding, scaler = getattr(model, "embedding", None), getattr(model, "scaler", None)
    if embedding is not None:                # int tokens (B, T) -> (B, T, E), rows of the embedding
        inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"])]
        x = g.op("Gather", g.const("embedding", params["embedding.W"]), "tokens", axis=0)
    else:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", layer.config.input_size])]
        x = "x"
        if scaler is not None:               # x' = (x - x_mean) / x_std, as predict standardises (not token ids)
            x = g.op("Div", g.op("Sub", x, g.const("x_mean", params["scaler.x_mean"])),
                     g.const("x_std", params["scaler.x_std"]))
    if lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    return inputs, g.op("Transpose", x, perm=[1, 0, 2], hint="x_tbi")


def _layer_outputs(g: GraphBuilder, cfg, y: str, h_n: str, c_n: str | None) -> list:
    """A layer's outputs, as its forward returns them: y (B, T, D·H), h_n [and c_n] (L·D, B, H)."""
    LD, DH = cfg.num_layers * cfg.num_directions, cfg.num_directions * cfg.hidden_size
    names, values = ["y", "h_n"], [g.op("Transpose", y, perm=[1, 0, 2]), h_n]
    if c_n is not None:
        names.append("c_n")
        values.append(c_n)
    shapes = [["batch", "time", DH]] + [[LD, "batch", cfg.hidden_size]] * (len(names) - 1)
    return _name_outputs(g, values, names, shapes)


def _model_outputs(g: GraphBuilder, model: Model, y: str, h_n: str, params: dict) -> list:
    """A Model's output "out": the head's, in the target's own units when the model has a scaler for them."""
    out = _head(g, y, h_n, model, params)
    if "scaler.y_mean" in params:           # out * y_std + y_mean, as predict undoes the standardisation
        out = g.op("Add", g.op("Mul", out, g.const("y_std", params["scaler.y_std"])),
                   g.const("y_mean", params["scaler.y_mean"]))
    width = model.head.params["W"].shape[1]  # O
    return _name_outputs(g, [out], ["out"], [["batch", width] if model.many_to_one else ["batch", "time", width]])


def _recurrent(g: GraphBuilder, x: str, layer, params: dict, batch: Batch):
    """All layers. x: (T, B, I) -> y (T, B, D·H) of the top layer, h_n (L·D, B, H), c_n (L·D, B, H) or None."""
    cfg = layer.config
    H, D = cfg.hidden_size, cfg.num_directions
    hs, cs = [], []
    for k in range(cfg.num_layers):
        if isinstance(layer, GRU):
            x, h = _gru_op(g, x, params, cfg, k, batch.lengths)
            c = None
        elif native(layer):
            x, h, c = _lstm_op(g, x, params, cfg, k, batch.lengths)
        else:
            x, h, c = scan_lstm_layer(g, x, params, lambda d, k=k: cfg.prefix(k, d), cfg.variant, H, D, batch)
        hs.append(h)
        cs.append(c)
    cat = (lambda names: names[0] if len(names) == 1 else g.op("Concat", *names, axis=0))
    return x, cat(hs), None if cs[0] is None else cat(cs)


def _blocks(M: np.ndarray, order, n: int) -> np.ndarray:
    """M's n column blocks along the last axis, rearranged into `order` (indices of nplstm's blocks)."""
    parts = np.split(M, n, axis=-1)
    return np.concatenate([parts[q] for q in order], axis=-1)


def _lstm_op(g: GraphBuilder, x: str, params: dict, cfg, k: int, lens: str | None):
    """One layer as ONNX's LSTM: x (T, B, in) -> y (T, B, D·H), Y_h, Y_c (D, B, H)."""
    iofc = (I, O, F, G)                      # ONNX's gate order, in nplstm's block indices
    H, D = cfg.hidden_size, cfg.num_directions
    pre = [cfg.prefix(k, d) for d in range(D)]
    W = np.stack([_blocks(params[p + "W"], iofc, 4).T for p in pre])   # (D, 4H, in)
    R = np.stack([_blocks(params[p + "R"], iofc, 4).T for p in pre])   # (D, 4H, H)
    B = np.stack([np.concatenate([_blocks(params[p + "b"], iofc, 4), np.zeros(4 * H, np.float32)]) for p in pre])
    inputs = [x, g.const("W", W), g.const("R", R), g.const("B", B), lens or ""]   # B = [Wb, Rb], Rb = 0
    if cfg.peephole == "diagonal":
        P = np.stack([np.concatenate([params[p + "p_i"], params[p + "p_o"], params[p + "p_f"]]) for p in pre])
        inputs += ["", "", g.const("P", P)]  # no initial_h, initial_c: zeros
    while inputs[-1] == "":
        inputs.pop()
    Y, Y_h, Y_c = g.op("LSTM", *inputs, outputs=3, hint="lstm", hidden_size=H,
                       direction="bidirectional" if D == 2 else "forward", input_forget=int(cfg.coupled))
    return _merge_directions(g, Y, D), Y_h, Y_c


def _gru_op(g: GraphBuilder, x: str, params: dict, cfg, k: int, lens: str | None):
    """One layer as ONNX's GRU: x (T, B, in) -> y (T, B, D·H), Y_h (D, B, H)."""
    zrh = (1, 0, 2)                          # ONNX's z, r, h in nplstm's r, z, n block indices
    H, D = cfg.hidden_size, cfg.num_directions
    pre = [cfg.prefix(k, d) for d in range(D)]
    W = np.stack([_blocks(params[p + "W"], zrh, 3).T for p in pre])    # (D, 3H, in)
    R = np.stack([_blocks(params[p + "R"], zrh, 3).T for p in pre])    # (D, 3H, H)
    # Wb = b in z, r, h order (h: b_in); Rb = [0, 0, b_hn]: r scales h_prev R_h + Rb_h, as b_hn in nplstm
    B = np.stack([np.concatenate([_blocks(params[p + "b"], zrh, 3), np.zeros(2 * H, np.float32), params[p + "b_hn"]])
                  for p in pre])
    inputs = [x, g.const("W", W), g.const("R", R), g.const("B", B)] + ([lens] if lens else [])
    Y, Y_h = g.op("GRU", *inputs, outputs=2, hint="gru", hidden_size=H,
                  direction="bidirectional" if D == 2 else "forward", linear_before_reset=1)
    return _merge_directions(g, Y, D), Y_h


def _merge_directions(g: GraphBuilder, Y: str, D: int) -> str:
    """ONNX's Y (T, D, B, H) -> (T, B, D·H), the directions side by side as nplstm concatenates them."""
    if D == 1:
        return g.op("Squeeze", Y, g.ints([1]))
    return g.op("Reshape", g.op("Transpose", Y, perm=[0, 2, 1, 3]), g.ints([0, 0, -1]))


def _head(g: GraphBuilder, y: str, h_n: str, model: Model, params: dict) -> str:
    """The Linear head: on every step of y (T, B, D·H) -> (B, T, O), or many_to_one on the top layer's
    final states h_n[-D:] (D, B, H), concatenated per sequence as Model.forward does -> (B, O)."""
    W, b = g.const("head_W", params["head.W"]), g.const("head_b", params["head.b"])
    if not model.many_to_one:
        out = g.op("Add", g.op("MatMul", y, W), b)                           # (T, B, O)
        return g.op("Transpose", out, perm=[1, 0, 2])
    cfg = model.lstm.config
    D, LD = cfg.num_directions, cfg.num_layers * cfg.num_directions
    top = h_n if LD == D else g.op("Slice", h_n, g.ints([LD - D]), g.ints([LD]), g.ints([0]))
    feature = g.op("Reshape", g.op("Transpose", top, perm=[1, 0, 2]), g.ints([0, -1]))  # (B, D·H): [fwd, rev]
    return g.op("Add", g.op("MatMul", feature, W), b)


def _name_outputs(g: GraphBuilder, values: list, names: list, shapes: list) -> list:
    """Identity nodes that give the graph's results their public names -> the outputs' value infos."""
    from onnx import TensorProto, helper
    for value, name in zip(values, names):
        g.nodes.append(helper.make_node("Identity", [value], [name]))
    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)]


def _parts(obj):
    """(recurrent layer, Model or None) of what export was given; ValueError for anything else."""
    if isinstance(obj, Model):
        return obj.lstm, obj
    if isinstance(obj, (LSTM, GRU)):
        return obj, None
    raise ValueError(f"export: expected an nplstm.LSTM, nplstm.GRU or nplstm.Model, got {type(obj).__name__}")


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ValueError(f"path: expected a file path (str or os.PathLike), got {path!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path: expected a file path, got the directory {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"path: expected a file in an existing directory, got {str(path)!r} "
                         f"({str(path.parent)!r} does not exist)")
    return path


def _check_opset(opset) -> int:
    import onnx.defs
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return DEFAULT_OPSET
    if not isinstance(opset, (int, np.integer)) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset: expected an integer from {MIN_OPSET} to {newest} (this onnx's newest), got {opset!r}")
    return int(opset)


def _float32_params(layer, model, dtype) -> dict[str, np.ndarray]:
    """Every array the graph holds, checked and as float32, keyed "lstm.*", "head.*", "embedding.*", "scaler.*"."""
    try:
        wanted = None if dtype is None else np.dtype(dtype)
    except TypeError:
        wanted = False
    if wanted not in (None, np.float32):
        raise ValueError(f"dtype: expected None or np.float32, got {dtype!r}")
    if layer.dtype != np.float32 and dtype is None:
        raise ValueError(f"export: this model is {layer.dtype.name}, and ONNX Runtime's LSTM kernel is float32 only; "
                         "pass dtype=np.float32 to export a float32 copy (the weights rounded to float32)")
    check_params(layer.params, layer.config.param_shapes(), layer.dtype, layer=type(layer).__name__)
    arrays = {"lstm." + k: a for k, a in layer.params.items()}
    if model is not None:
        arrays.update({"head." + k: model.head.params[k] for k in ("W", "b")})
        embedding, scaler = getattr(model, "embedding", None), getattr(model, "scaler", None)
        if embedding is not None:
            arrays["embedding.W"] = embedding.params["W"]
        if scaler is not None:               # x's statistics only where x is vectors, y's only for regression
            names = (("x_mean", "x_std") if embedding is None else ()) + ("y_mean", "y_std")
            arrays.update({"scaler." + k: getattr(scaler, k) for k in names if getattr(scaler, k, None) is not None})
    out = {}
    for key, a in arrays.items():
        a = np.asarray(a)
        shape = _expected_shapes(layer, model).get(key, a.shape)
        if a.shape != shape:
            raise ValueError(f"export: {key} expected shape {shape}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"export: {key} contains NaN or Inf; a model that diverged cannot be exported")
        out[key] = a.astype(np.float32)
    return out


def _expected_shapes(layer, model) -> dict[str, tuple]:
    """The shapes of the arrays outside the recurrent layer (its own are LSTMConfig's param_shapes)."""
    I, DH = layer.config.input_size, layer.config.hidden_size * layer.config.num_directions
    if model is None:
        return {}
    width = model.head.params["W"].shape[-1]
    shapes = {"head.W": (DH, width), "head.b": (width,), "scaler.x_mean": (I,), "scaler.x_std": (I,),
              "scaler.y_mean": (width,), "scaler.y_std": (width,)}
    if getattr(model, "embedding", None) is not None:
        shapes["embedding.W"] = (model.embedding.params["W"].shape[0], I)
    return shapes


def _describe(layer, model) -> dict:
    """The layer's sizes and flags (and the Model's shape), as JSON for the model's metadata."""
    c = layer.config
    desc = {"cell": "gru" if isinstance(layer, GRU) else "lstm", "input_size": c.input_size,
            "hidden_size": c.hidden_size, "num_layers": c.num_layers, "bidirectional": c.bidirectional}
    if not isinstance(layer, GRU):
        desc.update(c.variant._asdict())
    if model is not None:
        desc.update(output_size=int(model.head.params["W"].shape[1]), many_to_one=bool(model.many_to_one))
    return desc


def load(path):
    """Read an ONNX model back into nplstm (see interop/onnx_import.py)."""
    from .onnx_import import load as _load
    return _load(path)
