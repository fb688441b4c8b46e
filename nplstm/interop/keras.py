"""Move LSTMs, GRUs and whole Models between nplstm and Keras 3 (`pip install keras`, on its torch backend).

keras.layers.LSTM stores kernel (I, 4H), recurrent_kernel (H, 4H) and bias (4H,), gates i, f, c, o along
4H, applied as x W: nplstm's W, R and b as they are. Its recurrent_activation is σ and its `activation`
is both g's and h's, so Keras holds nplstm's NP variant (peephole=None, tanh) and NP with NIAF and NOAF
together (activation="linear"); no peepholes, no removed or coupled gate, no gate recurrence.
keras.layers.GRU with reset_after=True computes torch's GRU, nplstm.GRU: gates z, r, h along 3H where
nplstm has r, z, n; bias (2, 3H) = [input bias, recurrent bias]. The two biases of r and z fold into b;
the recurrent bias of h is b_hn, kept apart because r multiplies it. So Keras -> nplstm -> Keras gives a
GRU's input bias b and a recurrent bias [0, 0, b_hn]: the same function, not the same arrays.
Bidirectional(merge_mode="concat") is a bidirectional layer, forward then backward, as nplstm's D·H
axis; a Sequential of recurrent layers is a stacked one; an Embedding first and a Dense last (with a
Dropout before it) make an nplstm.Model, many-to-one when the last recurrent layer has
return_sequences=False (Keras then outputs the final states, nplstm's h_n, both directions concatenated).
Padding: Keras masks (Masking, Embedding(mask_zero=True)) where nplstm takes `lengths`. For right-padded
batches they agree, the reverse direction included: the backward layer skips the padded steps first, so
it starts at each sequence's last valid step. At padded steps Keras repeats the last output unless
zero_output_for_mask=True (which to_keras sets, and Bidirectional forces); nplstm outputs zeros there.
keras is imported inside these functions (KERAS_BACKEND defaults to "torch"), never by `import nplstm`.
"""
from __future__ import annotations

import os

import numpy as np

from ..gru import GRU
from ..layers import LSTM, Embedding, Linear, Model

KERAS_ACTIVATION = {"tanh": "tanh", "identity": "linear"}   # nplstm's activation -> Keras's name
RZ = [1, 0, 2]   # GRU blocks along 3H: nplstm's r, z, n are Keras's blocks 1, 0, 2 (and back: the same swap)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    return keras


def _swap_rz(a: np.ndarray) -> np.ndarray:
    """(..., 3H) with blocks r, z, n <-> z, r, h: the first two blocks swapped."""
    blocks = np.split(a, 3, axis=-1)
    return np.concatenate([blocks[k] for k in RZ], axis=-1)


def _numpy(variable) -> np.ndarray:
    """A Keras variable's value as a NumPy array of its own (torch's .numpy() would share memory)."""
    return np.array(_keras().ops.convert_to_numpy(variable), copy=True)


def keras_activation(lstm: LSTM) -> str:
    """The `activation` of the keras.layers.LSTM that computes this LSTM; ValueError naming what Keras lacks."""
    c = lstm.config
    lacks = [(c.peephole is not None, f"has no peephole connections; this LSTM has peephole={c.peephole!r}"),
             (not c.input_gate, "always has an input gate; this LSTM has input_gate=False (NIG)"),
             (not c.forget_gate, "always has a forget gate; this LSTM has forget_gate=False (NFG)"),
             (not c.output_gate, "always has an output gate; this LSTM has output_gate=False (NOG)"),
             (c.coupled, "has no coupled input and forget gates; this LSTM has coupled=True (CIFG)"),
             (c.gate_recurrence, "has no recurrence from the gates; this LSTM has gate_recurrence=True (FGR)"),
             (c.input_activation != c.output_activation,
              f"has one `activation` for the cell input and the output; this LSTM has input_activation="
              f"{c.input_activation!r}, output_activation={c.output_activation!r}")]
    for missing, why in lacks:
        if missing:
            raise ValueError(f"keras.layers.LSTM {why}. Only peephole=None with every gate and one activation "
                             "for g and h maps onto it.")
    return KERAS_ACTIVATION[c.input_activation]


# --- nplstm -> Keras -----------------------------------------------------------------------------

