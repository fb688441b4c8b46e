"""The models an odyssey compares: Greff's LSTM variants and the GRU through the trainer's own factory, and
the plain tanh RNN (nplstm.RNN) dressed as a training Model's recurrent layer, so that all of them go
through the same trainer, optimizer and evaluation."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..layers import Embedding, Linear, Model
from ..variants import VARIANTS
from ..rnn import RNN

CELLS = (*VARIANTS, "GRU", "RNN")    # Greff's nine LSTMs, then the two references


class RNNShape(NamedTuple):
    """What Model and the trainer read of a recurrent layer's config."""
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    num_directions: int = 1


class RNNLayer:
    """nplstm.RNN with the interface Model and the trainer expect of a recurrent layer: forward(x, state, lengths,
    dropout) -> (y (B, T, H), h_n (1, B, H)), backward(dy, dstate) -> (dx, dh_0), internals() (no gates: {}).
    params and grads are the RNN's own. A stream's state h (1, B, H) is carried in as a GRU's is.

    Ragged batches: the RNN runs over the padding too, which is harmless because it is causal and padding
    comes after each row's last step: h at a row's own length is its final state, and the loss masks the
    outputs past it. backward sends the final state's gradient to that step.
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype=np.float32, seed: int = 0):
        self.rnn = RNN(input_size, hidden_size, dtype=dtype, seed=seed)
        self.config = RNNShape(input_size, hidden_size)
        self.dtype = self.rnn.dtype
        self._last = None                    # each row's last step, kept for backward
        self._shapes = None                  # (y shape, state shape), which Model.backward reads

    @property
    def params(self) -> dict:
        return self.rnn.params

    @property
    def grads(self) -> dict:
        return self.rnn.grads

    def forward(self, x, state=None, lengths=None, dropout=None):
        """x: (B, T, I); state: h_0 (1, B, H) or None -> y (B, T, H), h_n (1, B, H) at each row's length
        (lengths (B,) or None: T)."""
        if dropout:
            raise ValueError("RNNLayer: dropout between layers does not apply to one layer")
        y, _ = self.rnn.forward(x, state)    # (B, T, H)
        B, T, _ = y.shape
        self._last = np.full(B, T - 1) if lengths is None else np.asarray(lengths, np.int64) - 1
        self._shapes = (y.shape, (1,) + y.shape[::2])
        return y, y[np.arange(B), self._last][None]

    def internals(self) -> dict:
        """What the trainer's gate statistics read: a plain RNN has no gates and no cell."""
        return {}

    def backward(self, dy, dstate=None):
        """dy: (B, T, H); dstate: (1, B, H), the gradient of h_n -> dx (B, T, I), dh_0 (1, B, H)."""
        if dstate is not None:               # h_n is h at each row's last step: its gradient joins dy there
            dy = dy.copy()
            dy[np.arange(dy.shape[0]), self._last] += dstate[0]
        return self.rnn.backward(dy)


def make_model(task, cell: str, hidden_size: int, *, seed: int = 0) -> Model:
    """cell: one of CELLS. An LSTM variant or the GRU through nplstm.training.build_model (forget-gate bias 1,
    its default); the RNN with the same head and, for token ids, the same embedding as build_model would give.

    Raises ValueError for an unknown cell.
    """
    from ..training.trainer import build_model
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")
    if cell == "GRU":
        return build_model(task, hidden_size, seed=seed, cell="gru")
    if cell != "RNN":
        return build_model(task, hidden_size, seed=seed, variant=cell)
    vocab = getattr(task, "vocab_size", None)
    width = 32 if vocab else task.input_size   # build_model's default embedding_dim
    embedding = Embedding(vocab, width, seed=seed + 2) if vocab else None
    model = Model(RNNLayer(width, hidden_size, seed=seed), Linear(hidden_size, task.output_size, seed=seed + 1),
                  many_to_one=task.many_to_one, embedding=embedding)
    model.scaler, model.target = getattr(task, "scaler", None), getattr(task, "target_type", None)
    return model


def count_params(model: Model) -> int:
    """Trainable numbers in the model. The block of a gate an LSTM variant removes (NIG, NFG, NOG; f under
    CIFG) stays in the 4H layout with zero gradient, so it is not counted: its columns of W and R, its bias
    and its peephole."""
    total = sum(p.size for p in model.params.values())
    if model.is_gru:                         # the GRU and the RNN have no unused blocks
        return total
    c = model.lstm.config
    unused = (not c.input_gate) + (not c.forget_gate or c.coupled) + (not c.output_gate)
    H = c.hidden_size
    peephole = {"diagonal": H, "full": H * H, None: 0}[c.peephole]
    inputs = [c.input_size] + [H * c.num_directions] * (c.num_layers - 1)   # each layer's input width
    return total - unused * c.num_directions * sum(n_in * H + H * H + H + peephole for n_in in inputs)
