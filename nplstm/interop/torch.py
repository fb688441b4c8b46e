"""Move LSTMs, GRUs and whole Models between nplstm and PyTorch (`pip install nplstm[torch]`).

to_torch / from_torch pick the module by what it must compute: an LSTM that torch.nn.LSTM expresses
(Greff's NP variant: peephole=None, every gate, tanh, no coupling, no gate recurrence) becomes a
torch.nn.LSTM, any other variant nplstm's own VariantLSTM (torch_modules.py), a GRU a torch.nn.GRU,
and an nplstm.Model one SequenceModel. from_torch inverts each of them exactly.
PyTorch stores weight_ih (4H, in) and weight_hh (4H, H), applied as x Wᵀ; nplstm stores
W (in, 4H) and R (H, 4H), applied as x W. Both use gate order i, f, g, o. PyTorch has two
biases, bias_ih + bias_hh, which always appear summed: nplstm keeps their sum as b.
GRU: the gru_* functions below map nplstm.GRU onto torch.nn.GRU (gate order r, z, n in both).
bias_ih + bias_hh fold into b for r and z, as above; for n torch's bias_ih_n is b's n block and
bias_hh_n is b_hn, kept apart because r multiplies it.
torch is imported inside these functions, never when nplstm is imported.
"""
from __future__ import annotations

import numpy as np

from ..gru import GRU
from ..layers import LSTM, Linear, Model


def _torch_names(layer: LSTM | GRU):
    """(nplstm prefix, torch suffix) for each layer and direction."""
    for k, d, pre in layer.config.prefixes():
        yield pre, f"_l{k}" + ("_reverse" if d else "")


def _why_not_nn_lstm(lstm: LSTM) -> str | None:
    """Why torch.nn.LSTM cannot compute this LSTM's cell, in one line; None when it can."""
    if lstm.config.peephole is not None:
        return (f"torch.nn.LSTM has no peephole connections; this LSTM has peephole="
                f"{lstm.config.peephole!r}. Only an LSTM built with peephole=None maps onto it.")
    if not lstm.config.forget_gate:
        return "torch.nn.LSTM always has a forget gate; this LSTM has forget_gate=False."
    from ..variants import VANILLA
    changed = [f"{k}={v!r}" for k, v in lstm.config.variant._asdict().items()
               if k not in ("peephole", "forget_gate") and v != getattr(VANILLA, k)]
    if changed:
        return f"torch.nn.LSTM is Greff's NP variant alone; this LSTM has {', '.join(changed)}."
    return None


def _require_no_peepholes(lstm: LSTM):
    why = _why_not_nn_lstm(lstm)
    if why:
        raise ValueError(why)


def state_dict(lstm: LSTM) -> dict[str, np.ndarray]:
    """The parameters under torch.nn.LSTM's names, as NumPy arrays (bias_hh is zero)."""
    _require_no_peepholes(lstm)
    out = {}
    for pre, suf in _torch_names(lstm):
        out["weight_ih" + suf] = lstm.params[pre + "W"].T.copy()
        out["weight_hh" + suf] = lstm.params[pre + "R"].T.copy()
        out["bias_ih" + suf] = lstm.params[pre + "b"].copy()
        out["bias_hh" + suf] = np.zeros_like(lstm.params[pre + "b"])
    return out


def grads_state_dict(lstm: LSTM) -> dict[str, np.ndarray]:
    """The last backward's gradients under torch.nn.LSTM's names.

    bias_ih and bias_hh both get db, since each enters the pre-activation the same way.
    """
    _require_no_peepholes(lstm)
    if not lstm.grads:
        raise ValueError("grads_state_dict: no gradients yet; call forward and backward first")
    out = {}
    for pre, suf in _torch_names(lstm):
        out["weight_ih" + suf] = lstm.grads[pre + "W"].T.copy()
        out["weight_hh" + suf] = lstm.grads[pre + "R"].T.copy()
        out["bias_ih" + suf] = lstm.grads[pre + "b"].copy()
        out["bias_hh" + suf] = lstm.grads[pre + "b"].copy()
    return out