def _recurrent_layers(layer: LSTM | GRU, return_sequences: bool) -> list:
    """One Keras layer (Bidirectional around it if D = 2) per nplstm layer, unbuilt."""
    keras, c = _keras(), layer.config
    make = keras.layers.GRU if isinstance(layer, GRU) else keras.layers.LSTM
    options = {"reset_after": True} if isinstance(layer, GRU) else {"activation": keras_activation(layer)}
    out = []
    for k in range(c.num_layers):
        seq = return_sequences or k < c.num_layers - 1
        rnn = make(c.hidden_size, return_sequences=seq, zero_output_for_mask=seq, dtype=layer.dtype.name, **options)
        out.append(keras.layers.Bidirectional(rnn, merge_mode="concat", dtype=rnn.dtype_policy.name)
                   if c.bidirectional else rnn)
    return out


def _cells(rnn) -> list:
    """The cells of a Keras recurrent layer: [cell], or [forward cell, backward cell] of a Bidirectional."""
    if hasattr(rnn, "forward_layer"):
        return [rnn.forward_layer.cell, rnn.backward_layer.cell]
    return [rnn.cell]


def _assign(rnns: list, layer: LSTM | GRU) -> None:
    """Copy nplstm's params into built Keras recurrent layers (as _recurrent_layers made them)."""
    p = layer.params
    for k, rnn in enumerate(rnns):
        for d, cell in enumerate(_cells(rnn)):
            pre = layer.config.prefix(k, d)
            if isinstance(layer, GRU):       # r, z, n -> z, r, h; the recurrent bias holds b_hn alone
                rec_bias = np.concatenate([np.zeros_like(p[pre + "b"][:-len(p[pre + "b_hn"])]), p[pre + "b_hn"]])
                weights = [_swap_rz(p[pre + "W"]), _swap_rz(p[pre + "R"]),
                           np.stack([_swap_rz(p[pre + "b"]), _swap_rz(rec_bias)])]
            else:
                weights = [p[pre + "W"], p[pre + "R"], p[pre + "b"]]
            for variable, value in zip((cell.kernel, cell.recurrent_kernel, cell.bias), weights):
                variable.assign(value)


def to_keras(obj: LSTM | GRU | Model, *, masking: bool = False):
    """An equivalent, built Keras object with the same weights (and dtype).

    nplstm.LSTM or nplstm.GRU of one layer -> keras.layers.LSTM or GRU (return_sequences=True), wrapped
    in Bidirectional if bidirectional; of several layers -> keras.Sequential of them. nplstm.Model ->
    keras.Sequential([Input, [Embedding], recurrent layers, [Dropout], Dense]), the last recurrent layer
    with return_sequences = not many_to_one. Inputs (B, T, I), or int token ids (B, T) with an embedding.
    masking=True: a Sequential that masks padded steps, Masking(0.0) first (or Embedding(mask_zero=True),
    token 0 then meaning padding), so right-padded batches give nplstm's outputs with `lengths`.
    """
    keras = _keras()
    if isinstance(obj, Model):
        rnn_layer, embedding, head = obj.lstm, obj.embedding, obj.head
        rnns = _recurrent_layers(rnn_layer, not obj.many_to_one)
    elif isinstance(obj, (LSTM, GRU)):
        rnn_layer, embedding, head = obj, None, None
        rnns = _recurrent_layers(obj, True)
    else:
        raise ValueError(f"to_keras: expected an nplstm.LSTM, nplstm.GRU or nplstm.Model, got {type(obj).__name__}")
    dtype = rnn_layer.dtype.name
    if head is None and len(rnns) == 1 and not masking:
        rnns[0].build((None, None, rnn_layer.config.input_size))
        _assign(rnns, rnn_layer)
        return rnns[0]
    first = [keras.Input((None,), dtype="int32")] if embedding is not None else \
        [keras.Input((None, rnn_layer.config.input_size), dtype=dtype)]
    if embedding is not None:
        first.append(keras.layers.Embedding(embedding.num_embeddings, embedding.embedding_dim, mask_zero=masking,
                                            dtype=dtype))
    elif masking:
        first.append(keras.layers.Masking(0.0, dtype=dtype))
    last = []
    if head is not None:
        if obj.dropout:
            last.append(keras.layers.Dropout(obj.dropout))
        last.append(keras.layers.Dense(head.out_features, dtype=dtype))
    model = keras.Sequential(first + rnns + last)
    _assign(rnns, rnn_layer)
    if embedding is not None:
        model.layers[0].embeddings.assign(embedding.params["W"])
    if head is not None:
        model.layers[-1].kernel.assign(head.params["W"])
        model.layers[-1].bias.assign(head.params["b"])
    return model


# --- Keras -> nplstm -----------------------------------------------------------------------------

