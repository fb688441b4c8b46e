"""nplstm's own torch modules (interop/torch_modules.py) against nplstm itself: every variant, whole models.

nplstm's forward and backward are the truth; the torch modules must agree to 1e-10 in float64, for
outputs, final states, dx, dh_0, dc_0 and every parameter's gradient, and convert back exactly.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch                                   # installed in CI, where a skipped test fails the run

import nplstm
from nplstm.interop import torch as interop
from nplstm.interop.torch_modules import SequenceModel, VariantLSTM, torch_name
from nplstm.variants import VARIANTS
from tests.conftest import random_inputs, random_lstm, rel_err

TOL = 1e-10


def _distinct_variants():
    """(name, peephole) for every Greff variant under each peephole kind, each cell once (NP is vanilla, None)."""
    seen, out = set(), []
    for name, v in VARIANTS.items():
        for peephole in ("diagonal", "full", None):
            cell = v._replace(peephole=peephole)
            if cell not in seen:
                seen.add(cell)
                out.append((name, peephole))
    return out


def t(a, grad=True):
    return torch.tensor(a, requires_grad=grad)


def grad_of(p, shape):
    """autograd's gradient, or zeros for a parameter the cell never reads (p_f without a forget gate)."""
    return np.zeros(shape) if p.grad is None else p.grad.detach().cpu().numpy()


def compare_lstm(lstm, module, x, state, lengths, rng):
    """Worst rel_err of module against lstm: outputs, final states, dx, dh_0, dc_0, every parameter gradient."""
    y, (h_n, c_n) = lstm.forward(x, state, lengths)
    dy, dh, dc = (rng.standard_normal(a.shape) for a in (y, h_n, c_n))
    dx, (dh0, dc0) = lstm.backward(dy, (dh, dc))
    tx, th0, tc0 = t(x), t(state[0]), t(state[1])
    ty, (th, tc) = module(tx, (th0, tc0), None if lengths is None else torch.tensor(lengths))
    ((ty * t(dy, False)).sum() + (th * t(dh, False)).sum() + (tc * t(dc, False)).sum()).backward()
    pairs = [(ty.detach(), y), (th.detach(), h_n), (tc.detach(), c_n), (tx.grad, dx), (th0.grad, dh0), (tc0.grad, dc0)]
    pairs += [(grad_of(getattr(module, torch_name(k)), v.shape), lstm.grads[k]) for k, v in lstm.params.items()]
    return max(rel_err(a, b) for a, b in pairs)


@pytest.mark.parametrize("name,peephole", _distinct_variants(), ids=lambda v: str(v))
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
@pytest.mark.parametrize("ragged", [False, True])
def test_variant_lstm_matches_nplstm(name, peephole, num_layers, bidirectional, ragged):
    rng = np.random.default_rng(7)
    lstm = random_lstm(rng, 3, 4, num_layers=num_layers, bidirectional=bidirectional, variant=name, peephole=peephole)
    x, state, _ = random_inputs(rng, lstm, 4, 6, False)
    lengths = np.array([6, 2, 5, 1]) if ragged else None
    module = interop.to_torch(lstm)
    torch_has_it = name in ("vanilla", "NP") and peephole is None  # Greff's NP is torch.nn.LSTM
    assert type(module) is (torch.nn.LSTM if torch_has_it else VariantLSTM)
    if isinstance(module, torch.nn.LSTM):      # the same cell in nplstm's own module, to test that too
        module = VariantLSTM(3, 4, num_layers, bidirectional, peephole=None, dtype=torch.float64)
        module.load_nplstm_params(lstm.params)
    assert compare_lstm(lstm, module, x, state, lengths, rng) < TOL


def test_parameter_names_map_onto_nplstm_keys():
    module = VariantLSTM(3, 4, 2, True, variant="FGR", peephole="full")
    lstm = nplstm.LSTM(3, 4, num_layers=2, bidirectional=True, variant="FGR", peephole="full")
    assert {name: tuple(p.shape) for name, p in module.named_parameters()} == \
        {torch_name(k): v.shape for k, v in lstm.params.items()}
    assert torch_name("l1_reverse.R_gates") == "R_gates_l1_reverse"
    assert module.variant == lstm.config.variant


def test_flags_apply_on_top_of_the_variant():
    assert VariantLSTM(2, 3, variant="NFG", peephole="full").variant == VARIANTS["NFG"]._replace(peephole="full")
    assert VariantLSTM(2, 3, variant="NP").variant.peephole is None
    assert VariantLSTM(2, 3).variant == VARIANTS["vanilla"]


def test_to_torch_picks_the_module_that_computes_the_cell():
    assert isinstance(interop.to_torch(nplstm.LSTM(2, 3, peephole=None)), torch.nn.LSTM)
    for name in VARIANTS:
        if name != "NP":
            assert isinstance(interop.to_torch(nplstm.LSTM(2, 3, variant=name)), VariantLSTM), name
    assert isinstance(interop.to_torch(nplstm.LSTM(2, 3, variant="NP", forget_gate=False)), VariantLSTM)
    assert isinstance(interop.to_torch(nplstm.GRU(2, 3)), torch.nn.GRU)
    model = nplstm.Model(nplstm.GRU(2, 3), nplstm.Linear(3, 1))
    assert isinstance(interop.to_torch(model), SequenceModel)


