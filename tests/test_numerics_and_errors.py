"""Extreme inputs stay finite and silent; malformed inputs raise errors that name what was expected."""
import warnings

import numpy as np
import pytest

import nplstm


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_and_softmax_never_overflow(dtype):
    big = np.finfo(dtype).max
    x = np.array([-big, -1e4, -100, -1, 0, 1, 100, 1e4, big], dtype)
    s = nplstm.sigmoid(x)
    assert s.dtype == dtype and np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert s[0] == 0 and s[-1] == 1 and s[4] == 0.5
    np.testing.assert_allclose(nplstm.sigmoid(x[2:-2]), 1 / (1 + np.exp(-x[2:-2].astype(np.float64))), atol=2e-7)
    z = np.array([[1e4, -1e4, 0], [-1e4, -1e4, -1e4], [big, -big, 0]], dtype)
    p = nplstm.softmax(z)
    assert p.dtype == dtype and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[0], [1, 0, 0])
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)
    lp = nplstm.log_softmax(z[:2])
    assert np.all(np.isfinite(lp)) and lp[0, 0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("peephole", ["diagonal", "full", None])
def test_lstm_extreme_inputs_are_finite(dtype, peephole):
    lstm = nplstm.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=peephole, dtype=dtype, seed=0)
    for k in lstm.params:
        lstm.params[k] = (lstm.params[k] * 1e3).astype(dtype)   # saturates every gate
    x = np.array([[[1e4, -1e4, 0]] * 5, [[-1e4, 1e4, 1e3]] * 5], dtype)
    y, (h, c) = lstm.forward(x)
    dx, (dh0, dc0) = lstm.backward(np.ones_like(y), (np.ones_like(h), np.ones_like(c)))
    for a in (y, h, c, dx, dh0, dc0, *lstm.grads.values()):
        assert np.all(np.isfinite(a))
    assert np.abs(y).max() <= 1


def test_cross_entropy_extreme_logits_are_finite():
    logits = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 0]], np.float32)
    loss, d = nplstm.softmax_cross_entropy(logits, np.array([1, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx(1e4, rel=1e-6)


# --- malformed input ---------------------------------------------------------------------------

def lstm():
    return nplstm.LSTM(3, 4, num_layers=2, seed=0)


@pytest.mark.parametrize("x,match", [
    (np.zeros((2, 5, 2), np.float32), r"x: expected shape \(\*, \*, 3\), got \(2, 5, 2\)"),
    (np.zeros((5, 3), np.float32), r"x: expected shape \(\*, \*, 3\), got \(5, 3\)"),
    (np.zeros((2, 5, 3)), r"x: expected dtype float32, got float64"),
    (np.zeros((2, 5, 3), np.int64), r"x: expected dtype float32, got int64"),
    ([[[0.0, 0.0, 0.0]]], r"x: expected a numpy array of shape \(\*, \*, 3\), got list"),
    (np.zeros((0, 5, 3), np.float32), r"at least one sequence"),
    (np.zeros((2, 0, 3), np.float32), r"at least one sequence"),
])
def test_malformed_x(x, match):
    with pytest.raises(ValueError, match=match):
        lstm().forward(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data(bad):
    x = np.zeros((2, 5, 3), np.float32)
    x[1, 3, 2] = bad
    with pytest.raises(ValueError, match=r"x: contains NaN or Inf \(first at index \(1, 3, 2\)"):
        lstm().forward(x)
    state = (np.zeros((2, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32))
    state[1][0, 0, 0] = bad
    with pytest.raises(ValueError, match="state c_0: contains NaN or Inf"):
        lstm().forward(np.zeros((2, 5, 3), np.float32), state)


@pytest.mark.parametrize("lengths,match", [
    ([5, 0], r"lengths: each must be in \[1, T=5\], got lengths\[1\] = 0"),
    ([6, 5], r"lengths: each must be in \[1, T=5\], got lengths\[0\] = 6"),
    ([-1, 5], r"got lengths\[0\] = -1"),
    ([5], r"lengths: expected 2 integers"),
    ([5.0, 4.0], r"lengths: expected 2 integers .* dtype float64"),
])
def test_bad_lengths(lengths, match):
    with pytest.raises(ValueError, match=match):
        lstm().forward(np.zeros((2, 5, 3), np.float32), lengths=np.array(lengths))


def test_bad_state():
    x = np.zeros((2, 5, 3), np.float32)
    h = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"state h_0: expected shape \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm().forward(x, (h[:1], h))
    with pytest.raises(ValueError, match=r"state h_0: expected shape \(2, 2, 4\), got \(2, 4\)"):
        lstm().forward(x, (h[0], h))       # no silent broadcast of a (B, H) state
    with pytest.raises(ValueError, match=r"state: expected a pair"):
        lstm().forward(x, h)


def test_backward_errors():
    layer = lstm()
    with pytest.raises(ValueError, match="backward\\(\\) called before forward\\(\\)"):
        layer.backward(np.zeros((2, 5, 4), np.float32))
    y, (h, c) = layer.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5, 4\), got \(2, 5, 1\)"):
        layer.backward(np.zeros((2, 5, 1), np.float32))    # would broadcast, must not
    with pytest.raises(ValueError, match=r"dstate dc_n: expected shape \(2, 2, 4\)"):
        layer.backward(np.zeros_like(y), (np.zeros_like(h), np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match=r"dy: expected dtype float32, got float64"):
        layer.backward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="backward\\(\\) called before forward\\(\\)"):
        nplstm.Linear(2, 3).backward(np.zeros((1, 3), np.float32))


def test_assigned_params_are_used_and_checked():
    layer = nplstm.LSTM(3, 4, peephole=None, seed=0)
    x = np.ones((1, 2, 3), np.float32)
    before = layer.forward(x)[0]
    layer.params["l0.b"] = layer.params["l0.b"] + np.float32(1)
    assert not np.allclose(layer.forward(x)[0], before)
    layer.params["l0.R"] = np.zeros((4, 4 * 4), np.float64)
    with pytest.raises(ValueError, match=r"params\['l0.R'\]: expected dtype float32, got float64"):
        layer.forward(x)
    layer.params["l0.R"] = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"params\['l0.R'\]: expected shape \(4, 16\), got \(4, 4\)"):
        layer.forward(x)
    del layer.params["l0.R"]
    with pytest.raises(ValueError, match=r"params: missing 'l0.R'"):
        layer.forward(x)


@pytest.mark.parametrize("kwargs,match", [
    (dict(peephole="diag"), r"peephole: expected one of \('diagonal', 'full', None\), got 'diag'"),
    (dict(dtype=np.float16), "dtype: expected float32 or float64, got float16"),
    (dict(num_layers=0), "num_layers: expected a positive int, got 0"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nplstm.LSTM(3, 4, **kwargs)


def test_loss_errors():
    pred = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"target: expected shape \(2, 3, 4\), got \(2, 3, 1\)"):
        nplstm.mse(pred, np.zeros((2, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"mask: expected shape \(2, 3\)"):
        nplstm.mse(pred, pred, mask=np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="mask: selects no position"):
        nplstm.mse(pred, pred, mask=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"targets: expected class indices in \[0, 4\)"):
        nplstm.softmax_cross_entropy(pred, np.full((2, 3), 4))
    with pytest.raises(ValueError, match="targets: expected integer class indices"):
        nplstm.softmax_cross_entropy(pred, np.zeros((2, 3)))
