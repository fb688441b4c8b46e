"""PyTorch as an independent oracle: autograd through the same equations, and torch.nn.LSTM itself."""
import numpy as np
import pytest

import nplstm
from nplstm.interop import torch as interop
from tests import torch_oracle
from nplstm.variants import VARIANTS
from tests.conftest import random_inputs, random_lstm, rel_err

CONFIGS = [
    dict(peephole="diagonal"),
    dict(peephole="full"),
    dict(peephole=None),
    dict(peephole="diagonal", forget_gate=False),
    dict(peephole="full", num_layers=2, bidirectional=True),
    dict(peephole="diagonal", num_layers=2, bidirectional=True, forget_gate=False),
    dict(peephole=None, num_layers=2, bidirectional=True),
]


def grad_of(tensor):
    """autograd's gradient, or zeros where the oracle never used the tensor (p_f without a forget gate)."""
    g = tensor.grad
    return np.zeros(tuple(tensor.shape)) if g is None else g.detach().numpy()


def compare_with_oracle(torch, lstm, x, state, lengths):
    """Outputs, final states and every gradient of nplstm against the torch-ops oracle.

    Returns the worst relative error over all of them.
    """
    rng = np.random.default_rng(0)
    c = lstm.config
    y, (h_n, c_n) = lstm.forward(x, state, lengths)
    dy, dh, dc = (rng.standard_normal(a.shape).astype(lstm.dtype) for a in (y, h_n, c_n))
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))

    t = lambda a: torch.tensor(a, requires_grad=True)
    tp = {k: t(v) for k, v in lstm.params.items()}
    tx, th0, tc0 = t(x), t(state[0]), t(state[1])
    ty, th, tc = torch_oracle.lstm(torch, tp, tx, th0, tc0, list(lengths) if lengths is not None else [x.shape[1]] * len(x),
                                   num_layers=c.num_layers, bidirectional=c.bidirectional, **c.variant._asdict())
    loss = (ty * torch.tensor(dy)).sum() + (th * torch.tensor(dh)).sum() + (tc * torch.tensor(dc)).sum()
    loss.backward()
    pairs = [(y, ty.detach().numpy()), (h_n, th.detach().numpy()), (c_n, tc.detach().numpy()),
             (dx, grad_of(tx)), (dh0, grad_of(th0)), (dc0, grad_of(tc0))]
    pairs += [(lstm.grads[k], grad_of(tp[k])) for k in lstm.params]
    return max(rel_err(a, b) for a, b in pairs)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("ragged", [False, True])
def test_oracle_float64(torch, cfg, ragged):
    rng = np.random.default_rng(1)
    lstm = random_lstm(rng, 3, 5, **cfg)
    x, state, _ = random_inputs(rng, lstm, 4, 7, False)
    lengths = np.array([7, 3, 1, 5]) if ragged else None
    assert compare_with_oracle(torch, lstm, x, state, lengths) < 1e-10


VARIANT_CONFIGS = [dict(variant=name) for name in VARIANTS] + [
    dict(variant="FGR", coupled=True), dict(variant="NFG", peephole="full"), dict(variant="NIG", output_activation="identity"),
    dict(variant="FGR", output_gate=False, peephole=None), dict(variant="CIFG", peephole="full")]


