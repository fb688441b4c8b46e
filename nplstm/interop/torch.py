"""Move an LSTM between nplstm and PyTorch (`pip install nplstm[torch]`).

PyTorch stores weight_ih (4H, in) and weight_hh (4H, H), applied as x Wᵀ; nplstm stores
W (in, 4H) and R (H, 4H), applied as x W. Both use gate order i, f, g, o. PyTorch has two
biases, bias_ih + bias_hh, which always appear summed: nplstm keeps their sum as b.
torch is imported inside these functions, never when nplstm is imported.
"""
from __future__ import annotations

import numpy as np

from ..layers import LSTM


def _torch_names(lstm: LSTM):
    """(nplstm prefix, torch suffix) for each layer and direction."""
    for k, d, pre in lstm.config.prefixes():
        yield pre, f"_l{k}" + ("_reverse" if d else "")


def _require_no_peepholes(lstm: LSTM):
    if lstm.config.peephole is not None:
        raise ValueError(f"torch.nn.LSTM has no peephole connections; this LSTM has peephole="
                         f"{lstm.config.peephole!r}. Only an LSTM built with peephole=None maps onto it.")
    if not lstm.config.forget_gate:
        raise ValueError("torch.nn.LSTM always has a forget gate; this LSTM has forget_gate=False.")


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
