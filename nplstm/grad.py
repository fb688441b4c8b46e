"""Inference mode: `with nplstm.no_grad():` forwards keep no cache, as under torch.no_grad().

Under it the layers' forwards keep nothing for a backward: the LSTM holds one chunk of steps' gates
and one step's cell state instead of all of them (lstm.lstm_forward(keep=False)), and a backward after
such a forward raises a ValueError that says why. The outputs are the same bits as a training forward's.
Model.predict, Model.evaluate and the trainer's evaluations run under it. Anomaly detection needs the
cache to explain a NaN, so under detect_anomaly the forwards keep it anyway.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

_enabled: ContextVar[bool] = ContextVar("nplstm_grad_enabled", default=True)


@contextmanager
def no_grad():
    """Within the block, forwards keep no cache for a backward (inference: less memory, no backward)."""
    token = _enabled.set(False)
    try:
        yield
    finally:
        _enabled.reset(token)


def is_grad_enabled() -> bool:
    """False inside `no_grad()`."""
    return _enabled.get()


class _Inference:
    """What a layer keeps as its cache after a forward under no_grad(): nothing, said so."""

    def __repr__(self):
        return "INFERENCE"


INFERENCE = _Inference()


def check_cache(cache, call: str = "backward()") -> None:
    """Raise the ValueError a layer's backward (or internals) gives when its forward kept no cache."""
    if cache is INFERENCE:
        raise ValueError(f"{call} after a forward under nplstm.no_grad(): inference keeps no cache; "
                         f"run the forward outside no_grad() to backpropagate")
    if cache is None:
        raise ValueError(f"{call} called before forward(): there is nothing to backpropagate through")