def _activation_name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def _describe(rnn) -> tuple:
    """(kind "LSTM" | "GRU", D, H, I, activation, return_sequences, [(kernel, recurrent_kernel, bias)] per
    direction) of a built Keras recurrent layer; ValueError for what nplstm does not compute."""
    keras = _keras()
    layers = [rnn]
    if isinstance(rnn, keras.layers.Bidirectional):
        if rnn.merge_mode != "concat":
            raise ValueError(f"from_keras: Bidirectional {rnn.name!r}: expected merge_mode='concat' (nplstm's D·H "
                             f"axis), got {rnn.merge_mode!r}")
        layers = [rnn.forward_layer, rnn.backward_layer]
    elif getattr(rnn, "go_backwards", False):
        raise ValueError(f"from_keras: {rnn.name!r} has go_backwards=True outside a Bidirectional; nplstm runs a "
                         "reverse direction only as half of a bidirectional layer")
    kinds = {type(layer) for layer in layers}
    if kinds not in ({keras.layers.LSTM}, {keras.layers.GRU}):
        raise ValueError(f"from_keras: {rnn.name!r}: expected keras.layers.LSTM or GRU, got "
                         f"{' and '.join(sorted(k.__name__ for k in kinds))}")
    kind = "GRU" if kinds == {keras.layers.GRU} else "LSTM"
    weights, activations = [], set()
    for layer in layers:
        cell = layer.cell
        if not layer.built:
            raise ValueError(f"from_keras: layer {layer.name!r} is not built; call it on an input (or give the "
                             "Sequential a keras.Input) first")
        act, rec = _activation_name(cell.activation), _activation_name(cell.recurrent_activation)
        allowed = ("tanh", "linear") if kind == "LSTM" else ("tanh",)
        if act not in allowed or rec != "sigmoid":
            raise ValueError(f"from_keras: {layer.name!r}: expected activation in {allowed} and "
                             f"recurrent_activation='sigmoid', got {act!r} and {rec!r}")
        if kind == "GRU" and not cell.reset_after:
            raise ValueError(f"from_keras: GRU {layer.name!r} has reset_after=False (r applied before R, Cho et "
                             "al.'s GRU); nplstm.GRU is torch's, expected reset_after=True")
        kernel, recurrent = _numpy(cell.kernel), _numpy(cell.recurrent_kernel)
        width = 2 * recurrent.shape[1] if kind == "GRU" else recurrent.shape[1]
        bias = _numpy(cell.bias) if cell.use_bias else np.zeros(width, kernel.dtype)
        weights.append((kernel, recurrent, bias.reshape(2, -1) if kind == "GRU" else bias))
        activations.add(act)
    return (kind, len(layers), recurrent.shape[0], kernel.shape[0], activations.pop(), layers[0].return_sequences,
            weights)


def _stages(layers) -> dict:
    """Sort a Sequential's layers into {"embedding", "rnns", "dropout", "head"}, checking their order."""
    keras = _keras()
    stage_of = [(keras.layers.Embedding, 0), (keras.layers.Masking, 1), (keras.layers.LSTM, 2),
                (keras.layers.GRU, 2), (keras.layers.Bidirectional, 2), (keras.layers.Dropout, 3),
                (keras.layers.Dense, 4)]
    order = "[Embedding] [Masking] LSTM/GRU/Bidirectional layers [Dropout] [Dense]"
    found = {"embedding": None, "rnns": [], "dropout": 0.0, "head": None}
    last = -1
    for layer in layers:
        stage = next((s for cls, s in stage_of if isinstance(layer, cls)), None)
        if stage is None:
            raise ValueError(f"from_keras: expected {order}, got a {type(layer).__name__} layer {layer.name!r}")
        if stage < last or (stage == last and stage != 2) or (stage > 2 and not found["rnns"]):
            raise ValueError(f"from_keras: expected {order}, got {type(layer).__name__} {layer.name!r} out of order")
        last = stage
        if stage == 0:
            found["embedding"] = layer
        elif stage == 2:
            found["rnns"].append(layer)
        elif stage == 3:
            found["dropout"] = float(layer.rate)
        elif stage == 4:
            found["head"] = layer
    if not found["rnns"]:
        raise ValueError(f"from_keras: expected {order}, got no recurrent layer")
    if found["head"] is None and (found["embedding"] is not None or found["dropout"]):
        raise ValueError("from_keras: an Embedding or Dropout needs a Dense head to make an nplstm.Model; got none")
    return found


