"""Keras 3 (torch backend) as a second framework: nplstm's LSTMs, GRUs and Models move there and back.

Outputs are compared in float32, where two correct implementations that sum in different orders differ
by a few ulps of values of order 1: within 1e-5. Weights must come back exactly.
"""
import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nplstm  # noqa: E402
from nplstm.interop.keras import from_keras, to_keras  # noqa: E402

TOL = 1e-5   # float32 outputs of order 1: summation order alone moves them by ~1e-7


def randomized(obj, seed=0):
    """Every parameter random (biases and b_hn included), so no term hides behind a zero."""
    rng = np.random.default_rng(seed)
    parts = obj.parts.values() if isinstance(obj, nplstm.Model) else [obj]
    for part in parts:
        for k, v in part.params.items():
            part.params[k] = rng.normal(0, 0.5, v.shape).astype(np.float32)
    return obj


def run_keras(km, x):
    return keras.ops.convert_to_numpy(km(x))


def same_params(a, b):
    return a.params.keys() == b.params.keys() and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def keras_weights(km):
    return [np.array(w) for w in km.get_weights()]


LAYERS = [dict(num_layers=1), dict(num_layers=1, bidirectional=True), dict(num_layers=2),
          dict(num_layers=2, bidirectional=True)]


@pytest.mark.parametrize("cfg", LAYERS, ids=str)
@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_lstm_to_keras_and_back(cfg, activation):
    lstm = randomized(nplstm.LSTM(3, 4, peephole=None, input_activation=activation, output_activation=activation,
                                  **cfg))
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    km = to_keras(lstm)
    assert np.abs(run_keras(km, x) - lstm.forward(x)[0]).max() < TOL
    back = from_keras(km)
    assert same_params(back, lstm) and back.config == lstm.config


@pytest.mark.parametrize("cfg", LAYERS, ids=str)
def test_gru_to_keras_and_back(cfg):
    gru = randomized(nplstm.GRU(3, 4, **cfg))
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    km = to_keras(gru)
    assert np.abs(run_keras(km, x) - gru.forward(x)[0]).max() < TOL
    assert same_params(from_keras(km), gru)


@pytest.mark.parametrize("gru", [False, True], ids=["lstm", "gru"])
@pytest.mark.parametrize("many_to_one", [False, True], ids=["many_to_many", "many_to_one"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_model_to_keras_and_back(gru, many_to_one, bidirectional):
    rnn = (nplstm.GRU(3, 4, num_layers=2, bidirectional=bidirectional) if gru else
           nplstm.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, peephole=None))
    model = randomized(nplstm.Model(rnn, nplstm.Linear(4 * (1 + bidirectional), 2), many_to_one=many_to_one,
                                    dropout=0.25))
    x = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)
    km = to_keras(model)
    assert [type(layer).__name__ for layer in km.layers][-2:] == ["Dropout", "Dense"]
    assert np.abs(run_keras(km, x) - model.forward(x)).max() < TOL   # Keras's inference: no dropout
    back = from_keras(km)
    assert same_params(back, model) and back.many_to_one == many_to_one and back.dropout == 0.25


def test_model_with_an_embedding_to_keras_and_back():
    model = randomized(nplstm.Model(nplstm.LSTM(6, 4, peephole=None), nplstm.Linear(4, 3), many_to_one=True,
                                    embedding=nplstm.layers.Embedding(10, 6)))
    tokens = np.random.default_rng(1).integers(0, 10, (3, 5))
    km = to_keras(model)
    assert isinstance(km.layers[0], keras.layers.Embedding)
    assert np.abs(run_keras(km, tokens) - model.forward(tokens)).max() < TOL
    assert same_params(from_keras(km), model)


def keras_sequential(rnn, n_layers, bidirectional, return_sequences_last, head=2, I=3):
    layers = []
    for k in range(n_layers):
        layer = rnn(4, return_sequences=return_sequences_last or k < n_layers - 1)
        layers.append(keras.layers.Bidirectional(layer) if bidirectional else layer)
    return keras.Sequential([keras.Input((None, I))] + layers + [keras.layers.Dense(head)])


