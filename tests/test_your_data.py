"""Your own data through the Python API: Embedding, dropout, AdamW, windows, padding, the scaler, prepare,
Model.fit / predict / evaluate / forecast, checkpoints. Gradients by central differences in float64,
optimizers against torch.optim, training runs small enough to take a second or two each."""
import numpy as np
import pytest

import nplstm
from nplstm.data import Scaler, as_series, chronological_split, pad_sequences, windows
from nplstm.layers import Embedding, Linear, Model, dropout_mask, embedding_backward, embedding_forward
from nplstm.optim import SGD, AdamW
from nplstm.predict import regression_metrics
from nplstm.tasks.user import Arrays, prepare, split
from nplstm.training.checkpoint import load_model, save_model
from tests.conftest import numeric_grad, random_lstm, rel_err


# --- helpers -------------------------------------------------------------------------------------------

def random_model(rng, I=2, H=3, O=2, *, many_to_one=True, vocab=None, dropout=0.0, dtype=np.float64):
    """A float64 model with every parameter random (the embedding's too), so that no term hides."""
    lstm = random_lstm(rng, I, H)
    head = Linear(H, O, dtype=dtype, seed=1)
    head.params = {k: rng.normal(0, 0.5, v.shape) for k, v in head.params.items()}
    emb = None
    if vocab:
        emb = Embedding(vocab, I, dtype=dtype, seed=2)
        emb.params["W"] = rng.normal(0, 0.5, emb.params["W"].shape)
    return Model(lstm, head, many_to_one=many_to_one, embedding=emb, dropout=dropout)


def small_model(I=1, H=16, O=1, *, many_to_one=True, vocab=None, dropout=0.0, seed=0, dtype=np.float64):
    lstm = nplstm.LSTM(I, H, dtype=dtype, seed=seed)
    emb = Embedding(vocab, I, dtype=dtype, seed=seed + 2) if vocab else None
    return Model(lstm, Linear(H, O, dtype=dtype, seed=seed + 1), many_to_one=many_to_one, embedding=emb,
                 dropout=dropout)


def sine_windows(n=500, window=20, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    s = np.sin(np.arange(n) * 0.3) + noise * rng.standard_normal(n)
    return windows(s, window)


# --- 1. gradients by finite differences ---------------------------------------------------------------

def test_embedding_backward_sums_a_repeated_token():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 3))
    tokens = np.array([[1, 3, 1], [4, 1, 0]])           # token 1 three times, token 2 never
    G = rng.standard_normal((2, 3, 3))
    out, cache = embedding_forward(tokens, W)
    assert np.array_equal(out, W[tokens])
    dW = embedding_backward(G, cache)["W"]
    num = numeric_grad(lambda: float((embedding_forward(tokens, W)[0] * G).sum()), {"W": W})["W"]
    assert rel_err(dW, num) < 1e-8
    assert np.allclose(dW[1], G[0, 0] + G[0, 2] + G[1, 1]) and not dW[2].any()


def test_embedding_layer_backward_and_errors():
    rng = np.random.default_rng(1)
    emb = Embedding(4, 2, dtype=np.float64, seed=0)
    tokens = np.array([[0, 0, 3]])
    G = rng.standard_normal((1, 3, 2))
    emb.forward(tokens)
    emb.backward(G)
    assert np.allclose(emb.grads["W"][0], G[0, 0] + G[0, 1]) and not emb.grads["W"][1:3].any()
    with pytest.raises(ValueError, match=r"ids in \[0, 4\), got 4"):
        emb.forward(np.array([[4]]))
    with pytest.raises(ValueError, match="integer array of token ids"):
        emb.forward(np.array([[0.5]]))