def _recurrent_from(rnns) -> LSTM | GRU:
    """One nplstm.LSTM or nplstm.GRU from a stack of Keras recurrent layers of one kind, size and direction."""
    described = [_describe(rnn) for rnn in rnns]
    kind, D, H, I, act, _, _ = described[0]
    for rnn, (kind_k, D_k, H_k, _, act_k, seq, _) in zip(rnns, described):
        if (kind_k, D_k, H_k, act_k) != (kind, D, H, act):
            raise ValueError(f"from_keras: nplstm stacks layers of one kind, size, direction and activation; "
                             f"expected {kind} D={D} H={H} {act}, got {kind_k} D={D_k} H={H_k} {act_k} in {rnn.name!r}")
        if not seq and rnn is not rnns[-1]:
            raise ValueError(f"from_keras: {rnn.name!r} feeds another recurrent layer: expected "
                             "return_sequences=True, got False")
    dtype = described[0][6][0][0].dtype
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"from_keras: expected float32 or float64 weights, got {dtype}")
    options = dict(num_layers=len(rnns), bidirectional=D == 2, dtype=dtype)
    if kind == "GRU":
        layer = GRU(I, H, **options)
    else:
        activation = "identity" if act == "linear" else "tanh"
        layer = LSTM(I, H, peephole=None, input_activation=activation, output_activation=activation, **options)
    for k, (*_, weights) in enumerate(described):
        for d, (kernel, recurrent, bias) in enumerate(weights):
            pre = layer.config.prefix(k, d)
            if kind == "GRU":                # z, r, h -> r, z, n; r's and z's two biases fold into b
                input_bias, rec_bias = _swap_rz(bias[0]), _swap_rz(bias[1])
                b = input_bias + np.concatenate([rec_bias[:2 * H], np.zeros(H, dtype)])
                layer.params.update({pre + "W": _swap_rz(kernel), pre + "R": _swap_rz(recurrent),
                                     pre + "b": b, pre + "b_hn": rec_bias[2 * H:].copy()})
            else:
                layer.params.update({pre + "W": kernel, pre + "R": recurrent, pre + "b": bias})
    return layer


def from_keras(obj) -> LSTM | GRU | Model:
    """An nplstm object computing what a built Keras LSTM, GRU, Bidirectional or Sequential computes.

    A recurrent layer, or a Sequential of recurrent layers alone -> nplstm.LSTM or nplstm.GRU (with
    return_sequences=False Keras outputs the top layer's h_n, both directions concatenated);
    a Sequential ([Embedding] [Masking] recurrent layers [Dropout] Dense) -> nplstm.Model, many-to-one when
    the last recurrent layer has return_sequences=False. Masking is dropped: pass `lengths` instead.
    Dropout and dropout= of the recurrent layers act in training only; stateful and return_state are ignored.
    """
    keras = _keras()
    if isinstance(obj, keras.Sequential):
        found = _stages(obj.layers)
    elif isinstance(obj, (keras.layers.LSTM, keras.layers.GRU, keras.layers.Bidirectional)):
        found = {"embedding": None, "rnns": [obj], "dropout": 0.0, "head": None}
    else:
        raise ValueError(f"from_keras: expected a keras LSTM, GRU, Bidirectional or Sequential, got "
                         f"{type(obj).__name__}")
    rnn_layer = _recurrent_from(found["rnns"])
    dense = found["head"]
    if dense is None:
        return rnn_layer
    if not dense.built:
        raise ValueError(f"from_keras: layer {dense.name!r} is not built; give the Sequential a keras.Input first")
    if _activation_name(dense.activation) != "linear":
        raise ValueError(f"from_keras: Dense {dense.name!r}: expected activation='linear' (nplstm's head is x W + b; "
                         f"apply {_activation_name(dense.activation)!r} to its output), got "
                         f"{_activation_name(dense.activation)!r}")
    W = _numpy(dense.kernel).astype(rnn_layer.dtype, copy=False)
    head = Linear(W.shape[0], W.shape[1], dtype=rnn_layer.dtype)
    head.params = {"W": W, "b": _numpy(dense.bias) if dense.use_bias else np.zeros(W.shape[1], rnn_layer.dtype)}
    embedding = None
    if found["embedding"] is not None:
        E = _numpy(found["embedding"].embeddings).astype(rnn_layer.dtype, copy=False)
        embedding = Embedding(E.shape[0], E.shape[1], dtype=rnn_layer.dtype)
        embedding.params = {"W": E}
    many_to_one = not _describe(found["rnns"][-1])[5]
    return Model(rnn_layer, head, many_to_one=many_to_one, embedding=embedding, dropout=found["dropout"])