@pytest.mark.parametrize("cfg", VARIANT_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_oracle_float64_every_variant(torch, cfg):
    """Greff's variants (and some combinations): 2 layers, both directions, a ragged batch, float64."""
    rng = np.random.default_rng(3)
    lstm = random_lstm(rng, 3, 4, num_layers=2, bidirectional=True, **cfg)
    x, state, _ = random_inputs(rng, lstm, 3, 5, False)
    assert compare_with_oracle(torch, lstm, x, state, np.array([5, 2, 4])) < 1e-10


@pytest.mark.parametrize("cfg", CONFIGS[:5], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_oracle_float32(torch, cfg):
    """float32 nplstm against the float64 oracle on the same (float32-representable) numbers."""
    rng = np.random.default_rng(2)
    lstm64 = random_lstm(rng, 3, 5, **cfg)
    x, state, _ = random_inputs(rng, lstm64, 4, 7, False)
    lstm = nplstm.LSTM(3, 5, dtype=np.float32, **cfg)
    lstm.params = {k: v.astype(np.float32) for k, v in lstm64.params.items()}
    lstm64.params = {k: v.astype(np.float64) for k, v in lstm.params.items()}
    x32, s32 = x.astype(np.float32), tuple(s.astype(np.float32) for s in state)
    # the oracle runs in float64 on exactly the float32 values
    err = _float32_vs_float64(torch, lstm, lstm64, x32, s32, np.array([7, 2, 6, 4]))
    assert err < 1e-4


def _float32_vs_float64(torch, lstm32, lstm64, x32, s32, lengths):
    rng = np.random.default_rng(0)
    y, (h, c) = lstm32.forward(x32, s32, lengths)
    dy, dh, dc = (rng.standard_normal(a.shape).astype(np.float32) for a in (y, h, c))
    dx, (dh0, dc0) = lstm32.backward(dy, (dh, dc))
    t = lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True)
    tp = {k: t(v) for k, v in lstm64.params.items()}
    tx, th0, tc0 = t(x32), t(s32[0]), t(s32[1])
    cfg = lstm32.config
    ty, th, tc = torch_oracle.lstm(torch, tp, tx, th0, tc0, list(lengths), num_layers=cfg.num_layers,
                                   bidirectional=cfg.bidirectional, peephole=cfg.peephole,
                                   forget_gate=cfg.forget_gate)
    loss = sum((a * torch.tensor(np.float64(b))).sum() for a, b in ((ty, dy), (th, dh), (tc, dc)))
    loss.backward()
    pairs = [(y, ty.detach().numpy()), (h, th.detach().numpy()), (c, tc.detach().numpy()),
             (dx, grad_of(tx)), (dh0, grad_of(th0)), (dc0, grad_of(tc0))]
    pairs += [(lstm32.grads[k], grad_of(tp[k])) for k in lstm32.params]
    return max(rel_err(a, b) for a, b in pairs)


# --- torch.nn.LSTM through nplstm.interop.torch ---------------------------------------------

def nn_lstm_run(torch, module, x, state, lengths, dy, dh, dc):
    """Run torch.nn.LSTM (packed when lengths is given) and backprop the same cotangents."""
    tx = torch.tensor(x, requires_grad=True)
    th0, tc0 = (torch.tensor(s, requires_grad=True) for s in state)
    if lengths is None:
        ty, (th, tc) = module(tx, (th0, tc0))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, (th, tc) = module(packed, (th0, tc0))
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    loss = (ty * torch.tensor(dy)).sum() + (th * torch.tensor(dh)).sum() + (tc * torch.tensor(dc)).sum()
    module.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return ty.detach().numpy(), th.detach().numpy(), tc.detach().numpy(), tx.grad.numpy(), th0.grad.numpy(), tc0.grad.numpy(), grads


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_nn_lstm_parity(torch, num_layers, bidirectional, ragged, dtype, tol):
    rng = np.random.default_rng(3)
    lstm = nplstm.LSTM(4, 6, num_layers=num_layers, bidirectional=bidirectional, peephole=None,
                       dtype=dtype, seed=5)
    lstm.params["l0.b"] += dtype(0.3)          # nonzero b, so the bias mapping is exercised
    module = interop.to_torch(lstm)
    x, state, _ = random_inputs(rng, lstm, 5, 8, False)
    x, state = x.astype(dtype), tuple(s.astype(dtype) for s in state)
    lengths = np.array([8, 2, 5, 1, 7]) if ragged else None
    y, (h, c) = lstm.forward(x, state, lengths)
    dy, dh, dc = (rng.standard_normal(a.shape).astype(dtype) for a in (y, h, c))
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    ty, th, tc, tdx, tdh0, tdc0, tgrads = nn_lstm_run(torch, module, x, state, lengths, dy, dh, dc)
    for ours, theirs in ((y, ty), (h, th), (c, tc), (dx, tdx), (dh0, tdh0), (dc0, tdc0)):
        assert rel_err(ours, theirs) < tol
    ours = interop.grads_state_dict(lstm)
    assert ours.keys() == tgrads.keys()
    for k in tgrads:
        assert rel_err(ours[k], tgrads[k]) < tol, k


def test_from_torch_folds_both_biases(torch):
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    lstm = interop.from_torch(module)
    assert lstm.config.peephole is None and lstm.dtype == np.float64
    sd = module.state_dict()
    np.testing.assert_array_equal(lstm.params["l1_reverse.b"],
                                  (sd["bias_ih_l1_reverse"] + sd["bias_hh_l1_reverse"]).numpy())
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y, (h, c) = lstm.forward(x)
    ty, (th, tc) = module(torch.tensor(x))
    assert rel_err(y, ty.detach().numpy()) < 1e-12
    assert rel_err(c, tc.detach().numpy()) < 1e-12
    # and back again: the round trip reproduces torch's output
    again = interop.to_torch(lstm)
    assert rel_err(again(torch.tensor(x))[0].detach().numpy(), ty.detach().numpy()) < 1e-12


def test_from_torch_without_bias_and_float32(torch):
    module = torch.nn.LSTM(2, 3, bias=False, batch_first=True)
    lstm = interop.from_torch(module)
    assert lstm.dtype == np.float32 and not lstm.params["l0.b"].any()
    x = np.random.default_rng(1).standard_normal((1, 4, 2)).astype(np.float32)
    assert rel_err(lstm.forward(x)[0], module(torch.tensor(x))[0].detach().numpy()) < 1e-5


def test_interop_refuses_what_torch_cannot_express(torch):
    # torch.nn.LSTM's own state dict cannot hold these; to_torch gives them nplstm's own module instead
    # (tests/test_torch_modules.py)
    with pytest.raises(ValueError, match="peephole"):
        interop.state_dict(nplstm.LSTM(2, 3))
    with pytest.raises(ValueError, match="forget gate"):
        interop.state_dict(nplstm.LSTM(2, 3, peephole=None, forget_gate=False))
    with pytest.raises(ValueError, match="proj_size"):
        interop.from_torch(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(ValueError, match="torch.nn.LSTM"):
        interop.from_torch(torch.nn.RNN(2, 3))
    with pytest.raises(ValueError, match="no gradients"):
        interop.grads_state_dict(nplstm.LSTM(2, 3, peephole=None))


def test_state_dict_names_and_shapes(torch):
    lstm = nplstm.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=None)
    sd = interop.state_dict(lstm)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert {k: v.shape for k, v in sd.items()} == {k: tuple(v.shape) for k, v in module.state_dict().items()}