def _same_params(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trips_are_exact(dtype):
    rng = np.random.default_rng(0)
    layers = [nplstm.LSTM(3, 4, num_layers=2, bidirectional=True, variant=name, dtype=dtype, seed=1)
              for name in VARIANTS]
    layers += [nplstm.LSTM(3, 4, peephole="full", coupled=True, gate_recurrence=True, dtype=dtype, seed=2),
               nplstm.GRU(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=3)]
    for layer in layers:
        for k, v in layer.params.items():
            layer.params[k] = rng.standard_normal(v.shape).astype(dtype)
        back = interop.from_torch(interop.to_torch(layer))
        assert type(back) is type(layer) and back.config == layer.config and back.dtype == layer.dtype
        assert _same_params(back.params, layer.params), repr(layer)
    model = nplstm.Model(layers[0], nplstm.Linear(8, 2, dtype=dtype, seed=4), many_to_one=True,
                         embedding=nplstm.layers.Embedding(11, 3, dtype=dtype, seed=5), dropout=0.25)
    from nplstm.data import Scaler
    model.scaler = Scaler(np.arange(3.0), np.ones(3) * 2, np.zeros(2), np.ones(2) * 3)
    back = interop.from_torch(interop.to_torch(model))
    assert _same_params(back.params, model.params) and back.many_to_one and back.dropout == 0.25
    assert all(np.array_equal(a, b) for a, b in zip(back.scaler, model.scaler))
    plain = nplstm.Model(layers[-1], nplstm.Linear(8, 1, dtype=dtype))
    back = interop.from_torch(interop.to_torch(plain))
    assert _same_params(back.params, plain.params) and back.is_gru and back.scaler is None and back.embedding is None


def _expected_torch_grads(model, module):
    """The nplstm model's last gradients under the torch module's parameter names."""
    g = model.grads
    if isinstance(module.rnn, VariantLSTM):
        rnn = {torch_name(k): model.lstm.grads[k] for k in model.lstm.params}
    elif model.is_gru:
        rnn = interop.gru_grads_state_dict(model.lstm)
    else:
        rnn = interop.grads_state_dict(model.lstm)
    out = {"rnn." + k: v for k, v in rnn.items()}
    out.update({"head.weight": g["head.W"].T, "head.bias": g["head.b"]})
    if model.embedding is not None:
        out["embedding.weight"] = g["embedding.W"]
    return out


def compare_model(model, x, lengths, rng, tokens=False):
    """Worst rel_err of to_torch(model) against Model.forward/backward: output, dx, every gradient."""
    module = interop.to_torch(model).eval()    # dropout off, as in Model.forward without an rng
    out = model.forward(x, lengths)
    dout = rng.standard_normal(out.shape)
    dx = model.backward(dout)
    tx = torch.tensor(x) if tokens else t(x)
    tout = module(tx, None if lengths is None else torch.tensor(lengths))
    (tout * t(dout, False)).sum().backward()
    pairs = [(tout.detach(), out)] + ([] if tokens else [(tx.grad, dx)])
    expected = _expected_torch_grads(model, module)
    named = dict(module.named_parameters())
    assert named.keys() == expected.keys()
    pairs += [(grad_of(named[k], v.shape), v) for k, v in expected.items()]
    return max(rel_err(a, b) for a, b in pairs)


CELLS = {"peephole-lstm": dict(peephole="full"), "fgr-lstm": dict(variant="FGR"), "nn.LSTM": dict(peephole=None),
         "gru": None}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("many_to_one", [True, False])
@pytest.mark.parametrize("ragged", [False, True])
def test_whole_model_matches_model(cell, many_to_one, ragged):
    rng = np.random.default_rng(11)
    if CELLS[cell] is None:
        rnn = nplstm.GRU(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
        for k, v in rnn.params.items():
            rnn.params[k] = rng.normal(0, 0.5, v.shape)
    else:
        rnn = random_lstm(rng, 3, 4, num_layers=2, bidirectional=True, **CELLS[cell])
    model = nplstm.Model(rnn, nplstm.Linear(8, 2, dtype=np.float64, seed=2), many_to_one=many_to_one)
    x = rng.standard_normal((4, 6, 3))
    assert compare_model(model, x, np.array([6, 1, 4, 3]) if ragged else None, rng) < TOL


def test_whole_model_with_embedding_and_dropout_matches_at_inference():
    rng = np.random.default_rng(12)
    model = nplstm.Model(random_lstm(rng, 5, 4, variant="CIFG"), nplstm.Linear(4, 3, dtype=np.float64, seed=2),
                         many_to_one=True, embedding=nplstm.layers.Embedding(9, 5, dtype=np.float64, seed=3),
                         dropout=0.5)
    tokens = rng.integers(0, 9, (4, 6))
    tokens[1, 4:] = tokens[1, 0]               # a token looked up twice collects both gradients
    assert compare_model(model, tokens, np.array([6, 6, 2, 5]), rng, tokens=True) < TOL
    module = interop.to_torch(model)           # a fresh module trains: dropout is active
    assert not torch.equal(module(torch.tensor(tokens)), module(torch.tensor(tokens)))  # active while training


def test_dropout_between_layers_only_while_training():
    module = VariantLSTM(3, 4, 2, dropout=0.5, dtype=torch.float64, seed=0)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    assert not torch.equal(module(x)[0], module(x)[0])
    module.eval()
    assert torch.equal(module(x)[0], module(x)[0])


def test_adam_trains_the_module_and_nplstm_computes_the_result():
    torch.manual_seed(0)
    module = VariantLSTM(2, 6, variant="NIG", peephole="full", dtype=torch.float64, seed=3)
    x = torch.randn(8, 5, 2, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 5, 1, 4, 5, 2, 5])
    valid = torch.arange(5)[None, :, None] < lengths[:, None, None]
    target = 0.5 * x.cumsum(dim=1).tanh().repeat(1, 1, 3) * valid  # (B, T, H): running sums, 0 where padded
    opt = torch.optim.Adam(module.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        loss = ((module(x, lengths=lengths)[0] - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    lstm = interop.from_torch(module)
    y, (h, c) = lstm.forward(x.numpy(), lengths=lengths.numpy())
    ty, (th, tc) = module(x, lengths=lengths)
    assert max(rel_err(y, ty.detach()), rel_err(h, th.detach()), rel_err(c, tc.detach())) < TOL


def test_float32_module_is_close_to_float32_nplstm():
    lstm = nplstm.LSTM(3, 5, num_layers=2, bidirectional=True, peephole="full", seed=0)
    module = interop.to_torch(lstm)
    assert next(module.parameters()).dtype == torch.float32
    x = np.random.default_rng(0).standard_normal((3, 7, 3)).astype(np.float32)
    y, _ = lstm.forward(x, lengths=np.array([7, 3, 5]))
    assert rel_err(module(torch.from_numpy(x), lengths=torch.tensor([7, 3, 5]))[0].detach(), y) < 1e-5


@pytest.mark.slow
def test_compiles_without_graph_breaks_and_grads_agree():
    """fullgraph=True: dynamo traces the whole forward (the ragged mask leaves no data-dependent branch);
    aot_eager also traces the backward, without building kernels (~4 s on 2 cores)."""
    torch._dynamo.reset()
    module = VariantLSTM(3, 4, 1, True, variant="FGR", peephole="full", dtype=torch.float64, seed=1)
    x, lengths = torch.randn(3, 4, 3, dtype=torch.float64), torch.tensor([4, 2, 3])
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    y, (h, _) = module(x, lengths=lengths)
    (y.sum() + h.sum()).backward()
    eager = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    cy, (ch, _) = compiled(x, lengths=lengths)
    (cy.sum() + ch.sum()).backward()
    assert rel_err(cy.detach(), y.detach()) < TOL
    assert max(rel_err(p.grad, g) for p, g in zip(module.parameters(), eager)) < TOL


def test_errors_name_what_was_expected():
    module = VariantLSTM(3, 4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, 3\), got \(2, 5, 4\)"):
        module(torch.zeros(2, 5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"lengths: expected ints in \[1, 5\], got \[0, 5\]"):
        module(torch.zeros(2, 5, 3, dtype=torch.float64), lengths=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"lengths: expected 2 ints"):
        module(torch.zeros(2, 5, 3, dtype=torch.float64), lengths=torch.tensor([5.0, 1.0]))
    with pytest.raises(ValueError, match=r"state h_0: expected shape \(2, 2, 4\)"):
        module(torch.zeros(2, 5, 3, dtype=torch.float64), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match="peephole: expected one of"):
        VariantLSTM(3, 4, peephole="sparse")
    with pytest.raises(ValueError, match="expected flags among"):
        VariantLSTM(3, 4, peepholes=None)
    with pytest.raises(ValueError, match=r"params\['l0.p_i'\]: expected shape \(4, 4\), got shape \(4,\)"):
        VariantLSTM(3, 4, peephole="full").load_nplstm_params(nplstm.LSTM(3, 4).params)
    with pytest.raises(ValueError, match="to_torch: expected an nplstm.LSTM, GRU or Model, got Linear"):
        interop.to_torch(nplstm.Linear(2, 3))
    with pytest.raises(ValueError, match="from_torch: expected a torch.nn.LSTM, torch.nn.GRU, VariantLSTM"):
        interop.from_torch(torch.nn.RNN(2, 3))
    with pytest.raises(ValueError, match="head: expected in_features = 8"):
        SequenceModel(VariantLSTM(3, 4, bidirectional=True), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="batch_first=True"):
        SequenceModel(torch.nn.LSTM(3, 4), torch.nn.Linear(4, 1))


def test_importing_the_interop_does_not_import_torch():
    code = "import sys, nplstm, nplstm.interop.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