def to_torch(layer: LSTM | GRU | Model):
    """The torch.nn.Module that computes what `layer` computes (batch_first=True, same dtype, on the CPU).

    An LSTM that torch.nn.LSTM expresses (peephole=None, Greff's NP) -> torch.nn.LSTM; any other
    LSTM variant -> torch_modules.VariantLSTM; a GRU -> torch.nn.GRU (as gru_to_torch); a Model ->
    torch_modules.SequenceModel, whose forward(x, lengths=None) equals Model.forward.
    """
    if isinstance(layer, Model):
        return _model_to_torch(layer)
    if isinstance(layer, GRU):
        return gru_to_torch(layer)
    if not isinstance(layer, LSTM):
        raise ValueError(f"to_torch: expected an nplstm.LSTM, GRU or Model, got {type(layer).__name__}")
    import torch

    dtype = torch.float64 if layer.dtype == np.float64 else torch.float32
    c = layer.config
    if _why_not_nn_lstm(layer) is not None:
        from .torch_modules import VariantLSTM
        module = VariantLSTM(c.input_size, c.hidden_size, c.num_layers, c.bidirectional, dtype=dtype, seed=0,
                             **c.variant._asdict())
        module.load_nplstm_params(layer.params)
        return module
    module = torch.nn.LSTM(c.input_size, c.hidden_size, num_layers=c.num_layers,
                           bidirectional=c.bidirectional, batch_first=True, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(layer).items()})
    return module


def from_torch(module) -> LSTM | GRU | Model:
    """The nplstm layer equal to a module that to_torch makes: torch.nn.LSTM -> LSTM (peephole=None,
    bias_ih + bias_hh folded into b), VariantLSTM -> LSTM of its variant, torch.nn.GRU -> GRU,
    SequenceModel -> Model. The parameters are copied exactly."""
    import torch

    from .torch_modules import SequenceModel, VariantLSTM
    if isinstance(module, SequenceModel):
        return _model_from_torch(module)
    if isinstance(module, torch.nn.GRU):
        return gru_from_torch(module)
    if isinstance(module, VariantLSTM):
        c = module.config
        lstm = LSTM(c.input_size, c.hidden_size, num_layers=c.num_layers, bidirectional=c.bidirectional,
                    dtype=_numpy_dtype(next(module.parameters()).dtype, "from_torch"), **c.variant._asdict())
        lstm.params = module.nplstm_params()
        return lstm
    if not isinstance(module, torch.nn.LSTM):
        raise ValueError(f"from_torch: expected a torch.nn.LSTM, torch.nn.GRU, VariantLSTM or SequenceModel, "
                         f"got {type(module).__name__}")
    if module.proj_size:
        raise ValueError(f"from_torch: proj_size={module.proj_size} (LSTM with projections) is not supported")
    dtype = _numpy_dtype(module.weight_ih_l0.dtype, "from_torch")
    lstm = LSTM(module.input_size, module.hidden_size, num_layers=module.num_layers,
                bidirectional=module.bidirectional, peephole=None, dtype=dtype)
    sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    for pre, suf in _torch_names(lstm):
        lstm.params[pre + "W"] = np.ascontiguousarray(sd["weight_ih" + suf].T)
        lstm.params[pre + "R"] = np.ascontiguousarray(sd["weight_hh" + suf].T)
        b = np.zeros(4 * module.hidden_size, dtype)
        if module.bias:
            b = sd["bias_ih" + suf] + sd["bias_hh" + suf]
        lstm.params[pre + "b"] = b.astype(dtype)
    return lstm


def _numpy_dtype(dtype, who: str):
    import torch

    found = {torch.float32: np.float32, torch.float64: np.float64}.get(dtype)
    if found is None:
        raise ValueError(f"{who}: expected float32 or float64 weights, got {dtype}")
    return found


# --- a whole Model ----------------------------------------------------------------------------
# The head: torch.nn.Linear's weight is (out, in) = Wᵀ. The embedding: nn.Embedding's weight is W (V, E).
# Model.forward never applies the scaler (predict does), so SequenceModel keeps it as buffers
# "scaler_x_mean", ... for the way back, and its forward does not apply them either.

SCALER = ("x_mean", "x_std", "y_mean", "y_std")


def _model_to_torch(model: Model):
    import torch

    from .torch_modules import SequenceModel
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    W, b = model.head.params["W"], model.head.params["b"]
    head = torch.nn.Linear(*W.shape, dtype=dtype)
    embedding = getattr(model, "embedding", None)
    if embedding is not None:
        embedding = torch.nn.Embedding(*embedding.params["W"].shape, dtype=dtype,
                                       _weight=torch.tensor(embedding.params["W"], dtype=dtype))
    rnn = to_torch(model.lstm)
    if model.dropout and model.lstm.config.num_layers > 1:
        rnn.dropout = model.dropout          # Model.dropout also acts between stacked layers, as nn.LSTM's dropout
    module = SequenceModel(rnn, head, many_to_one=model.many_to_one, embedding=embedding,
                           dropout=getattr(model, "dropout", 0.0))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(W.T.copy()))
        head.bias.copy_(torch.from_numpy(b))
    scaler = getattr(model, "scaler", None)
    for name in SCALER:
        value = None if scaler is None else getattr(scaler, name)
        module.register_buffer("scaler_" + name, None if value is None else torch.tensor(np.asarray(value)))
    return module


