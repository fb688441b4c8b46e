"""The GRU (nplstm/gru.py): the fast engine against the plain step, finite differences over its
configurations, torch.nn.GRU through interop as an oracle, and the shell's refusals."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nplstm
from nplstm import gru as G
from tests.conftest import rel_err


def random_gru(rng, I, H, *, num_layers=1, bidirectional=False):
    """A float64 GRU with every parameter random (both biases included), so no term hides."""
    gru = G.GRU(I, H, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64,
                seed=int(rng.integers(1 << 30)))
    for k, v in gru.params.items():
        gru.params[k] = rng.normal(0, 0.5, v.shape)
    return gru


def random_inputs(rng, gru, B, T, ragged):
    """x (B, T, I), a random h_0 (L·D, B, H), and lengths (B,) if ragged else None."""
    c = gru.config
    x = rng.standard_normal((B, T, c.input_size))
    h0 = rng.standard_normal((c.num_layers * c.num_directions, B, c.hidden_size))
    return x, h0, (rng.integers(1, T + 1, B) if ragged else None)


def assert_close(ours, theirs, tol=1e-12):
    """|ours - theirs| <= tol * max |theirs|, elementwise (see tests/test_reference.py)."""
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * np.abs(theirs).max())


# --- the engine against the plain step ----------------------------------------------------------

def reference_run(x, h0, params, dy, dh_n, batch_sizes):
    """gru_step_forward / gru_step_backward over a time-major batch sorted by length (rows past n_t
    finished): outputs (T, B, H) (zero past n_t), the final state, dx, dh0 and grads summed over steps."""
    T, B, _ = x.shape
    state, y, caches = h0.copy(), np.zeros(dy.shape), []
    for t, n in enumerate(batch_sizes):
        h, cache = G.gru_step_forward(x[t, :n], state[:n], params)
        state = np.concatenate([h, state[n:]])   # finished rows keep their state
        y[t, :n] = h
        caches.append(cache)
    dh, dx, grads = dh_n.copy(), np.zeros(x.shape), {}
    for t in range(T - 1, -1, -1):
        n = batch_sizes[t]
        dx[t, :n], dh_prev, step = G.gru_step_backward(dh[:n] + dy[t, :n], caches[t])
        dh = np.concatenate([dh_prev, dh[n:]])
        for k, g in step.items():                # every step used the same params: add its share
            grads[k] = grads.get(k, 0) + g
    return y, state, dx, dh, grads


@pytest.mark.parametrize("batch_sizes", [[3] * 6, [3, 3, 2, 2, 1, 1]], ids=["full", "ragged"])
def test_engine_matches_reference(batch_sizes):
    rng = np.random.default_rng(7)
    T, B, I, H = 6, 3, 4, 5                  # all different, so a transposed product cannot pass
    params = {"W": rng.normal(0, 0.5, (I, 3 * H)), "R": rng.normal(0, 0.5, (H, 3 * H)),
              "b": rng.normal(0, 0.5, 3 * H), "b_hn": rng.normal(0, 0.5, H)}
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, H))
    dy, dh_n = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    lengths = np.count_nonzero(np.array(batch_sizes)[:, None] > np.arange(B), axis=0)

    y_ref, hn_ref, dx_ref, dh0_ref, grads_ref = reference_run(x, h0, params, dy, dh_n, batch_sizes)
    h, cache = G.gru_forward(x, h0, *(params[k] for k in G.PARAMS), batch_sizes=batch_sizes)
    y, h_final = h[1:].copy(), h[lengths, np.arange(B)]
    dx, dh0, grads = G.gru_backward(dy, dh_n, cache, params["W"], params["R"])

    assert set(grads) == set(grads_ref) == set(params)
    pairs = {"y": (y, y_ref), "h_n": (h_final, hn_ref), "dx": (dx, dx_ref), "dh0": (dh0, dh0_ref)}
    pairs.update({f"d{k}": (grads[k], grads_ref[k]) for k in params})
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert_close(ours, theirs)
    finished = np.arange(B) >= np.array(batch_sizes)[:, None]  # (T, B): rows past n_t
    assert not y[finished].any() and not dx[finished].any()


# --- finite differences -------------------------------------------------------------------------

@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num_layers=st.integers(1, 2), bidirectional=st.booleans(), B=st.integers(1, 3), T=st.integers(1, 4),
       I=st.integers(1, 3), H=st.integers(1, 3), ragged=st.booleans(), with_state=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_backward_matches_finite_differences(num_layers, bidirectional, B, T, I, H, ragged, with_state, seed):
    rng = np.random.default_rng(seed)
    gru = random_gru(rng, I, H, num_layers=num_layers, bidirectional=bidirectional)
    x, h0, lengths = random_inputs(rng, gru, B, T, ragged)
    report = nplstm.gradcheck(gru, x, h0 if with_state else None, lengths=lengths, seed=seed)
    assert report.ok and report.worst < 1e-6, f"\n{report}"
    # every parameter, x and h_0 were compared, element by element (h_n's gradient enters through L)
    assert len(report.errors) == len(gru.params) + 1 + with_state
    assert sum(report.checked.values()) == sum(v.size for v in gru.params.values()) + x.size + with_state * h0.size


@pytest.mark.slow
def test_ragged_stacked_bidirectional_gradcheck():
    """The case with the most bookkeeping, drawn or not: rows sorted inside, reverse starts at each length."""
    rng = np.random.default_rng(1)
    gru = random_gru(rng, 3, 4, num_layers=2, bidirectional=True)
    x, h0, _ = random_inputs(rng, gru, 4, 6, False)
    report = nplstm.gradcheck(gru, x, h0, lengths=np.array([2, 6, 1, 4]))
    assert report.ok, f"\n{report}"


def test_gradcheck_catches_a_wrong_backward(monkeypatch):
    """A backward that forgets that r scales hn (δhn = δa_n instead of δa_n r) must fail the check."""
    original = G._local_derivatives

    def broken(gates, hn, h_prev, k):
        original(gates, hn, h_prev, k)
        k[3] = 1.0
        return k

    monkeypatch.setattr(G, "_local_derivatives", broken)
    rng = np.random.default_rng(3)
    gru = random_gru(rng, 2, 3)
    x, h0, _ = random_inputs(rng, gru, 2, 4, False)
    report = nplstm.gradcheck(gru, x, h0)
    assert not report.ok and report.worst > 1e-3


# --- torch.nn.GRU through nplstm.interop.torch --------------------------------------------------

def nn_gru_run(torch, module, x, h0, lengths, dy, dh):
    """Run torch.nn.GRU (packed when lengths is given) and backprop the same cotangents."""
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    if lengths is None:
        ty, th = module(tx, th0)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, th = module(packed, th0)
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    module.zero_grad()
    ((ty * torch.tensor(dy)).sum() + (th * torch.tensor(dh)).sum()).backward()
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return ty.detach().numpy(), th.detach().numpy(), tx.grad.numpy(), th0.grad.numpy(), grads


@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_nn_gru_parity(torch, num_layers, bidirectional, ragged, dtype, tol):
    from nplstm.interop import torch as interop
    rng = np.random.default_rng(3)
    gru = G.GRU(4, 6, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, seed=5)
    module = interop.gru_to_torch(gru)
    x = rng.standard_normal((5, 8, 4)).astype(dtype)
    h0 = rng.standard_normal((num_layers * (1 + bidirectional), 5, 6)).astype(dtype)
    lengths = np.array([8, 2, 5, 1, 7]) if ragged else None
    y, h = gru.forward(x, h0, lengths)
    dy, dh = (rng.standard_normal(a.shape).astype(dtype) for a in (y, h))
    dx, dh0 = gru.backward(dy, dh)
    ty, th, tdx, tdh0, tgrads = nn_gru_run(torch, module, x, h0, lengths, dy, dh)
    for name, ours, theirs in (("y", y, ty), ("h_n", h, th), ("dx", dx, tdx), ("dh0", dh0, tdh0)):
        assert rel_err(ours, theirs) < tol, name
    ours = interop.gru_grads_state_dict(gru)
    assert ours.keys() == tgrads.keys()
    for k in tgrads:
        assert rel_err(ours[k], tgrads[k]) < tol, k


def test_gru_from_torch_folds_r_and_z_biases_only(torch):
    from nplstm.interop import torch as interop
    torch.manual_seed(0)
    module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    gru = interop.gru_from_torch(module)
    assert isinstance(gru, G.GRU) and gru.dtype == np.float64
    sd = {k: v.numpy() for k, v in module.state_dict().items()}
    b_ih, b_hh = sd["bias_ih_l1_reverse"], sd["bias_hh_l1_reverse"]
    np.testing.assert_array_equal(gru.params["l1_reverse.b"], np.concatenate([b_ih[:8] + b_hh[:8], b_ih[8:]]))
    np.testing.assert_array_equal(gru.params["l1_reverse.b_hn"], b_hh[8:])
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    y, h = gru.forward(x)
    ty, th = module(torch.tensor(x))
    assert rel_err(y, ty.detach().numpy()) < 1e-12 and rel_err(h, th.detach().numpy()) < 1e-12
    again = interop.gru_to_torch(gru)          # and back again: the round trip reproduces torch's output
    assert rel_err(again(torch.tensor(x))[0].detach().numpy(), ty.detach().numpy()) < 1e-12
    assert {k: v.shape for k, v in interop.gru_state_dict(gru).items()} == {k: v.shape for k, v in sd.items()}


def test_gru_from_torch_without_bias_and_refusals(torch):
    from nplstm.interop import torch as interop
    module = torch.nn.GRU(2, 3, bias=False, batch_first=True)
    gru = interop.gru_from_torch(module)
    assert gru.dtype == np.float32 and not gru.params["l0.b"].any() and not gru.params["l0.b_hn"].any()
    x = np.random.default_rng(1).standard_normal((1, 4, 2)).astype(np.float32)
    assert rel_err(gru.forward(x)[0], module(torch.tensor(x))[0].detach().numpy()) < 1e-5
    with pytest.raises(ValueError, match="torch.nn.GRU"):
        interop.gru_from_torch(torch.nn.LSTM(2, 3))
    with pytest.raises(ValueError, match="no gradients"):
        interop.gru_grads_state_dict(G.GRU(2, 3))


# --- the shell ----------------------------------------------------------------------------------

def test_init_is_torch_like_and_seeded():
    gru = G.GRU(3, 16, num_layers=2, bidirectional=True, seed=0)
    limit = 1 / np.sqrt(16)
    assert set(gru.params) == set(gru.config.param_shapes())
    for k, v in gru.params.items():
        assert v.dtype == np.float32 and v.shape == gru.config.param_shapes()[k]
        bound = np.r_[np.full(32, 2 * limit), np.full(16, limit)] if k.endswith(".b") else limit
        assert np.all(np.abs(v) <= bound), k     # b_r, b_z are sums of two of torch's biases
    again = G.GRU(3, 16, num_layers=2, bidirectional=True, seed=0)
    assert all(np.array_equal(gru.params[k], again.params[k]) for k in gru.params)


def nan_at(a, index=0):
    a = a.copy()
    a.flat[index] = np.nan
    return a


def test_refuses_bad_inputs_naming_the_array():
    gru = G.GRU(2, 3, num_layers=2, seed=0)
    x, h0 = np.zeros((2, 4, 2), np.float32), np.zeros((2, 2, 3), np.float32)
    with pytest.raises(ValueError, match=r"backward\(\) called before forward\(\)"):
        gru.backward(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"x: contains NaN"):
        gru.forward(nan_at(x, 3))
    with pytest.raises(ValueError, match=r"state h_0: contains NaN"):
        gru.forward(x, nan_at(h0))
    with pytest.raises(ValueError, match=r"x: expected dtype float32, got float64"):
        gru.forward(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"state h_0: expected shape \(2, 2, 3\)"):
        gru.forward(x, h0[:1])
    with pytest.raises(ValueError, match=r"state h_0: expected a numpy array"):
        gru.forward(x, (h0, h0))             # an LSTM's (h, c) pair: a GRU's state is h alone
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, \*, 2\)"):
        gru.forward(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"lengths: each must be in \[1, T=4\]"):
        gru.forward(x, lengths=np.array([4, 0]))
    y, h = gru.forward(x)
    with pytest.raises(ValueError, match=r"dy: contains NaN"):
        gru.backward(nan_at(y))
    with pytest.raises(ValueError, match=r"dh_n: contains NaN"):
        gru.backward(y, nan_at(h))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 4, 3\)"):
        gru.backward(y[:, :2])
    gru.params["l1.b_hn"] = nan_at(gru.params["l1.b_hn"])
    with pytest.raises(ValueError, match=r"params\['l1.b_hn'\]: changed between forward\(\) and backward\(\)"):
        gru.backward(y)
    with pytest.raises(ValueError, match=r"params\['l1.b_hn'\]: contains NaN"):
        gru.forward(x)
    del gru.params["l1.b_hn"]
    with pytest.raises(ValueError, match=r"params: missing 'l1.b_hn'"):
        gru.forward(x)
    with pytest.raises(ValueError, match="hidden_size: expected a positive int"):
        G.GRU(2, 0)
    with pytest.raises(ValueError, match="dtype: expected float32 or float64"):
        G.GRU(2, 3, dtype=np.int32)


def test_padded_steps_are_zero_and_lengths_give_each_rows_final_state():
    """A ragged batch gives each row what that row alone would give, and zeros past its length."""
    rng = np.random.default_rng(4)
    gru = random_gru(rng, 2, 3, num_layers=2, bidirectional=True)
    x, h0, _ = random_inputs(rng, gru, 3, 5, False)
    lengths = np.array([2, 5, 3])
    y, h = gru.forward(x, h0, lengths)
    for row, n in enumerate(lengths):
        y_row, h_row = gru.forward(x[row:row + 1, :n], h0[:, row:row + 1])
        np.testing.assert_allclose(y[row, :n], y_row[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(h[:, row], h_row[:, 0], rtol=0, atol=1e-13)
        assert not y[row, n:].any()


# --- internals(): the gates and states of the last forward ---------------------------------------

def plain_internals(gru, x, h0, lengths):
    """r, z, n and h of every row on its own, step by step from the equations in docs/math.md, in
    float64: the reverse direction walks each row's own steps backwards; zeros where a row has no step."""
    c = gru.config
    B, T, _ = x.shape
    H, D = c.hidden_size, c.num_directions
    sigmoid = lambda a: 1 / (1 + np.exp(-a))   # noqa: E731
    out, inp = {}, x
    for k in range(c.num_layers):
        outs = []
        for d in range(D):
            p = {name: gru.params[c.prefix(k, d) + name] for name in G.PARAMS}
            series = {name: np.zeros((B, T, H)) for name in "rznh"}
            for b in range(B):
                h = h0[k * D + d, b]
                for t in (range(lengths[b]) if d == 0 else reversed(range(lengths[b]))):
                    ax, ah = inp[b, t] @ p["W"] + p["b"], h @ p["R"]
                    r = sigmoid(ax[:H] + ah[:H])
                    z = sigmoid(ax[H:2 * H] + ah[H:2 * H])
                    n = np.tanh(ax[2 * H:] + r * (ah[2 * H:] + p["b_hn"]))
                    h = (1 - z) * n + z * h
                    for name, v in zip("rznh", (r, z, n, h)):
                        series[name][b, t] = v
            out[c.prefix(k, d).rstrip(".")] = series
            outs.append(series["h"])
        inp = np.concatenate(outs, axis=-1)
    return out