def random_keras_weights(km, seed=0):
    """Keras initializes biases to zero (the forget gate's to one): draw them all at random instead."""
    rng = np.random.default_rng(seed)
    km.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in km.get_weights()])
    return km


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("return_sequences", [True, False], ids=["many_to_many", "many_to_one"])
def test_keras_lstm_model_to_nplstm_and_back(bidirectional, return_sequences):
    km = random_keras_weights(keras_sequential(keras.layers.LSTM, 2, bidirectional, return_sequences))
    x = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)
    model = from_keras(km)
    assert model.many_to_one == (not return_sequences)
    assert np.abs(model.forward(x) - run_keras(km, x)).max() < TOL
    again = to_keras(model)
    assert all(np.array_equal(a, b) for a, b in zip(keras_weights(again), keras_weights(km)))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_keras_gru_model_to_nplstm_and_back(bidirectional):
    """Kernels come back exactly; the r and z recurrent biases come back folded into the input bias."""
    km = random_keras_weights(keras_sequential(keras.layers.GRU, 2, bidirectional, True))
    x = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)
    model = from_keras(km)
    assert np.abs(model.forward(x) - run_keras(km, x)).max() < TOL
    again = to_keras(model)
    for a, b in zip(keras_weights(again), keras_weights(km)):
        if a.shape[0] == 2 and a.ndim == 2:  # GRU bias (2, 3H): [input, recurrent], blocks z, r, h
            H = a.shape[1] // 3
            assert np.array_equal(a[0] + a[1], b[0] + b[1])   # a[1] is 0 for z, r: a[0] holds the sums
            assert np.array_equal(a[1, 2 * H:], b[1, 2 * H:]) and not a[1, :2 * H].any()
            assert np.array_equal(a[0, 2 * H:], b[0, 2 * H:])
        else:
            assert np.array_equal(a, b)
    assert np.abs(run_keras(again, x) - run_keras(km, x)).max() < TOL


@pytest.mark.parametrize("variant, message", [
    ("vanilla", "has no peephole connections; this LSTM has peephole='diagonal'"),
    (dict(peephole="full"), "has no peephole connections; this LSTM has peephole='full'"),
    (dict(peephole=None, input_gate=False), "always has an input gate; this LSTM has input_gate=False (NIG)"),
    (dict(peephole=None, forget_gate=False), "always has a forget gate; this LSTM has forget_gate=False (NFG)"),
    (dict(peephole=None, output_gate=False), "always has an output gate; this LSTM has output_gate=False (NOG)"),
    (dict(peephole=None, coupled=True), "has no coupled input and forget gates"),
    (dict(peephole=None, gate_recurrence=True), "has no recurrence from the gates"),
    (dict(peephole=None, input_activation="identity"), "has one `activation` for the cell input and the output"),
    (dict(peephole=None, output_activation="identity"), "has one `activation` for the cell input and the output"),
], ids=lambda v: str(v)[:40])
def test_variants_keras_lacks_are_refused(variant, message):
    lstm = nplstm.LSTM(3, 4, **({"variant": variant} if isinstance(variant, str) else variant))
    with pytest.raises(ValueError, match=re.escape("keras.layers.LSTM " + message)) as info:
        to_keras(nplstm.Model(lstm, nplstm.Linear(4, 1)))
    assert "\n" not in str(info.value)


def built(layer, I=3):
    layer.build((None, None, I))
    return layer


