"""Move an LSTM between nplstm and PyTorch (`pip install nplstm[torch]`).

PyTorch stores weight_ih (4H, in) and weight_hh (4H, H), applied as x Wᵀ; nplstm stores
W (in, 4H) and R (H, 4H), applied as x W. Both use gate order i, f, g, o. PyTorch has two
biases, bias_ih + bias_hh, which always appear summed: nplstm keeps their sum as b.
GRU: the gru_* functions below map nplstm.GRU onto torch.nn.GRU (gate order r, z, n in both;
to_torch / from_torch stay LSTM-only). bias_ih + bias_hh fold into b for r and z, as above; for n
torch's bias_ih_n is b's n block and bias_hh_n is b_hn, kept apart because r multiplies it.
torch is imported inside these functions, never when nplstm is imported.
"""
from __future__ import annotations

import numpy as np

from ..gru import GRU
from ..layers import LSTM


def _torch_names(layer: LSTM | GRU):
    """(nplstm prefix, torch suffix) for each layer and direction."""
    for k, d, pre in layer.config.prefixes():
        yield pre, f"_l{k}" + ("_reverse" if d else "")


def _require_no_peepholes(lstm: LSTM):
    if lstm.config.peephole is not None:
        raise ValueError(f"torch.nn.LSTM has no peephole connections; this LSTM has peephole="
                         f"{lstm.config.peephole!r}. Only an LSTM built with peephole=None maps onto it.")
    if not lstm.config.forget_gate:
        raise ValueError("torch.nn.LSTM always has a forget gate; this LSTM has forget_gate=False.")
    from ..lstm import VANILLA
    changed = [f"{k}={v!r}" for k, v in lstm.config.variant._asdict().items()
               if k not in ("peephole", "forget_gate") and v != getattr(VANILLA, k)]
    if changed:
        raise ValueError(f"torch.nn.LSTM is Greff's NP variant alone; this LSTM has {', '.join(changed)}.")


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


def to_torch(lstm: LSTM):
    """An equivalent torch.nn.LSTM (batch_first=True, same dtype) for an LSTM with peephole=None."""
    import torch

    _require_no_peepholes(lstm)
    c = lstm.config
    dtype = torch.float64 if lstm.dtype == np.float64 else torch.float32
    module = torch.nn.LSTM(c.input_size, c.hidden_size, num_layers=c.num_layers,
                           bidirectional=c.bidirectional, batch_first=True, dtype=dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict(lstm).items()})
    return module


def from_torch(module) -> LSTM:
    """An nplstm.LSTM (peephole=None) equal to a torch.nn.LSTM; bias_ih + bias_hh fold into b."""
    import torch

    if not isinstance(module, torch.nn.LSTM):
        raise ValueError(f"from_torch: expected a torch.nn.LSTM, got {type(module).__name__}")
    if module.proj_size:
        raise ValueError(f"from_torch: proj_size={module.proj_size} (LSTM with projections) is not supported")
    dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(module.weight_ih_l0.dtype)
    if dtype is None:
        raise ValueError(f"from_torch: expected float32 or float64 weights, got {module.weight_ih_l0.dtype}")
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
