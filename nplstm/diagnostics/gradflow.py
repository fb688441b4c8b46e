"""Gradient flow back in time: how large the gradient of a loss at the last step is with respect to
each earlier state, for an LSTM, a GRU and a plain tanh RNN (the constant error carousel, measured).

Exact, by one backward pass per start step (O(T²) steps in all): the run from step t on is the
model itself started from the state entering t, so its initial-state gradient is ∂L/∂(h_t, c_t).
"""
from __future__ import annotations

import numpy as np

from ..gru import GRU
from ..layers import LSTM
from ..rnn import RNN
from ..stack import LSTMConfig


def lstm_state_gradients(lstm: LSTM, x: np.ndarray, dy_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """||∂L/∂h_t|| and ||∂L/∂c_t|| for every state of a unidirectional LSTM, L = <dy_last, y_{T-1}>.

    x: (B, T, I); dy_last: (B, H), the gradient at the last step's output (zero at every other step).
    Returns two (T,) arrays: entry t is the norm (over layers, rows and units) of the gradient with
    respect to the state (h, c) that enters step t, t = 0 being the initial state. It is exact: the
    run from step t on is the LSTM itself started from that state, so its dstate_0 is ∂L/∂(h, c).
    """
    cfg = lstm.config
    if cfg.bidirectional:
        raise ValueError("lstm_state_gradients: a bidirectional LSTM has no single direction of time")
    B, T, _ = x.shape
    L, H = cfg.num_layers, cfg.hidden_size
    lstm.forward(x)
    inside = lstm.internals()
    h = np.stack([inside[cfg.prefix(k, 0).rstrip(".")]["h"] for k in range(L)])  # (L, B, T, H)
    c = np.stack([inside[cfg.prefix(k, 0).rstrip(".")]["c"] for k in range(L)])
    zeros = np.zeros((L, B, H), lstm.dtype)
    dh_norm, dc_norm = np.empty(T), np.empty(T)
    for t in range(T):
        state = (zeros, zeros) if t == 0 else (h[:, :, t - 1], c[:, :, t - 1])  # after steps 0..t-1
        lstm.forward(x[:, t:], state)
        dy = np.zeros((B, T - t, H), lstm.dtype)
        dy[:, -1] = dy_last
        _, (dh0, dc0) = lstm.backward(dy)
        dh_norm[t], dc_norm[t] = np.linalg.norm(dh0), np.linalg.norm(dc0)
    return dh_norm, dc_norm


def gru_state_gradients(gru: GRU, x: np.ndarray, dy_last: np.ndarray) -> np.ndarray:
    """||∂L/∂h_t|| for every state of a unidirectional GRU, as lstm_state_gradients (its state is h alone).

    x: (B, T, I); dy_last: (B, H) -> (T,).
    """
    cfg = gru.config
    if cfg.bidirectional:
        raise ValueError("gru_state_gradients: a bidirectional GRU has no single direction of time")
    B, T, _ = x.shape
    gru.forward(x)
    inside = gru.internals()
    h = np.stack([inside[f"l{k}"]["h"] for k in range(cfg.num_layers)])   # (L, B, T, H)
    dh_norm = np.empty(T)
    for t in range(T):
        gru.forward(x[:, t:], np.zeros_like(h[:, :, 0]) if t == 0 else h[:, :, t - 1])   # the state entering t
        dy = np.zeros((B, T - t, cfg.hidden_size), gru.dtype)
        dy[:, -1] = dy_last
        _, dh0 = gru.backward(dy)
        dh_norm[t] = np.linalg.norm(dh0)
    return dh_norm


def rnn_state_gradients(rnn: RNN, x: np.ndarray, dy_last: np.ndarray) -> np.ndarray:
    """||∂L/∂h_t|| for every state of a plain RNN, L = <dy_last, y_{T-1}>; as lstm_state_gradients.

    x: (B, T, I); dy_last: (B, H) -> (T,).
    """
    B, T, _ = x.shape
    y, _ = rnn.forward(x)
    dh_norm = np.empty(T)
    for t in range(T):
        state = np.zeros((1, B, rnn.hidden_size), rnn.dtype) if t == 0 else y[None, :, t - 1]
        rnn.forward(x[:, t:], state)
        dy = np.zeros((B, T - t, rnn.hidden_size), rnn.dtype)
        dy[:, -1] = dy_last
        _, dh0 = rnn.backward(dy)
        dh_norm[t] = np.linalg.norm(dh0)
    return dh_norm


def gradient_flow(x: np.ndarray, cfg: LSTMConfig, trained: LSTM | None = None, seed: int = 0,
                  gru: GRU | None = None) -> dict[str, np.ndarray]:
    """The curves of the gradient-flow figure, "model: quantity" -> (T,) norms, computed in float64.

    x: (1, T, I); cfg: the LSTM's shape, copied by a fresh LSTM (unidirectional here) and by a fresh
    plain RNN (same I and H); trained: the trained LSTM too, if given and unidirectional; gru: a
    trained GRU of the same sizes, if given and unidirectional.
    The loss gradient at the last step is the same unit vector for every model.
    """
    x = x.astype(np.float64)
    dy_last = np.random.default_rng(seed).standard_normal((x.shape[0], cfg.hidden_size))
    dy_last /= np.linalg.norm(dy_last)
    rnn = RNN(cfg.input_size, cfg.hidden_size, dtype=np.float64, seed=seed)
    curves = {"plain RNN, fresh: ‖∂L/∂h_t‖": rnn_state_gradients(rnn, x, dy_last)}
    models = {"fresh": _float64_lstm(cfg, seed)}
    if trained is not None and not trained.config.bidirectional:
        models["trained"] = _float64_lstm(cfg, seed, trained.params)
    for name, lstm in models.items():
        dh, dc = lstm_state_gradients(lstm, x, dy_last)
        curves[f"LSTM, {name}: ‖∂L/∂h_t‖"], curves[f"LSTM, {name}: ‖∂L/∂c_t‖"] = dh, dc
    if gru is not None and not gru.config.bidirectional:
        c = gru.config
        copy = GRU(c.input_size, c.hidden_size, num_layers=c.num_layers, dtype=np.float64)
        copy.params = {k: v.astype(np.float64) for k, v in gru.params.items()}
        curves["GRU, trained: ‖∂L/∂h_t‖"] = gru_state_gradients(copy, x, dy_last)
    return curves


def _float64_lstm(cfg: LSTMConfig, seed: int, params: dict | None = None) -> LSTM:
    lstm = LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, peephole=cfg.peephole,
                forget_gate=cfg.forget_gate, dtype=np.float64, seed=seed)
    if params is not None:
        lstm.params = {k: v.astype(np.float64) for k, v in params.items()}
    return lstm
