"""The plain tanh RNN: finite differences, torch.nn.RNN as the oracle, and its input checks."""
import numpy as np
import pytest

import nplstm
from tests.conftest import rel_err


def random_rnn(rng, I, H):
    """A float64 RNN with every parameter random, so no term hides."""
    rnn = nplstm.RNN(I, H, dtype=np.float64, seed=int(rng.integers(1 << 30)))
    for k, v in rnn.params.items():
        rnn.params[k] = rng.normal(0, 0.5, v.shape)
    return rnn


@pytest.mark.parametrize("B,T,I,H,with_state", [(2, 5, 3, 4, True), (3, 4, 2, 3, False), (1, 1, 1, 1, True)])
def test_backward_matches_finite_differences(B, T, I, H, with_state):
    rng = np.random.default_rng(B * 100 + T)
    rnn = random_rnn(rng, I, H)
    x, h0 = rng.standard_normal((B, T, I)), rng.standard_normal((1, B, H))
    report = nplstm.gradcheck(rnn, x, h0 if with_state else None)
    assert report.ok, f"\n{report}"
    assert len(report.errors) == 3 + 1 + with_state       # W, R, b, x and h_0 were all compared
    assert sum(report.checked.values()) == I * H + H * H + H + x.size + with_state * h0.size


def torch_rnn(torch, rnn):
    """torch.nn.RNN (tanh, batch-first) with rnn's weights: weight_ih = Wᵀ, weight_hh = Rᵀ, b_ih = b, b_hh = 0."""
    dtype = torch.float64 if rnn.dtype == np.float64 else torch.float32
    module = torch.nn.RNN(rnn.input_size, rnn.hidden_size, nonlinearity="tanh", batch_first=True).to(dtype)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(rnn.params["W"].T))
        module.weight_hh_l0.copy_(torch.tensor(rnn.params["R"].T))
        module.bias_ih_l0.copy_(torch.tensor(rnn.params["b"]))
        module.bias_hh_l0.zero_()
    return module


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_matches_torch_nn_rnn(torch, dtype, tol):
    rng = np.random.default_rng(0)
    rnn = nplstm.RNN(3, 5, dtype=dtype, seed=1)
    x, h0 = rng.standard_normal((4, 7, 3)).astype(dtype), rng.standard_normal((1, 4, 5)).astype(dtype)
    y, h_n = rnn.forward(x, h0)
    dy, dh_n = rng.standard_normal(y.shape).astype(dtype), rng.standard_normal(h_n.shape).astype(dtype)
    dx, dh0 = rnn.backward(dy, dh_n)

    module = torch_rnn(torch, rnn)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    ty, th_n = module(tx, th0)
    ((ty * torch.tensor(dy)).sum() + (th_n * torch.tensor(dh_n)).sum()).backward()
    pairs = [(y, ty), (h_n, th_n), (dx, tx.grad), (dh0, th0.grad),
             (rnn.grads["W"], module.weight_ih_l0.grad.T), (rnn.grads["R"], module.weight_hh_l0.grad.T),
             (rnn.grads["b"], module.bias_ih_l0.grad)]
    for ours, theirs in pairs:
        assert rel_err(ours, theirs.detach().numpy()) < tol


def test_outputs_are_the_recurrence():
    rng = np.random.default_rng(2)
    rnn = nplstm.RNN(2, 3, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 4, 2))
    y, h_n = rnn.forward(x)
    W, R, b = rnn.params["W"], rnn.params["R"], rnn.params["b"]
    h = np.zeros((2, 3))
    for t in range(4):
        h = np.tanh(x[:, t] @ W + h @ R + b)
        np.testing.assert_allclose(y[:, t], h, rtol=1e-12)
    np.testing.assert_array_equal(h_n[0], y[:, -1])


@pytest.mark.parametrize("call,message", [
    (lambda r: r.forward(np.zeros((2, 3, 4), np.float32)), r"x: expected shape \(\*, \*, 2\), got \(2, 3, 4\)"),
    (lambda r: r.forward(np.zeros((2, 3, 2))), "x: expected dtype float32, got float64"),
    (lambda r: r.forward(np.zeros((2, 3, 2), np.float32), np.zeros((2, 3), np.float32)), "state h_0: expected shape"),
    (lambda r: r.forward(np.full((1, 1, 2), np.nan, np.float32)), "NaN"),
    (lambda r: r.backward(np.zeros((1, 1, 3), np.float32)), "before forward"),
])
def test_bad_inputs_name_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call(nplstm.RNN(2, 3, seed=0))


def test_bad_sizes():
    with pytest.raises(ValueError, match="hidden_size: expected a positive int, got 0"):
        nplstm.RNN(2, 0)