@pytest.mark.parametrize("make, message", [
    (lambda: built(keras.layers.GRU(4, reset_after=False)), "reset_after=False"),
    (lambda: built(keras.layers.LSTM(4, recurrent_activation="hard_sigmoid")), "recurrent_activation='sigmoid'"),
    (lambda: built(keras.layers.LSTM(4, activation="relu")), "got 'relu'"),
    (lambda: built(keras.layers.GRU(4, activation="linear")), "got 'linear'"),
    (lambda: built(keras.layers.LSTM(4, go_backwards=True)), "go_backwards=True outside a Bidirectional"),
    (lambda: built(keras.layers.Bidirectional(keras.layers.LSTM(4), merge_mode="sum")), "merge_mode='concat'"),
    (lambda: keras.layers.LSTM(4), "is not built"),
    (lambda: keras.Sequential([keras.Input((None, 3)), keras.layers.Conv1D(2, 2), keras.layers.LSTM(4)]),
     "got a Conv1D layer"),
    (lambda: keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                               keras.layers.LSTM(5)]), "expected LSTM D=1 H=4"),
    (lambda: keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                               keras.layers.GRU(4)]), "got GRU"),
    (lambda: keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4),
                               keras.layers.Dense(2, activation="softmax")]), "expected activation='linear'"),
    (lambda: keras.Sequential([keras.Input((None, 3)), keras.layers.Dense(2), keras.layers.LSTM(4)]),
     "out of order"),
    (lambda: keras.layers.Dense(3), "expected a keras LSTM, GRU, Bidirectional or Sequential, got Dense"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_what_nplstm_lacks_is_refused_by_from_keras(make, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        from_keras(make())
    assert "\n" not in str(info.value)


def test_to_keras_refuses_what_is_not_nplstm():
    with pytest.raises(ValueError, match="expected an nplstm.LSTM, nplstm.GRU or nplstm.Model, got Linear"):
        to_keras(nplstm.Linear(2, 2))


# --- ragged batches: Keras's masks against nplstm's lengths ------------------------------------

LENGTHS = np.array([5, 2, 4, 1])


def padded_inputs(I=3, seed=1):
    x = np.random.default_rng(seed).standard_normal((len(LENGTHS), LENGTHS.max(), I)).astype(np.float32)
    x[np.arange(x.shape[1])[None, :] >= LENGTHS[:, None]] = 0.0     # right-padded with zeros
    return x


@pytest.mark.parametrize("gru", [False, True], ids=["lstm", "gru"])
@pytest.mark.parametrize("many_to_one", [False, True], ids=["many_to_many", "many_to_one"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_keras_masking_gives_nplstms_lengths(gru, many_to_one, bidirectional):
    """The reverse direction included: Keras's backward layer skips the padded steps, then starts at
    each sequence's last valid step, as nplstm's reverse direction does."""
    rnn = (nplstm.GRU(3, 4, num_layers=2, bidirectional=bidirectional) if gru else
           nplstm.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, peephole=None))
    model = randomized(nplstm.Model(rnn, nplstm.Linear(4 * (1 + bidirectional), 2), many_to_one=many_to_one))
    km = to_keras(model, masking=True)
    assert isinstance(km.layers[0], keras.layers.Masking)
    x = padded_inputs()
    assert np.abs(run_keras(km, x) - model.forward(x, lengths=LENGTHS)).max() < TOL


def test_mask_zero_embedding_gives_nplstms_lengths():
    model = randomized(nplstm.Model(nplstm.LSTM(6, 4, peephole=None, bidirectional=True), nplstm.Linear(8, 3),
                                    many_to_one=True, embedding=nplstm.layers.Embedding(10, 6)))
    tokens = np.random.default_rng(1).integers(1, 10, (len(LENGTHS), LENGTHS.max()))
    tokens[np.arange(tokens.shape[1])[None, :] >= LENGTHS[:, None]] = 0    # token 0: padding
    km = to_keras(model, masking=True)
    assert km.layers[0].mask_zero
    assert np.abs(run_keras(km, tokens) - model.forward(tokens, lengths=LENGTHS)).max() < TOL


def test_keras_default_repeats_the_last_output_at_padded_steps():
    """Where the two differ: a plain Keras LSTM (zero_output_for_mask=False) carries its last valid output
    over the padding; nplstm outputs zeros there. The valid steps agree."""
    km = keras.Sequential([keras.Input((None, 3)), keras.layers.Masking(0.0),
                           keras.layers.LSTM(4, return_sequences=True)])
    lstm = from_keras(km)
    x = padded_inputs()
    y_keras, y = run_keras(km, x), lstm.forward(x, lengths=LENGTHS)[0]
    valid = np.arange(x.shape[1])[None, :] < LENGTHS[:, None]
    assert np.abs(y_keras[valid] - y[valid]).max() < TOL
    last = y[np.arange(len(LENGTHS)), LENGTHS - 1]                     # (B, H) each row's last valid output
    assert np.abs(y_keras[1, 2:] - last[1]).max() < TOL and not y[1, 2:].any()