@pytest.mark.parametrize("many_to_one", [True, False])
@pytest.mark.parametrize("embed", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_model_gradients_by_finite_differences(many_to_one, embed, dropout):
    """Every parameter's gradient (and dx without an embedding), ragged lengths, a fixed dropout mask:
    each forward in the loss draws it from a fresh default_rng(0)."""
    rng = np.random.default_rng(7)
    model = random_model(rng, many_to_one=many_to_one, vocab=5 if embed else None, dropout=dropout)
    B, T = 3, 4
    lengths = np.array([4, 2, 3])
    x = rng.integers(0, 5, (B, T)) if embed else rng.standard_normal((B, T, 2))
    out_shape = (B, 2) if many_to_one else (B, T, 2)
    G = rng.standard_normal(out_shape)

    def loss():
        return float((model.forward(x, lengths, rng=np.random.default_rng(0)) * G).sum())

    loss()
    dx = model.backward(G)
    grads = {k: v.copy() for k, v in model.grads.items()}
    assert set(grads) == set(model.params)
    num = numeric_grad(loss, model.params)
    for k in grads:
        assert rel_err(grads[k], num[k]) < 1e-6, k
    if embed:
        assert dx is None
    else:
        num_x = numeric_grad(loss, {"x": x})["x"]
        assert rel_err(dx, num_x) < 1e-6
    if dropout:   # the mask did something: without it the output differs
        assert not np.allclose(model.forward(x, lengths, rng=np.random.default_rng(0)), model.forward(x, lengths))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("many_to_one", [True, False])
def test_dropout_between_stacked_layers_by_finite_differences(cell, many_to_one):
    """Three layers, bidirectional, ragged: the masks on the inputs of layers 1 and 2 and on the head's
    input, drawn from a fresh default_rng(0) in each forward, backpropagate exactly."""
    rng = np.random.default_rng(11)
    B, T, I, H = 3, 4, 2, 3
    if cell == "lstm":
        rnn = random_lstm(rng, I, H, num_layers=3, bidirectional=True)
    else:
        rnn = nplstm.GRU(I, H, num_layers=3, bidirectional=True, dtype=np.float64, seed=0)
        rnn.params = {k: rng.normal(0, 0.5, v.shape) for k, v in rnn.params.items()}
    model = Model(rnn, Linear(2 * H, 2, dtype=np.float64, seed=1), many_to_one=many_to_one, dropout=0.4)
    x, lengths = rng.standard_normal((B, T, I)), np.array([4, 2, 3])
    G = rng.standard_normal((B, 2) if many_to_one else (B, T, 2))

    def loss():
        return float((model.forward(x, lengths, rng=np.random.default_rng(0)) * G).sum())

    loss()
    dx = model.backward(G)
    grads = {k: v.copy() for k, v in model.grads.items()}
    num = numeric_grad(loss, {**model.params, "x": x})
    # relative to the largest gradient of the model: with masks that zero most paths into the upper layers,
    # some arrays' gradients are ~1e-4, where central differences' own rounding (~1e-10) is 1e-6 of them
    scale = max(np.abs(g).max() for g in grads.values())
    for k, g in {**grads, "x": dx}.items():
        assert np.abs(g - num[k]).max() / scale < 1e-7, k
    masks = model.lstm._cache.dropout
    assert len(masks) == 2 and all(m.shape == (B, T, 2 * H) for m in masks) and (masks[0] == 0).any()


def test_dropout_between_layers_is_the_layers_run_one_by_one_on_masked_inputs():
    rng = np.random.default_rng(3)
    stacked = random_lstm(rng, 2, 3, num_layers=2)
    x, lengths = rng.standard_normal((4, 5, 2)), np.array([5, 3, 1, 4])
    mask = dropout_mask(rng, (4, 5, 3), 0.5, np.dtype(np.float64))
    y, (h_n, _) = stacked.forward(x, lengths=lengths, dropout=[mask])
    first, second = nplstm.LSTM(2, 3, dtype=np.float64), nplstm.LSTM(3, 3, dtype=np.float64)
    first.params = {k[3:]: v for k, v in stacked.params.items() if k.startswith("l0.")}
    second.params = {"l0." + k[3:]: v for k, v in stacked.params.items() if k.startswith("l1.")}
    first.params = {"l0." + k: v for k, v in first.params.items()}
    y1, _ = first.forward(x, lengths=lengths)
    y2, (h2, _) = second.forward(y1 * mask, lengths=lengths)
    assert np.allclose(y, y2, rtol=0, atol=1e-12) and np.allclose(h_n[1], h2[0], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"dropout: expected 1 mask\(s\)"):
        stacked.forward(x, dropout=[mask, mask])
    with pytest.raises(ValueError, match=r"dropout\[0\]: expected shape"):
        stacked.forward(x, dropout=[mask[:, :2]])


def test_dropout_off_equals_a_model_without_dropout():
    rng = np.random.default_rng(3)
    with_p = random_model(rng, dropout=0.5, many_to_one=False)
    without = Model(with_p.lstm, with_p.head, many_to_one=False, dropout=0.0)
    x = rng.standard_normal((4, 5, 2))
    assert np.array_equal(with_p.forward(x), without.forward(x))                   # rng=None: no dropout
    assert np.array_equal(without.forward(x, rng=np.random.default_rng(0)), without.forward(x))   # p = 0
    assert not np.allclose(with_p.forward(x, rng=np.random.default_rng(0)), without.forward(x))


def test_dropout_mask_is_inverted_and_keeps_the_mean():
    p = 0.3
    mask = dropout_mask(np.random.default_rng(0), (400_000,), p, np.dtype(np.float64))
    assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}
    assert abs((mask == 0).mean() - p) < 0.005
    assert abs(mask.mean() - 1.0) < 0.01
    assert dropout_mask(np.random.default_rng(0), (3,), 0.5, np.dtype(np.float32)).dtype == np.float32


def test_model_refuses_a_bad_dropout_and_a_mismatched_embedding():
    lstm = nplstm.LSTM(3, 4, seed=0)
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match=r"dropout: expected a probability in \[0, 1\)"):
            Model(lstm, Linear(4, 1), dropout=bad)
    with pytest.raises(ValueError, match="embedding_dim = 3"):
        Model(lstm, Linear(4, 1), embedding=Embedding(10, 5))


# --- 2. optimizers against torch.optim ----------------------------------------------------------------

def _against_torch(torch, ours, theirs_cls, steps=6, **theirs_kw):
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 4), "b": (5,)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    topt = theirs_cls(list(tparams.values()), **theirs_kw)
    for _ in range(steps):
        grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
        ours.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
    for k in shapes:
        assert tparams[k].dtype == torch.float64
        assert rel_err(params[k], tparams[k].detach().numpy()) < 1e-12, k
    return params