@pytest.mark.parametrize("bidirectional,ragged", [(False, False), (True, True)], ids=["plain", "ragged-bidir"])
def test_internals_are_the_equations_step_by_step(bidirectional, ragged):
    rng = np.random.default_rng(5)
    gru = random_gru(rng, 3, 4, num_layers=2, bidirectional=bidirectional)
    x, h0, _ = random_inputs(rng, gru, 4, 6, False)
    lengths = np.array([3, 6, 1, 5]) if ragged else np.full(4, 6)
    y, _ = gru.forward(x, h0, lengths if ragged else None)
    inside, plain = gru.internals(), plain_internals(gru, x, h0, lengths)
    assert list(inside) == (["l0", "l0_reverse", "l1", "l1_reverse"] if bidirectional else ["l0", "l1"])
    valid = np.arange(6)[None, :] < lengths[:, None]            # (B, T)
    for key, series in inside.items():
        assert list(series) == ["r", "z", "n", "h"] and all(v.shape == (4, 6, 4) for v in series.values())
        for name in "rzn":                                       # gates: valid steps (padding holds no gate)
            assert_close(series[name][valid], plain[key][name][valid])
        assert_close(series["h"], plain[key]["h"])               # h: zeros at padded steps too
    last = inside["l1"]["h"] if not bidirectional else np.concatenate([inside["l1"]["h"], inside["l1_reverse"]["h"]], -1)
    np.testing.assert_array_equal(last, y)                       # the top layer's h is the output
    inside["l0"]["h"][:] = 7.0                                   # a copy: the next call is unchanged
    assert not (gru.internals()["l0"]["h"] == 7.0).any()


def test_internals_refuse_before_a_forward_and_after_inference():
    gru = G.GRU(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"internals\(\) called before forward\(\)"):
        gru.internals()
    with nplstm.no_grad():
        gru.forward(np.zeros((1, 4, 2), np.float32))
    with pytest.raises(ValueError, match=r"internals\(\) after a forward under nplstm.no_grad\(\)"):
        gru.internals()
