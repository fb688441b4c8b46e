"""The object shell: LSTM, Linear and Model hold params, grads and the last cache.

They check their inputs and call the functional core (stack.py, and linear_forward /
linear_backward below); they contain no LSTM math of their own.
"""
from __future__ import annotations

import numpy as np

from . import anomaly
from .grad import INFERENCE, check_cache, is_grad_enabled
from ._checks import check_array, check_dropout, check_dtype, check_int, check_lengths, check_params
from .variants import ACTIVATIONS, VANILLA, VARIANTS
from .stack import PEEPHOLES, LSTMConfig, init_params, stack_backward, stack_forward, stack_internals


_AS_VARIANT = object()   # peephole's default: None is a value (no peepholes), so "not given" needs its own


def variant_flags(variant: str | None = None, **given) -> dict:
    """The flags of an LSTM variant: Greff et al.'s name (variants.VARIANTS; None: "vanilla") with every flag
    that is given (not None; for peephole, not _AS_VARIANT) on top, validated -> LSTMConfig's keywords."""
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    flags = VARIANTS[variant or "vanilla"]._asdict()
    flags.update({k: v for k, v in given.items() if v is not (_AS_VARIANT if k == "peephole" else None)})
    if flags["peephole"] not in PEEPHOLES:
        raise ValueError(f"peephole: expected one of {PEEPHOLES}, got {flags['peephole']!r}")
    for name in ("input_activation", "output_activation"):
        if flags[name] not in ACTIVATIONS:
            raise ValueError(f"{name}: expected one of {ACTIVATIONS}, got {flags[name]!r}")
    for name in ("forget_gate", "input_gate", "output_gate", "coupled", "gate_recurrence"):
        if not isinstance(flags[name], (bool, np.bool_)):
            raise ValueError(f"{name}: expected True or False, got {flags[name]!r}")
        flags[name] = bool(flags[name])
    if flags["coupled"] and not (flags["input_gate"] and flags["forget_gate"]):
        raise ValueError("coupled: f = 1 - i needs both an input and a forget gate (input_gate=True, forget_gate=True)")
    return flags