@pytest.mark.slow            # the first test to import torch pays for it (seconds on 2 cores)
def test_adamw_equals_torch(torch):
    kw = dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3)
    _against_torch(torch, AdamW(**kw), torch.optim.AdamW, **kw)


def test_adamw_default_decay_equals_torch(torch):
    _against_torch(torch, AdamW(lr=0.01), torch.optim.AdamW, lr=0.01)      # both default weight_decay 0.01


def test_adamw_decay_is_decoupled():
    """With zero gradients Adam's step is 0, so AdamW only shrinks p by lr·wd·p per step."""
    p = {"w": np.array([1.0, -2.0])}
    opt = AdamW(lr=0.1, weight_decay=0.5)
    for _ in range(3):
        opt.step(p, {"w": np.zeros(2)})
    assert np.allclose(p["w"], np.array([1.0, -2.0]) * 0.95 ** 3, rtol=0, atol=1e-15)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_weight_decay_equals_torch(torch, momentum, nesterov):
    kw = dict(lr=0.03, momentum=momentum, nesterov=nesterov, weight_decay=0.2)
    _against_torch(torch, SGD(**kw), torch.optim.SGD, **kw)


def test_weight_decay_needs_adamw_or_sgd():
    x, y = sine_windows(60, 5)
    with pytest.raises(ValueError, match="weight_decay: applies to the optimizers adamw and sgd"):
        small_model(H=4).fit(x, y, steps=1, optimizer="adam", weight_decay=0.1)


# --- 3. windows, padding, split, scaler -----------------------------------------------------------------

def test_windows_values_horizon_and_stride():
    x, y = windows(np.arange(10.0), 3, horizon=2, stride=2)
    assert x.shape == (3, 3, 1) and y.shape == (3, 1) and x.dtype == y.dtype == np.float64
    assert x[:, :, 0].tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    assert y[:, 0].tolist() == [4, 6, 8]                      # horizon 2: one step after the next
    x, y = windows(np.arange(10.0), 4)
    assert len(x) == 10 - 4 - 1 + 1 and y[:, 0].tolist() == list(range(4, 10))
    assert np.array_equal(x[-1, :, 0], [5, 6, 7, 8])


def test_windows_of_a_multivariate_series():
    s = np.stack([np.arange(8.0), 100 + np.arange(8.0)], axis=1)
    x, y = windows(s, 3, horizon=1)
    assert x.shape == (5, 3, 2) and y.shape == (5, 2)
    assert np.array_equal(x[1], s[1:4]) and np.array_equal(y[1], s[4])


def test_windows_refuses_short_and_bad_series():
    with pytest.raises(ValueError, match=r"at least window \+ horizon = 6 values, got 5"):
        windows(np.arange(5.0), 4, horizon=2)
    assert len(windows(np.arange(6.0), 4, horizon=2)[0]) == 1           # exactly enough: one window
    with pytest.raises(ValueError, match="window: expected a positive int"):
        windows(np.arange(5.0), 0)
    with pytest.raises(ValueError, match="stride: expected a positive int"):
        windows(np.arange(5.0), 2, stride=0)
    with pytest.raises(ValueError, match=r"NaN or Inf \(first at row 2, 2 rows in all\)"):
        as_series([1.0, 2.0, np.nan, np.inf])
    with pytest.raises(ValueError, match="expected numbers"):
        as_series(["a", "b"])
    with pytest.raises(ValueError, match=r"expected shape \(N,\) or \(N, F\)"):
        as_series(np.zeros((2, 2, 2)))


def test_pad_sequences_values_and_errors():
    x, lengths = pad_sequences([np.ones((2, 3)), 2 * np.ones((4, 3))], fill=-1.0)
    assert x.shape == (2, 4, 3) and lengths.tolist() == [2, 4] and lengths.dtype == np.int64
    assert (x[0, 2:] == -1).all() and (x[0, :2] == 1).all() and (x[1] == 2).all()
    x, lengths = pad_sequences([[1, 2, 3], [4]])
    assert x.dtype.kind == "i" and x.tolist() == [[1, 2, 3], [4, 0, 0]]
    with pytest.raises(ValueError, match=r"every sequence of shape \(L, 3\) like the first, sequence 1 has shape \(2, 2\)"):
        pad_sequences([np.zeros((2, 3)), np.zeros((2, 2))])
    with pytest.raises(ValueError, match="at least one sequence, got an empty list"):
        pad_sequences([])
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_sequences([np.zeros(2), np.zeros(0)])
    with pytest.raises(ValueError, match="expected a list of arrays, got ndarray"):
        pad_sequences(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="sequence 0 is not a rectangular array"):
        pad_sequences([[[1, 2], [3]]])


def test_chronological_split():
    train, test = chronological_split(10, 0.25)
    assert train.tolist() == list(range(7)) and test.tolist() == [7, 8, 9]     # ceil(2.5) = 3, the latest
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"test_fraction: expected a number in \(0, 1\)"):
            chronological_split(10, bad)
    with pytest.raises(ValueError, match="keep any to train on"):
        chronological_split(1, 0.5)


