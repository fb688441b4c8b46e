"""A plain tanh RNN, h_t = tanh(x_t W + h_{t-1} R + b): the baseline whose gradient vanishes.

Functional core `rnn_forward` / `rnn_backward` (time-major, (T, B, ·), like lstm.py) and the
thin shell `RNN` (batch-first, params / grads / forward / backward like `LSTM`), so that
`nplstm.gradcheck` and the gradient-flow plots treat it like the LSTM.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import check_array, check_dtype, check_int


class RNNCache(NamedTuple):
    """What rnn_backward needs from rnn_forward."""
    x: np.ndarray            # (T, B, I) inputs
    h: np.ndarray            # (T+1, B, H) hidden states, h[0] = h_0


def rnn_forward(x, h0, W, R, b):
    """Run the recurrence over the whole sequence.

    x: (T, B, I); h0: (B, H); W: (I, H); R: (H, H); b: (H,).
    Returns h (T+1, B, H) with h[1:] the outputs, and the RNNCache.
    """
    T, B, _ = x.shape
    h = np.empty((T + 1, B, R.shape[0]), x.dtype)
    h[0] = h0
    xWb = x @ W + b                          # (T, B, H) input projections, one GEMM
    for t in range(T):
        h[t + 1] = np.tanh(xWb[t] + h[t] @ R)  # h_t = tanh(x_t W + h_{t-1} R + b)
    return h, RNNCache(x, h)


def rnn_backward(dy, dh_n, cache: RNNCache, W, R):
    """Backpropagate through time.

    dy: (T, B, H) gradient of the outputs h_1..h_T; dh_n: (B, H) gradient of the final state.
    Returns dx (T, B, I), dh0 (B, H) and grads {"W": (I, H), "R": (H, H), "b": (H,)}.
    """
    x, h = cache
    T, B, I = x.shape
    H = R.shape[0]
    da = np.empty_like(dy)                   # (T, B, H) δa_t = dL/da_t
    dh = dh_n.copy()                         # running δh_t
    for t in range(T - 1, -1, -1):
        dh += dy[t]                          # h_t feeds the output y_t and step t+1
        da[t] = dh * (1 - h[t + 1] ** 2)     # backprop through tanh
        dh = da[t] @ R.T                     # backprop a_t into h_{t-1}
    da2 = da.reshape(T * B, H)
    grads = {"W": x.reshape(T * B, I).T @ da2, "R": h[:-1].reshape(T * B, H).T @ da2, "b": da2.sum(axis=0)}
    return da @ W.T, dh, grads


class RNN:
    """A one-layer tanh RNN over batch-first sequences. params: "W" (I, H), "R" (H, H), "b" (H,).

    Initialised as torch.nn.RNN is: every entry uniform in ±1/sqrt(H) (one bias instead of two).
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype=np.float32, seed: int | None = None):
        input_size, hidden_size = check_int("input_size", input_size), check_int("hidden_size", hidden_size)
        self.dtype = check_dtype(dtype)
        rng, limit = np.random.default_rng(seed), 1 / np.sqrt(hidden_size)
        self.params = {name: rng.uniform(-limit, limit, shape).astype(dtype) for name, shape in
                       (("W", (input_size, hidden_size)), ("R", (hidden_size, hidden_size)), ("b", (hidden_size,)))}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    @property
    def input_size(self) -> int:
        """I, the width of each input step (W is (I, H))."""
        return self.params["W"].shape[0]

    @property
    def hidden_size(self) -> int:
        """H, the width of the hidden state (R is (H, H))."""
        return self.params["R"].shape[0]

    def forward(self, x: np.ndarray, state: np.ndarray | None = None):
        """x: (B, T, I); state: h_0 (1, B, H) or None for zeros -> y (B, T, H), h_n (1, B, H)."""
        I, H = self.input_size, self.hidden_size
        x = check_array("x", x, (None, None, I), self.dtype, finite=True)
        B, T, _ = x.shape
        if B == 0 or T == 0:
            raise ValueError(f"x: expected at least one sequence of at least one step, got shape {x.shape}")
        h0 = np.zeros((1, B, H), self.dtype) if state is None else check_array("state h_0", state, (1, B, H),
                                                                                self.dtype, finite=True)
        self._check_params()
        h, self._cache = rnn_forward(x.transpose(1, 0, 2), h0[0], self.params["W"], self.params["R"], self.params["b"])
        return h[1:].transpose(1, 0, 2).copy(), h[-1:].copy()

    __call__ = forward

    def backward(self, dy: np.ndarray, dh_n: np.ndarray | None = None):
        """dy: (B, T, H); dh_n: (1, B, H) or None -> dx (B, T, I), dh_0 (1, B, H); replaces `grads`."""
        if self._cache is None:
            raise ValueError("backward() called before forward(): there is nothing to backpropagate through")
        T, B, _ = self._cache.x.shape
        H = self.hidden_size
        dy = check_array("dy", dy, (B, T, H), self.dtype, finite=True)
        dh_n = np.zeros((1, B, H), self.dtype) if dh_n is None else check_array("dh_n", dh_n, (1, B, H), self.dtype,
                                                                                finite=True)
        self._check_params("changed between forward() and backward(): ")
        dx, dh0, self.grads = rnn_backward(dy.transpose(1, 0, 2), dh_n[0], self._cache,
                                           self.params["W"], self.params["R"])
        return np.ascontiguousarray(dx.transpose(1, 0, 2)), dh0[None]

    def _check_params(self, when: str = ""):
        I, H = self.input_size, self.hidden_size
        for name, shape in (("W", (I, H)), ("R", (H, H)), ("b", (H,))):
            check_array(f"params[{name!r}]", self.params.get(name), shape, self.dtype, finite=True, when=when)

    def __repr__(self):
        return f"RNN({self.input_size}, {self.hidden_size}, dtype={self.dtype.name})"