class LSTM:
    """A stacked, optionally bidirectional, peephole LSTM over batch-first sequences.

    Gate order along 4H is i, f, g, o. `params` and `grads` are dicts of arrays keyed
    "l{k}.W" (in, 4H), "l{k}.R" (H, 4H), "l{k}.b" (4H,), "l{k}.p_i|p_f|p_o" ((H,) or (H, H)),
    "l{k}.R_gates" (3H, 3H) with gate recurrence; the reverse direction uses the prefix
    "l{k}_reverse.". Arrays assigned into `params` are used by the next forward.
    variant: one of Greff et al.'s names (nplstm.variants.VARIANTS: "vanilla", "NIG", "NFG", "NOG",
    "NIAF", "NOAF", "NP", "CIFG", "FGR"); the keyword flags, where given, change it further
    (e.g. variant="NFG", peephole="full"). A removed gate keeps its block in the 4H layout,
    unused, with zero gradient, so weights stay interchangeable between variants.
    """

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1,
                 bidirectional: bool = False, variant: str | None = None, peephole=_AS_VARIANT,
                 forget_gate=None, input_gate=None, output_gate=None, input_activation=None,
                 output_activation=None, coupled=None, gate_recurrence=None,
                 dtype=np.float32, seed: int | None = None, forget_bias: float = 1.0):
        sizes = [check_int(name, value) for name, value in
                 (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers))]
        flags = variant_flags(variant, peephole=peephole, forget_gate=forget_gate, input_gate=input_gate,
                              output_gate=output_gate, input_activation=input_activation,
                              output_activation=output_activation, coupled=coupled, gate_recurrence=gate_recurrence)
        if not isinstance(forget_bias, (int, float, np.floating, np.integer)) or not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias: expected a finite number, got {forget_bias!r}")
        self.dtype = check_dtype(dtype)
        self.config = LSTMConfig(*sizes, bool(bidirectional), **flags)
        self.params = init_params(self.config, np.random.default_rng(seed), self.dtype, forget_bias)
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None
        self._workspace: dict = {}   # scratch arrays reused from call to call (see workspace.Workspace)

    def forward(self, x: np.ndarray, state=None, lengths=None, dropout=None):
        """x: (B, T, I); state: (h_0, c_0) each (L·D, B, H) or None for zeros; lengths: (B,) ints or None;
        dropout: None, or L-1 masks (B, T, D·H) that multiply the inputs of layers 1..L-1.

        Returns y (B, T, D·H), zero at padded steps, and (h_n, c_n) each (L·D, B, H),
        the states after each sequence's last valid step, in PyTorch's layer/direction order.
        """
        cfg = self.config
        x = check_array("x", x, (None, None, cfg.input_size), self.dtype, finite=True)
        B, T, _ = x.shape
        if B == 0 or T == 0:
            raise ValueError(f"x: expected at least one sequence of at least one step, got shape {x.shape}")
        lengths = check_lengths(lengths, B, T)
        LD, H = cfg.num_layers * cfg.num_directions, cfg.hidden_size
        if state is None:
            h0 = c0 = np.zeros((LD, B, H), self.dtype)
        else:
            h0, c0 = _pair("state", state)
            check_array("state h_0", h0, (LD, B, H), self.dtype, finite=True)
            check_array("state c_0", c0, (LD, B, H), self.dtype, finite=True)
        dropout = check_dropout(dropout, cfg.num_layers, (B, T, cfg.num_directions * H), self.dtype)
        self._check_params(finite=True)
        keep = is_grad_enabled() or anomaly.is_enabled()   # the anomaly autopsy reads the cache
        y, state_n, cache = stack_forward(self.params, x, h0, c0, lengths, cfg, self._workspace, dropout=dropout,
                                          keep=keep)
        self._cache = cache if keep else INFERENCE
        if keep:
            anomaly.check_lstm_forward(cache, self.params, cfg, x, h0, c0, lengths)
        self._shapes = (y.shape, state_n[0].shape)
        return y, state_n

    __call__ = forward

    def backward(self, dy: np.ndarray, dstate=None):
        """dy: (B, T, D·H); dstate: (dh_n, dc_n) each (L·D, B, H) or None.

        Returns dx (B, T, I) and (dh_0, dc_0); replaces `grads`.
        """
        check_cache(self._cache)
        y_shape, s_shape = self._shapes
        dy = check_array("dy", dy, y_shape, self.dtype, finite=True)
        if dstate is None:
            dh_n = dc_n = np.zeros(s_shape, self.dtype)
        else:
            dh_n, dc_n = _pair("dstate", dstate)
            check_array("dstate dh_n", dh_n, s_shape, self.dtype, finite=True)
            check_array("dstate dc_n", dc_n, s_shape, self.dtype, finite=True)
        self._check_params(finite=True, when="changed between forward() and backward(): ")
        dx, dstate0, self.grads = stack_backward(dy, dh_n, dc_n, self._cache, self.params, self.config,
                                                 self._workspace)
        anomaly.check_lstm_backward(self._cache, self.params, self.config, dy, dh_n, dc_n, self.grads, dx, *dstate0)
        return dx, dstate0

    def internals(self) -> dict[str, dict[str, np.ndarray]]:
        """Gates i, f, g, o and states c, h of the last forward, each (B, T, H), per layer and direction.

        Keyed "l0", "l0_reverse", "l1", ...; for looking inside (plots, saturation, cell growth).
        """
        if self._cache is None:
            raise ValueError("internals() called before forward(): run the LSTM on some input first")
        check_cache(self._cache, "internals()")
        return stack_internals(self._cache, self.config)

    def _check_params(self, finite: bool, when: str = ""):
        check_params(self.params, self.config.param_shapes(), self.dtype, finite=finite, when=when, layer="LSTM")

    def __repr__(self):
        c = self.config
        changed = "".join(f", {k}={v!r}" for k, v in c.variant._asdict().items()
                          if k not in ("peephole", "forget_gate") and v != getattr(VANILLA, k))
        return (f"LSTM({c.input_size}, {c.hidden_size}, num_layers={c.num_layers}, bidirectional={c.bidirectional}, "
                f"peephole={c.peephole!r}, forget_gate={c.forget_gate}{changed}, dtype={self.dtype.name})")