def _model_from_torch(module) -> Model:
    rnn = from_torch(module.rnn)
    dtype = rnn.dtype
    head = Linear(module.head.in_features, module.head.out_features, dtype=dtype)
    head.params = {"W": module.head.weight.detach().cpu().numpy().T.copy(),
                   "b": np.zeros(module.head.out_features, dtype) if module.head.bias is None
                   else module.head.bias.detach().cpu().numpy().copy()}
    extras = {}
    if module.embedding is not None:
        from ..layers import Embedding
        extras["embedding"] = Embedding(module.embedding.num_embeddings, module.embedding.embedding_dim, dtype=dtype)
        extras["embedding"].params["W"] = module.embedding.weight.detach().cpu().numpy().copy()
    if module.dropout is not None:
        extras["dropout"] = module.dropout.p
    model = Model(rnn, head, many_to_one=module.many_to_one, **extras)
    arrays = {name: getattr(module, "scaler_" + name, None) for name in SCALER}
    if arrays["x_mean"] is not None:
        from ..data import Scaler
        model.scaler = Scaler(**{k: None if v is None else v.detach().cpu().numpy().copy() for k, v in arrays.items()})
    return model


# --- GRU --------------------------------------------------------------------------------------

def gru_state_dict(gru: GRU) -> dict[str, np.ndarray]:
    """The parameters under torch.nn.GRU's names, as NumPy arrays: bias_ih = b, bias_hh = [0, 0, b_hn]."""
    out = {}
    for pre, suf in _torch_names(gru):
        b, b_hn = gru.params[pre + "b"], gru.params[pre + "b_hn"]
        out["weight_ih" + suf] = gru.params[pre + "W"].T.copy()
        out["weight_hh" + suf] = gru.params[pre + "R"].T.copy()
        out["bias_ih" + suf] = b.copy()
        out["bias_hh" + suf] = np.concatenate([np.zeros_like(b[:-len(b_hn)]), b_hn])
    return out


def gru_grads_state_dict(gru: GRU) -> dict[str, np.ndarray]:
    """The last backward's gradients under torch.nn.GRU's names.

    For r and z, bias_ih and bias_hh both get db (each enters the pre-activation the same way);
    for n, bias_ih_n gets db's n block (db_in) and bias_hh_n gets db_hn.
    """
    if not gru.grads:
        raise ValueError("gru_grads_state_dict: no gradients yet; call forward and backward first")
    out = {}
    for pre, suf in _torch_names(gru):
        db, db_hn = gru.grads[pre + "b"], gru.grads[pre + "b_hn"]
        out["weight_ih" + suf] = gru.grads[pre + "W"].T.copy()
        out["weight_hh" + suf] = gru.grads[pre + "R"].T.copy()
        out["bias_ih" + suf] = db.copy()
        out["bias_hh" + suf] = np.concatenate([db[:-len(db_hn)], db_hn])
    return out


def gru_to_torch(gru: GRU):
    """An equivalent torch.nn.GRU (batch_first=True, same dtype)."""
    import torch

    c = gru.config
    dtype = torch.float64 if gru.dtype == np.float64 else torch.float32
    module = torch.nn.GRU(c.input_size, c.hidden_size, num_layers=c.num_layers,
                          bidirectional=c.bidirectional, batch_first=True, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in gru_state_dict(gru).items()})
    return module


def gru_from_torch(module) -> GRU:
    """An nplstm.GRU equal to a torch.nn.GRU: b = [b_ir + b_hr, b_iz + b_hz, b_in], b_hn = b_hn."""
    import torch

    if not isinstance(module, torch.nn.GRU):
        raise ValueError(f"gru_from_torch: expected a torch.nn.GRU, got {type(module).__name__}")
    dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(module.weight_ih_l0.dtype)
    if dtype is None:
        raise ValueError(f"gru_from_torch: expected float32 or float64 weights, got {module.weight_ih_l0.dtype}")
    H = module.hidden_size
    gru = GRU(module.input_size, H, num_layers=module.num_layers, bidirectional=module.bidirectional, dtype=dtype)
    sd = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    for pre, suf in _torch_names(gru):
        gru.params[pre + "W"] = np.ascontiguousarray(sd["weight_ih" + suf].T)
        gru.params[pre + "R"] = np.ascontiguousarray(sd["weight_hh" + suf].T)
        b, b_hn = np.zeros(3 * H, dtype), np.zeros(H, dtype)
        if module.bias:
            b = sd["bias_ih" + suf] + np.concatenate([sd["bias_hh" + suf][:2 * H], np.zeros(H, dtype)])
            b_hn = sd["bias_hh" + suf][2 * H:].copy()
        gru.params[pre + "b"], gru.params[pre + "b_hn"] = b.astype(dtype), b_hn.astype(dtype)
    return gru