def test_scaler_is_fitted_on_the_training_split_only():
    """The validation part (the latest 50 %) has a mean of 100: none of it may reach the scaler."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5, 2))
    y = rng.standard_normal(40)
    x[20:] += 100.0
    y[20:] += 50.0
    train, val = split(prepare(x, y), 0.5)
    task = Arrays(train, val)
    assert np.allclose(task.scaler.x_mean, x[:20].reshape(-1, 2).mean(0))
    assert np.allclose(task.scaler.x_std, x[:20].reshape(-1, 2).std(0))
    assert np.allclose(task.scaler.y_mean, y[:20].mean()) and np.allclose(task.scaler.y_std, y[:20].std())
    assert abs(task.scaler.x_mean).max() < 1                 # a leak would put it near 50
    model = small_model(I=2, H=4)
    model.fit(x, y, validation=0.5, steps=1)
    assert np.allclose(model.scaler.x_mean, task.scaler.x_mean) and np.allclose(model.scaler.y_mean, y[:20].mean())


def test_scaler_skips_padded_steps_and_constant_columns():
    seqs = [np.full((3, 2), [5.0, 1.0]), np.full((1, 2), [7.0, 1.0])]   # padding zeros must not count
    train = prepare(seqs, np.array([0, 1]))
    task = Arrays(train)
    assert np.allclose(task.scaler.x_mean, [5.5, 1.0]) and task.scaler.x_std[1] == 1.0   # constant: std 1
    assert task.scaler.y_mean is None                        # classes: no target scaling


def test_scaler_arrays_round_trip_and_from_arrays_refuses_bad_ones():
    s = Scaler(np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0]), np.array([6.0]))
    back = Scaler.from_arrays(s.arrays())
    assert all(np.array_equal(a, b) for a, b in zip(s, back))
    assert Scaler.from_arrays({}) is None
    only_x = Scaler(np.zeros(2), np.ones(2))
    assert set(only_x.arrays()) == {"scaler/x_mean", "scaler/x_std"} and Scaler.from_arrays(only_x.arrays()).y_mean is None
    assert np.allclose(s.y_inverse(s.y(np.array([[9.0]]))), 9.0) and np.allclose(s.x(np.array([4.0, 6.0])), [1, 1])
    good = s.arrays()
    bad_cases = [
        ({"scaler/x_std": np.array([0.0, 1.0])}, "std > 0"),
        ({"scaler/x_mean": np.array([np.nan, 1.0])}, "finite 1-D array"),
        ({"scaler/x_mean": np.zeros((2, 1))}, "finite 1-D array"),
        ({"scaler/x_mean": np.array(["a", "b"])}, "finite 1-D array of numbers"),
        ({"scaler/x_std": np.ones(3)}, "do not match"),
        ({"scaler/y_std": np.ones(2)}, "do not match"),          # y_mean (1,) with y_std (2,)
    ]
    for change, message in bad_cases:
        with pytest.raises(ValueError, match=message):
            Scaler.from_arrays({**good, **change}, "ckpt.npz")
    no_y_std = {k: v for k, v in good.items() if k != "scaler/y_std"}
    with pytest.raises(ValueError, match="ckpt.npz: the scaler's arrays do not match"):
        Scaler.from_arrays(no_y_std, "ckpt.npz")


# --- 4. prepare: what the shapes mean -------------------------------------------------------------------

def test_prepare_infers_the_kind_of_target():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 2))
    d = prepare(x, rng.standard_normal(6))                         # (B,) float: many-to-one regression
    assert d.y.shape == (6, 1) and d.y.dtype == np.float64 and d.mask is None and d.lengths is None
    d = prepare(x, rng.standard_normal((6, 4)))                    # (B, T), T = x's: per step
    assert d.y.shape == (6, 4, 1) and d.mask.shape == (6, 4) and d.mask.all()
    d = prepare(x, rng.standard_normal((6, 4)), many_to_one=True)  # ... unless many_to_one says otherwise
    assert d.y.shape == (6, 4) and d.mask is None
    d = prepare(x, rng.standard_normal((6, 3)))                    # (B, O), O != T: many-to-one values
    assert d.y.shape == (6, 3) and d.mask is None
    d = prepare(x, np.array([0, 1, 2, 0, 1, 2]))                   # (B,) ints: classes
    assert d.y.dtype == np.int64 and d.y.shape == (6,) and d.mask is None
    d = prepare(x, rng.integers(0, 3, (6, 4)))                     # (B, T) ints: a class per step
    assert d.y.shape == (6, 4) and d.mask.all()
    d = prepare(rng.standard_normal((6, 4)), rng.standard_normal(6))   # (B, T) float x: one feature
    assert d.x.shape == (6, 4, 1)
    d = prepare(rng.integers(0, 9, (6, 4)), np.zeros(6, int))      # (B, T) int x: token ids
    assert d.x.shape == (6, 4) and d.x.dtype == np.int64


def test_prepare_pads_a_list_and_infers_lengths_and_the_mask():
    seqs = [np.ones((3, 2)), np.ones((1, 2)), np.ones((2, 2))]
    d = prepare(seqs, [np.arange(3.0), np.arange(1.0), np.arange(2.0)])
    assert d.x.shape == (3, 3, 2) and d.lengths.tolist() == [3, 1, 2]
    assert d.y.shape == (3, 3, 1) and d.mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    mask = np.array([[True, False, True]] * 3)
    d = prepare(seqs, [np.arange(3), np.arange(1), np.arange(2)], mask=mask)
    assert d.mask.tolist() == [[1, 0, 1], [1, 0, 0], [1, 0, 0]]    # the mask and the lengths both
    d = prepare(seqs, [1.0, 2.0, 3.0])
    assert d.y.shape == (3, 1) and d.mask is None
    d = prepare(np.ones((2, 3, 1)), [0, 1], lengths=[3, 2])
    assert d.lengths.tolist() == [3, 2] and d.lengths.dtype == np.int64


X = np.zeros((4, 3, 2))


@pytest.mark.parametrize("args,kwargs,message", [
    ((np.zeros(4), np.zeros(4)), {}, r"x: expected numbers \(B, T, I\)"),
    ((np.zeros((4, 3, 2, 1)), np.zeros(4)), {}, r"x: expected numbers"),
    ((np.array([["a"]]), np.zeros(1)), {}, "x: expected numbers"),
    ((np.zeros((0, 3, 2)), np.zeros(0)), {}, "at least one sequence of at least one step"),
    ((np.full((4, 3, 2), np.nan), np.zeros(4)), {}, r"x: contains NaN or Inf \(first at index \(0, 0, 0\)\)"),
    ((-np.ones((4, 3), int), np.zeros(4)), {}, "token ids must be >= 0"),
    ((X, np.zeros(5)), {}, "y: expected 4 targets"),
    ((X, np.array(1.0)), {}, "y: expected 4 targets"),
    ((X, np.array(["a"] * 4)), {}, "y: expected 4 targets"),
    ((X, np.array([0, 1, np.nan, 1])), {}, r"y: contains NaN or Inf \(first at index \(2,\)\)"),
    ((X, np.array([0, -1, 0, 1])), {}, "class ids must be >= 0"),
    ((X, np.zeros((4, 5), int)), {}, r"class ids must be >= 0 and of shape \(4,\) or \(4, 3\)"),
    ((X, np.zeros((4, 3), int)), {"many_to_one": True}, "integer targets .* are per step"),
    ((X, np.zeros((4, 5, 1))), {}, r"y: expected values .* with T = 3"),
    ((X, np.zeros(4)), {"lengths": [3, 3, 4, 1]}, r"lengths: expected 4 integers in \[1, 3\]"),
    ((X, np.zeros(4)), {"lengths": [3, 3, 0, 1]}, r"lengths: expected 4 integers in \[1, 3\]"),
    ((X, np.zeros(4)), {"lengths": [1.0, 2.0, 3.0, 1.0]}, "lengths: expected 4 integers"),
    ((X, np.zeros(4)), {"lengths": [3, 3]}, "lengths: expected 4 integers"),
    ((X, np.zeros(4)), {"mask": np.ones((4, 3), bool)}, "one per sequence .*a per-step mask does not apply"),
    ((X, np.zeros((4, 3))), {"mask": np.ones((4, 3))}, r"mask: expected a bool array of shape \(4, 3\)"),
    ((X, np.zeros((4, 3))), {"mask": np.ones((4, 2), bool)}, r"mask: expected a bool array of shape \(4, 3\)"),
    ((X, np.zeros((4, 3))), {"mask": np.zeros((4, 3), bool)}, "no step is counted"),
    (([np.zeros((2, 1))], np.zeros(1)), {"lengths": [2]}, "a list of sequences carries its own lengths"),
    (([np.zeros((2, 1)), np.zeros((3, 1))], [np.zeros(2), np.zeros(1)]), {},
     "sequence 1 has 3 steps and 1 targets"),
])
def test_prepare_refuses_malformed_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare(*args, **kwargs)


def test_split_and_arrays_refuse_mismatched_validation():
    data = prepare(np.zeros((10, 3, 2)), np.arange(10.0))
    train, val = split(data, 0.3)
    assert len(train.x) == 7 and np.array_equal(val.y[:, 0], [7, 8, 9])       # the latest, in order
    assert split(data, 0) == (data, None) and split(data, None)[1] is None
    for bad in (1.0, -0.5, True, "0.2"):
        with pytest.raises(ValueError, match="validation: expected a fraction"):
            split(data, bad)
    with pytest.raises(ValueError, match=r"validation: expected a fraction or \(x, y\[, lengths\]\)"):
        split(data, (1,))
    with pytest.raises(ValueError, match="leaves none to train on"):
        split(prepare(np.zeros((1, 3, 2)), np.zeros(1)), 0.5)
    two = prepare(np.zeros((5, 3, 1)), np.zeros((5, 2)))
    three = prepare(np.zeros((5, 3, 1)), np.zeros((5, 3)), many_to_one=True)
    with pytest.raises(ValueError, match=r"validation: y is float64\(5, 3\), the training y float64\(5, 2\)"):
        Arrays(two, three)
    with pytest.raises(ValueError, match="validation: x has shape"):
        Arrays(two, prepare(np.zeros((5, 3, 4)), np.zeros((5, 2))))


# --- 5. Model.fit, predict, evaluate, forecast, checkpoints --------------------------------------------

@pytest.mark.slow
def test_fit_a_sine_series_beats_persistence():
    x, y = sine_windows(600, 20, noise=0.05)
    n_test = 80
    model = small_model(H=12)
    history = model.fit(x[:-n_test], y[:-n_test], steps=150, lr=2e-2, batch_size=32, eval_every=50)
    assert history.steps_done == 150 and history.stopped == "steps"
    got = model.evaluate(x[-n_test:], y[-n_test:])
    persistence = regression_metrics(x[-n_test:, -1], y[-n_test:])
    assert got["mse"] < 0.5 * persistence["mse"], (got, persistence)
    assert got["r2"] > 0.9
    pred = model.predict(x[-n_test:])
    assert pred.shape == (n_test, 1) and np.isclose(np.mean((pred - y[-n_test:]) ** 2), got["mse"])


def ragged_sign_data(n, seed):
    """Ragged sequences of 3..12 steps; class 1 when the first step is positive (it must be remembered)."""
    rng = np.random.default_rng(seed)
    seqs = [rng.standard_normal((int(rng.integers(3, 13)), 1)) for _ in range(n)]
    labels = np.array([int(s[0, 0] > 0) for s in seqs])
    return seqs, labels


@pytest.mark.slow
def test_fit_classifies_ragged_sequences():
    seqs, labels = ragged_sign_data(400, 0)
    model = small_model(H=12, O=2)
    model.fit(seqs, labels, steps=150, lr=3e-2, batch_size=32, eval_every=50)
    assert model.target == "classes"
    test_seqs, test_labels = ragged_sign_data(200, 1)
    got = model.evaluate(test_seqs, test_labels)
    assert got["accuracy"] > 0.85, got
    probs = model.predict(test_seqs)
    assert probs.shape == (200, 2) and np.allclose(probs.sum(1), 1)
    assert np.isclose((probs.argmax(1) == test_labels).mean(), got["accuracy"])


@pytest.mark.slow
def test_fit_token_ids_with_an_embedding():
    """Class: is token 3 anywhere in the sequence?"""
    rng = np.random.default_rng(0)

    def data(n):
        x = rng.integers(0, 6, (n, 8))
        x[: n // 2][x[: n // 2] == 3] = 4          # half without a 3
        return x, (x == 3).any(1).astype(int)
    x, y = data(400)
    model = small_model(I=8, H=16, O=2, vocab=6)
    model.fit(x, y, steps=200, lr=2e-2, batch_size=32, eval_every=50)
    xt, yt = data(200)
    got = model.evaluate(xt, yt)
    assert got["accuracy"] > 0.85, got
    assert model.scaler is None                                    # token ids are never standardised
    with pytest.raises(ValueError, match="this model embeds token ids"):
        model.predict(xt.astype(float))


def diverging_validation():
    """Training data sin -> next value; a validation set whose targets are the opposite, so that training
    makes the validation loss worse: the best evaluation is the first one."""
    x, y = sine_windows(300, 10, noise=0.0)
    return x, y, (x[:60], 5 - 3 * y[:60])


def test_early_stop_and_restore_best():
    x, y, val = diverging_validation()
    model = small_model(H=8)
    history = model.fit(x, y, validation=val, steps=200, eval_every=5, lr=3e-2, early_stop=3)
    losses = [r["test"]["loss"] for r in history.records]
    assert history.stopped == "patience" and history.steps_done < 200
    best = int(np.argmin(losses))
    assert len(losses) - 1 - best == 3                              # stopped right at the patience
    assert np.isclose(model.evaluate(*val)["loss"], losses[best], rtol=1e-9), (losses, model.evaluate(*val))
    model2 = small_model(H=8)
    h2 = model2.fit(x, y, validation=val, steps=200, eval_every=5, lr=3e-2, early_stop=3, restore_best=False)
    assert np.isclose(model2.evaluate(*val)["loss"], h2.records[-1]["test"]["loss"], rtol=1e-9)
    assert h2.records[-1]["test"]["loss"] > losses[best]


def test_fit_resume_continues_exactly(tmp_path):
    x, y = sine_windows(200, 10)
    common = dict(eval_every=5, lr=2e-2, batch_size=16, restore_best=False)
    first = small_model(H=8, dropout=0.2)
    first.fit(x, y, steps=12, run_dir=tmp_path / "run", **common)
    resumed = small_model(H=8, dropout=0.2)
    history = resumed.fit(x, y, steps=30, run_dir=tmp_path / "run", resume=True, **common)
    straight = small_model(H=8, dropout=0.2)
    straight_history = straight.fit(x, y, steps=30, **common)
    assert history.steps_done == 30
    for k in straight.params:
        assert np.array_equal(resumed.params[k], straight.params[k]), k
    # the first part's last evaluation (at 12) closed its window early: from the next full window on, equal
    assert [r["train_loss"] for r in history.records if r["step"] >= 20] == \
        [r["train_loss"] for r in straight_history.records if r["step"] >= 20]
    assert [r["step"] for r in history.records] == [5, 10, 12, 15, 20, 25, 30]
    with pytest.raises(ValueError, match="resume: say which run to continue with run_dir"):
        small_model(H=8).fit(x, y, steps=30, resume=True)
    with pytest.raises(ValueError, match="already holds a run"):
        small_model(H=8).fit(x, y, steps=30, run_dir=tmp_path / "run")


def test_fit_resume_restores_the_best_of_the_whole_run(tmp_path):
    x, y, val = diverging_validation()
    common = dict(validation=val, eval_every=5, lr=3e-2)
    small_model(H=8).fit(x, y, steps=20, run_dir=tmp_path / "run", **common)
    resumed = small_model(H=8)
    resumed.fit(x, y, steps=40, run_dir=tmp_path / "run", resume=True, **common)
    straight = small_model(H=8)
    straight.fit(x, y, steps=40, **common)
    assert np.isclose(resumed.evaluate(*val)["loss"], straight.evaluate(*val)["loss"])


def test_run_dir_checkpoint_holds_the_model_fit_returned(tmp_path):
    x, y, val = diverging_validation()
    model = small_model(H=8)
    model.fit(x, y, validation=val, steps=30, eval_every=5, lr=3e-2, run_dir=tmp_path / "run")
    loaded = load_model(tmp_path / "run" / "checkpoint.npz")
    assert np.array_equal(loaded.predict(x[:5]), model.predict(x[:5]))


def test_save_and_load_keep_scaler_target_embedding_dropout(tmp_path):
    rng = np.random.default_rng(0)
    # regression with a scaler
    x, y = sine_windows(120, 8)
    reg = small_model(H=6, dropout=0.25)
    reg.fit(x, 10 + 3 * y, steps=5, eval_every=5)
    save_model(tmp_path / "reg.npz", reg)
    back = load_model(tmp_path / "reg.npz")
    assert back.target == "values" and back.dropout == 0.25 and back.embedding is None
    for a, b in zip(reg.scaler, back.scaler):
        assert np.array_equal(a, b)
    assert back.scaler.y_mean[0] > 5                         # the target's own units were learned
    assert np.array_equal(back.predict(x), reg.predict(x))
    assert back.evaluate(x, 10 + 3 * y) == reg.evaluate(x, 10 + 3 * y)
    assert np.array_equal(back.forecast(x[-1, :, 0], 4), reg.forecast(x[-1, :, 0], 4))
    # classification of token ids with an embedding
    tokens, labels = rng.integers(0, 7, (30, 5)), rng.integers(0, 3, 30)
    cls = small_model(I=4, H=6, O=3, vocab=7, dropout=0.1)
    cls.fit(tokens, labels, steps=3)
    save_model(tmp_path / "cls.npz", cls)
    back = load_model(tmp_path / "cls.npz")
    assert back.target == "classes" and back.scaler is None and back.dropout == 0.1
    assert back.embedding.num_embeddings == 7 and np.array_equal(back.params["embedding.W"], cls.params["embedding.W"])
    assert np.array_equal(back.predict(tokens), cls.predict(tokens))


def test_predict_and_evaluate_per_step_with_lengths():
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((int(n), 2)) for n in (5, 2, 4)]
    targets = [s[:, 0] * 2 for s in seqs]
    model = small_model(I=2, H=4, many_to_one=False)
    model.fit(seqs * 4, targets * 4, steps=2, validation=0)
    pred = model.predict(seqs)
    assert pred.shape == (3, 5, 1)
    assert not pred[1, 2:].any() and not pred[2, 4:].any() and pred[1, :2].all()
    got = model.evaluate(seqs, targets)
    assert set(got) == {"loss", "mse", "mae", "r2"}
    counted = [p[:len(t), 0] - t for p, t in zip(pred, targets)]
    assert np.isclose(got["mse"], np.mean(np.concatenate(counted) ** 2))
    only_first = np.zeros((3, 5), bool)
    only_first[:, 0] = True
    masked = model.evaluate(seqs, targets, mask=only_first)
    assert np.isclose(masked["mse"], np.mean([(pred[b, 0, 0] - targets[b][0]) ** 2 for b in range(3)]))
    with pytest.raises(ValueError, match=r"x: expected numbers of shape \(B, T, 2\)"):
        model.predict(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="lengths: a list of sequences carries its own lengths"):
        model.predict(seqs, lengths=[1, 1, 1])
    with pytest.raises(ValueError, match=r"y: expected numbers of shape \(3, 5, 1\)"):
        model.evaluate(seqs, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="x: contains NaN or Inf"):
        model.predict(np.full((1, 2, 2), np.nan))


def test_forecast_feeds_each_prediction_back():
    x, y = sine_windows(120, 8)
    model = small_model(H=6)
    model.fit(x, y, steps=5)
    history = x[-1, :, 0]
    ahead = model.forecast(history, 3)
    assert ahead.shape == (3,)
    window, manual = history.copy(), []
    for _ in range(3):
        nxt = model.predict(window[None, :, None])[0, 0]
        manual.append(nxt)
        window = np.append(window[1:], nxt)
    assert np.allclose(ahead, manual, rtol=0, atol=1e-12)
    assert model.forecast(history[:, None], 2).shape == (2, 1)
    with pytest.raises(ValueError, match=r"history: expected shape \(N, 1\)"):
        model.forecast(np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="steps: expected a positive int"):
        model.forecast(history, 0)
    per_step = small_model(H=4, many_to_one=False)
    with pytest.raises(ValueError, match="forecast: needs a many-to-one model .* at every step"):
        per_step.forecast(history, 2)
    two_out = small_model(H=4, O=2)
    with pytest.raises(ValueError, match="maps 1 inputs to 2 outputs"):
        two_out.forecast(history, 2)


def test_evaluate_classification_refuses_bad_targets_and_masks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4, 1))
    model = small_model(H=4, O=3)
    model.fit(x, np.array([0, 1, 2, 0, 1, 2]), steps=1)
    with pytest.raises(ValueError, match=r"y: expected class ids in \[0, 3\)"):
        model.evaluate(x, np.array([0, 1, 3, 0, 1, 2]))
    with pytest.raises(ValueError, match=r"y: expected integer class ids of shape \(6,\)"):
        model.evaluate(x, np.zeros(6))
    with pytest.raises(ValueError, match="mask: a many-to-one model has one target per sequence"):
        model.evaluate(x, np.zeros(6, int), mask=np.ones((6, 4), bool))


def test_regression_metrics_known_values():
    m = regression_metrics(np.array([[1.0], [2.0], [4.0]]), np.array([[1.0], [3.0], [5.0]]))
    assert np.isclose(m["mse"], 2 / 3) and np.isclose(m["mae"], 2 / 3)
    assert np.isclose(m["r2"], 1 - 2 / (((np.array([1, 3, 5]) - 3) ** 2).sum()))
    assert np.isnan(regression_metrics(np.ones((2, 1)), np.ones((2, 1)))["r2"])      # constant targets


@pytest.mark.parametrize("build,args,kwargs,message", [
    (lambda: small_model(H=4), (np.zeros((8, 3, 1)), np.zeros((8, 3))), {},
     "a target per step, but the model is many-to-one; build the Model with many_to_one=False"),
    (lambda: small_model(H=4, many_to_one=False), (np.zeros((8, 3, 1)), np.zeros(8)), {},
     "one target per sequence .*many_to_one=True"),
    (lambda: small_model(H=4), (np.zeros((8, 3, 2)), np.zeros(8)), {}, "x: 2 features per step, the model takes 1"),
    (lambda: small_model(H=4, O=2), (np.zeros((8, 3, 1)), np.arange(8) % 3), {},
     "class ids up to 2, the model's head has 2 outputs"),
    (lambda: small_model(H=4, O=2), (np.zeros((8, 3, 1)), np.zeros(8)), {},
     "y: 1 values per target, the model's head has 2 outputs"),
    (lambda: small_model(H=4), (np.zeros((8, 3), int), np.zeros(8)), {}, "token ids .* a model without an Embedding"),
    (lambda: small_model(I=2, H=4, vocab=4), (np.full((8, 3), 5), np.zeros(8)), {},
     "token ids up to 5, the model's Embedding has 4 rows"),
    (lambda: small_model(H=4, O=2), (np.zeros((8, 3, 1)), np.arange(8) % 2),
     {"validation": (np.zeros((2, 3, 1)), np.array([0, 2]))}, r"y \(validation\): class ids up to 2, the model's head"),
    (lambda: small_model(H=4), (np.zeros((8, 3, 1)), np.zeros(8)), {"batch_size": 0},
     "batch_size: expected a positive int, got 0"),
    (lambda: small_model(H=4), (np.zeros((8, 3, 1)), np.zeros(8)), {"eval_every": 0},
     "eval_every: expected a positive int, got 0"),
    (lambda: small_model(H=4), (np.zeros((8, 3, 1)), np.zeros(8)), {"steps": 3, "epochs": 1},
     "steps and epochs: give one"),
    (lambda: small_model(H=4), (np.zeros((8, 3, 1)), np.zeros(8)), {"optimizer": "lbfgs"}, "optimizer: expected one of"),
])
def test_fit_refuses_data_the_model_does_not_fit(build, args, kwargs, message):
    model = build()
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(ValueError, match=message):
        model.fit(*args, **kwargs)
    assert all(np.array_equal(before[k], model.params[k]) for k in before)   # nothing trained


def test_fit_epochs_and_adamw_shrink_unused_weights():
    """epochs counts passes at batch_size; AdamW's decay shrinks a weight that gets no gradient (an
    embedding row of a token never seen) by exactly (1 - lr·wd) per update."""
    x = np.random.default_rng(0).integers(0, 3, (20, 4))          # token 3 never occurs
    model = small_model(I=2, H=4, O=2, vocab=4)
    row = model.params["embedding.W"][3].copy()
    history = model.fit(x, x[:, 0] % 2, epochs=2, batch_size=6, validation=0.1, optimizer="adamw",
                        weight_decay=0.5, lr=0.01, clip=None, restore_best=False)
    assert history.steps_done == 2 * 3                            # 18 training sequences, 3 batches each epoch
    assert np.allclose(model.params["embedding.W"][3], row * (1 - 0.01 * 0.5) ** 6, rtol=1e-12)