def _pair(name, value):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected a pair (h, c) of arrays, got {type(value).__name__}")
    return value


def linear_forward(x, W, b):
    """y = x W + b over the last axis. x: (..., in); W: (in, out); b: (out,) -> y (..., out), cache."""
    return x @ W + b, x


def linear_backward(dy, x, W):
    """dy: (..., out), x: the cache -> dx (..., in), {"W": (in, out), "b": (out,)}."""
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    return dy @ W.T, {"W": x2.T @ dy2, "b": dy2.sum(axis=0)}


class Linear:
    """y = x W + b on the last axis. params: "W" (in, out), "b" (out,)."""

    def __init__(self, in_features: int, out_features: int, *, dtype=np.float32, seed: int | None = None):
        self.in_features, self.out_features = check_int("in_features", in_features), check_int("out_features", out_features)
        self.dtype = check_dtype(dtype)
        limit = 1 / np.sqrt(self.in_features)  # PyTorch's nn.Linear default
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.uniform(-limit, limit, (self.in_features, self.out_features)).astype(dtype),
                       "b": rng.uniform(-limit, limit, self.out_features).astype(dtype)}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (..., in) -> (..., out)."""
        check_array("x", x, (..., self.in_features), self.dtype, finite=True)
        W, b = self._checked_params()
        y, cache = linear_forward(x, W, b)
        self._cache = cache if is_grad_enabled() else INFERENCE
        anomaly.check_linear_forward(x, W, b, y)
        return y

    __call__ = forward

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., out) -> dx (..., in); replaces `grads`."""
        check_cache(self._cache)
        x = self._cache
        check_array("dy", dy, x.shape[:-1] + (self.out_features,), self.dtype, finite=True)
        W, _ = self._checked_params("changed between forward() and backward(): ")
        dx, self.grads = linear_backward(dy, x, W)
        anomaly.check_linear_backward(dy, x, W, dx, self.grads)
        return dx

    def _checked_params(self, when: str = ""):
        shapes = {"W": (self.in_features, self.out_features), "b": (self.out_features,)}
        for name, shape in shapes.items():
            if name not in self.params:
                raise ValueError(f"params: {when}missing {name!r} of shape {shape}")
            check_array(f"params[{name!r}]", self.params[name], shape, self.dtype, finite=True, when=when)
        return self.params["W"], self.params["b"]

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, dtype={self.dtype.name})"


def embedding_forward(tokens, W):
    """Row lookup. tokens: int (...) in [0, V); W: (V, E) -> (..., E), cache."""
    return W[tokens], (tokens, W.shape)


def embedding_backward(dy, cache):
    """dy: (..., E) -> {"W": (V, E)}: each row sums the gradients of the steps that looked it up."""
    tokens, shape = cache
    dW = np.zeros(shape, dy.dtype)
    np.add.at(dW, tokens.reshape(-1), dy.reshape(-1, shape[1]))   # a token used twice collects both
    return {"W": dW}


