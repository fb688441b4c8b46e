"""Losses, optimizers and clipping against PyTorch's definitions; a model that learns."""
import numpy as np
import pytest

import nplstm
from tests.conftest import rel_err


def numeric_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for j in range(a.size):
        old = a.flat[j]
        a.flat[j] = old + eps
        plus = f()
        a.flat[j] = old - eps
        minus = f()
        a.flat[j] = old
        g.flat[j] = (plus - minus) / (2 * eps)
    return g


@pytest.mark.parametrize("masked", [False, True])
def test_loss_gradients_by_finite_differences(masked):
    rng = np.random.default_rng(0)
    pred, target = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    logits, labels = rng.standard_normal((3, 4, 5)), rng.integers(0, 5, (3, 4))
    mask = (rng.random((3, 4)) < 0.6) if masked else None
    if masked:
        mask[0, 0] = True
    _, d = nplstm.mse(pred, target, mask)
    assert rel_err(d, numeric_grad(lambda: nplstm.mse(pred, target, mask)[0], pred)) < 1e-7
    _, d = nplstm.softmax_cross_entropy(logits, labels, mask)
    assert rel_err(d, numeric_grad(lambda: nplstm.softmax_cross_entropy(logits, labels, mask)[0], logits)) < 1e-7


def test_losses_match_torch(torch):
    rng = np.random.default_rng(1)
    pred, target = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    assert nplstm.mse(pred, target)[0] == pytest.approx(
        torch.nn.functional.mse_loss(torch.tensor(pred), torch.tensor(target)).item(), rel=1e-12)
    logits, labels = rng.standard_normal((3, 4, 5)), rng.integers(0, 5, (3, 4))
    mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], bool)
    ours = nplstm.softmax_cross_entropy(logits, labels, mask)[0]
    theirs = torch.nn.functional.cross_entropy(torch.tensor(logits[mask]), torch.tensor(labels[mask])).item()
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("name,ours,theirs", [
    ("sgd", lambda: nplstm.SGD(0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    ("momentum", lambda: nplstm.SGD(0.1, momentum=0.9), lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9)),
    ("nesterov", lambda: nplstm.SGD(0.1, momentum=0.9, nesterov=True),
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda: nplstm.Adam(0.01), lambda t, p: t.optim.Adam(p, lr=0.01)),
    ("rmsprop", lambda: nplstm.RMSprop(0.01), lambda t, p: t.optim.RMSprop(p, lr=0.01)),
])
def test_optimizers_match_torch(torch, name, ours, theirs):
    """Five updates with changing gradients give the same parameters as torch.optim."""
    rng = np.random.default_rng(2)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt, topt = ours(), theirs(torch, list(tparams.values()))
    held = params["a"]
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[k])
        topt.step()
    assert params["a"] is held                  # updated in place: layers holding the array see it
    for k in params:
        assert rel_err(params[k], tparams[k].detach().numpy()) < 1e-12, name


def test_clip_grad_norm_matches_torch(torch):
    rng = np.random.default_rng(3)
    grads = {"a": rng.standard_normal((3, 4)) * 10, "b": rng.standard_normal(4)}
    tgrads = [torch.tensor(g.copy()) for g in grads.values()]
    tparams = [torch.zeros_like(g, requires_grad=True) for g in tgrads]
    for p, g in zip(tparams, tgrads):
        p.grad = g
    norm = nplstm.clip_grad_norm(grads, 1.0)
    tnorm = torch.nn.utils.clip_grad_norm_(tparams, 1.0).item()
    assert norm == pytest.approx(tnorm, rel=1e-12)
    for g, p in zip(grads.values(), tparams):
        assert rel_err(g, p.grad.numpy()) < 1e-12
    assert np.sqrt(sum((g ** 2).sum() for g in grads.values())) == pytest.approx(1.0, rel=1e-5)
    small = {"a": np.full(3, 0.1)}
    assert nplstm.clip_grad_norm(small, 1.0) == pytest.approx(np.sqrt(0.03))
    np.testing.assert_array_equal(small["a"], 0.1)  # below the limit: untouched


def test_optimizer_errors():
    with pytest.raises(ValueError, match="lr: expected a positive learning rate"):
        nplstm.Adam(0.0)
    with pytest.raises(ValueError, match=r"grads\['a'\]: expected shape \(2,\), got \(3,\)"):
        nplstm.SGD(0.1).step({"a": np.zeros(2)}, {"a": np.zeros(3)})
    with pytest.raises(ValueError, match="grads: key 'z' has no parameter"):
        nplstm.SGD(0.1).step({"a": np.zeros(2)}, {"z": np.zeros(2)})


def test_model_learns_to_sum_a_sequence():
    """many-to-one: predict the sum of 10 numbers; MSE must fall far below the variance of the target."""
    rng = np.random.default_rng(4)
    model = nplstm.Model(nplstm.LSTM(1, 16, seed=0), nplstm.Linear(16, 1, seed=1), many_to_one=True)
    opt = nplstm.Adam(0.01)
    for _ in range(300):
        x = rng.uniform(-0.5, 0.5, (32, 10, 1)).astype(np.float32)
        pred = model.forward(x)
        loss, dpred = nplstm.mse(pred, x.sum(axis=1))
        model.backward(dpred)
        opt.step(model.params, model.grads)
    x = rng.uniform(-0.5, 0.5, (256, 10, 1)).astype(np.float32)
    loss, _ = nplstm.mse(model.forward(x), x.sum(axis=1))
    assert loss < 0.05 * (10 / 12)              # target variance is 10/12


def test_model_params_are_live_and_loadable():
    model = nplstm.Model(nplstm.LSTM(2, 3, seed=0), nplstm.Linear(3, 1, seed=0))
    assert model.params["lstm.l0.W"] is model.lstm.params["l0.W"]
    new = {k: np.zeros_like(v) for k, v in model.params.items()}
    model.load_params(new)
    assert not model.forward(np.ones((1, 2, 2), np.float32)).any()
    with pytest.raises(ValueError, match="unexpected key 'x.W'"):
        model.load_params({"x.W": np.zeros(1)})
    with pytest.raises(ValueError, match=r"head: expected in_features = 3"):
        nplstm.Model(nplstm.LSTM(2, 3), nplstm.Linear(4, 1))