class Embedding:
    """y = W[tokens]: a learned vector per token id, the input layer for integer sequences (text).
    params: "W" (V, E), drawn N(0, 1) as PyTorch's nn.Embedding draws it."""

    def __init__(self, num_embeddings: int, embedding_dim: int, *, dtype=np.float32, seed: int | None = None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(dtype)}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        """tokens: int (B, T) ids in [0, V) -> (B, T, E)."""
        if not isinstance(tokens, np.ndarray) or tokens.dtype.kind not in "iu":
            got = tokens.dtype.name if isinstance(tokens, np.ndarray) else type(tokens).__name__
            raise ValueError(f"tokens: expected an integer array of token ids (B, T), got {got}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.num_embeddings):
            bad = tokens[(tokens < 0) | (tokens >= self.num_embeddings)].flat[0]
            raise ValueError(f"tokens: expected ids in [0, {self.num_embeddings}), got {int(bad)}")
        W = self.params["W"]
        check_array("params['W']", W, (self.num_embeddings, self.embedding_dim), self.dtype, finite=True)
        y, cache = embedding_forward(tokens, W)
        self._cache = cache if is_grad_enabled() else INFERENCE
        return y

    __call__ = forward

    def backward(self, dy: np.ndarray) -> None:
        """dy: (B, T, E); replaces `grads` (there is no gradient with respect to integer ids)."""
        check_cache(self._cache)
        check_array("dy", dy, self._cache[0].shape + (self.embedding_dim,), self.dtype, finite=True)
        self.grads = embedding_backward(dy, self._cache)

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, dtype={self.dtype.name})"


def dropout_mask(rng: np.random.Generator, shape: tuple, p: float, dtype) -> np.ndarray:
    """Inverted dropout: each entry 0 with probability p, else 1/(1-p), so the expected value is unchanged
    and nothing needs rescaling when dropout is off (predict, evaluate)."""
    return (rng.random(shape) >= p).astype(dtype) / dtype.type(1 - p)


class Model:
    """[Embedding ->] an LSTM (or a GRU) -> [dropout ->] a Linear head, trained with one forward and one
    backward call.

    many_to_one=False: out (B, T, O), the head applied at every step (many-to-many).
    many_to_one=True: out (B, O), the head applied to the top layer's final hidden state
    (both directions concatenated, each sequence at its own length).
    embedding: an Embedding, when the inputs are integer token ids (B, T) instead of vectors (B, T, I).
    dropout: p of inverted dropout between stacked layers and on the head's input, active only in a forward
    given an rng (training).
    `params` and `grads` merge the parts' dicts with the prefixes "embedding.", "lstm." and "head."; the
    recurrent layer is `model.lstm` (and its keys "lstm.") whether it is an nplstm.LSTM or an nplstm.GRU.
    `scaler`: the standardisation fitted on the training data (nplstm.data.Scaler) or None; forward never
    applies it, predict and evaluate do.
    """

    def __init__(self, lstm, head: Linear, *, many_to_one: bool = False, embedding: Embedding | None = None,
                 dropout: float = 0.0):
        width = lstm.config.hidden_size * lstm.config.num_directions
        if head.params["W"].shape[0] != width:
            raise ValueError(f"head: expected in_features = {width} (the LSTM's D·H), got {head.params['W'].shape[0]}")
        if embedding is not None and embedding.embedding_dim != lstm.config.input_size:
            raise ValueError(f"embedding: expected embedding_dim = {lstm.config.input_size} (the LSTM's input "
                             f"size), got {embedding.embedding_dim}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.lstm, self.head, self.many_to_one = lstm, head, many_to_one
        self.embedding, self.dropout, self.scaler = embedding, float(dropout), None
        self.dtype = lstm.dtype
        self._mask = None

    @property
    def parts(self) -> dict:
        """name -> layer, in the order the input meets them."""
        return {**({"embedding": self.embedding} if self.embedding is not None else {}),
                "lstm": self.lstm, "head": self.head}

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parts' arrays themselves (not copies): updating them in place updates the model."""
        return {f"{name}.{k}": v for name, part in self.parts.items() for k, v in part.params.items()}

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """The last backward's gradients, keyed like `params`, each of its parameter's shape."""
        return {f"{name}.{k}": v for name, part in self.parts.items() for k, v in part.grads.items()}

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """Replace the parts' arrays from a dict keyed like `params`: every key known, every array of its
        parameter's shape and dtype (checked before anything is replaced; missing keys are left as they are)."""
        current = self.params
        for key, value in params.items():
            if key not in current:
                raise ValueError(f"params: unexpected key {key!r}; this model has {', '.join(current)}")
            check_array(f"params[{key!r}]", value, current[key].shape, self.dtype)
        for key, value in params.items():
            part, _, name = key.partition(".")
            getattr(self, part).params[name] = value

    def forward(self, x: np.ndarray, lengths=None, rng: np.random.Generator | None = None) -> np.ndarray:
        """x: (B, T, I), or int token ids (B, T) with an embedding; lengths: (B,) or None; rng: draws the
        dropout mask (training); None: no dropout. -> (B, T, O), or (B, O) if many_to_one."""
        if self.embedding is not None:
            x = self.embedding.forward(x)
        c, between = self.lstm.config, None
        if rng is not None and self.dropout > 0 and c.num_layers > 1:    # dropout between stacked layers
            shape = (x.shape[0], x.shape[1], c.num_directions * c.hidden_size)
            between = [dropout_mask(rng, shape, self.dropout, self.dtype) for _ in range(c.num_layers - 1)]
        y, state_n = self.lstm.forward(x, lengths=lengths, dropout=between)
        h_n = state_n[0] if isinstance(state_n, tuple) else state_n   # LSTM: (h_n, c_n); GRU: h_n
        if self.many_to_one:
            D = self.lstm.config.num_directions
            y = np.concatenate(list(h_n[-D:]), axis=-1)  # (B, D·H): top layer, both directions
        self._mask = None
        if rng is not None and self.dropout > 0:
            self._mask = dropout_mask(rng, y.shape, self.dropout, self.dtype)
            y = y * self._mask
        return self.head.forward(y)

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """dout: like the output of forward -> dx (B, T, I) (None with an embedding); fills the parts' grads."""
        dfeature = self.head.backward(dout)
        if self._mask is not None:
            dfeature = dfeature * self._mask                # backprop through the dropout mask
        if not self.many_to_one:
            dx, _ = self.lstm.backward(dfeature)
        else:
            y_shape, s_shape = self.lstm._shapes
            H, D = self.lstm.config.hidden_size, self.lstm.config.num_directions
            dh_n = np.zeros(s_shape, self.dtype)
            dh_n[-D:] = dfeature.reshape(-1, D, H).transpose(1, 0, 2)
            dstate = dh_n if self.is_gru else (dh_n, np.zeros(s_shape, self.dtype))
            dx, _ = self.lstm.backward(np.zeros(y_shape, self.dtype), dstate)
        if self.embedding is None:
            return dx
        self.embedding.backward(dx)
        return None

    @property
    def is_gru(self) -> bool:
        """True when the recurrent layer is an nplstm.GRU (state h alone) rather than an LSTM (h, c)."""
        return not isinstance(self.lstm, LSTM)

    # Keras-shaped use on your own data: predict and evaluate live in nplstm/predict.py (NumPy only),
    # fit hands over to the trainer (nplstm/training/fit.py), as keras.Model.fit hands over to its trainer.
    def fit(self, x, y, **options):
        """Train on arrays or lists of sequences; nplstm.training.fit.fit documents every option. -> History."""
        from .training.fit import fit
        return fit(self, x, y, **options)

    def predict(self, x, lengths=None, *, batch_size: int = 256) -> np.ndarray:
        """Outputs in the data's own units (the scaler applied and, for regression, undone);
        class ids' scores for classification. See nplstm.predict.predict."""
        from .predict import predict
        return predict(self, x, lengths, batch_size=batch_size)

    def evaluate(self, x, y, lengths=None, *, mask=None, batch_size: int = 256) -> dict[str, float]:
        """Metrics on (x, y): loss and accuracy for integer targets, loss, MSE, MAE and R² for float ones."""
        from .predict import evaluate
        return evaluate(self, x, y, lengths, mask=mask, batch_size=batch_size)

    def forecast(self, history, steps: int) -> np.ndarray:
        """Recursive multi-step forecast of a series model: each prediction is fed back as the newest input."""
        from .predict import forecast
        return forecast(self, history, steps)
