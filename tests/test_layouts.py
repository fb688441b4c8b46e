"""nplstm.layouts keeps every bit of a layer's weights on a round trip through any two presets, and converted
weights compute what the source computes: torch.nn.LSTM, the ONNX operator (onnxruntime), the seed's own
forward (examples/seed_lstm.py) and Karpathy's IFOG equations."""
import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

import nplstm
from nplstm import layouts
from nplstm.reference import lstm_reference_forward

ROOT = Path(__file__).resolve().parents[1]
I, H, T, B = 3, 4, 5, 2
PEEPHOLED = {"nplstm", "nplstm.LSTM", "onnx", "seed"}


def nplstm_params(rng, peephole=None):
    """Random weights in nplstm's form, every entry non-zero so that no misplaced block hides."""
    p = {"W": rng.normal(0, 0.5, (I, 4 * H)), "R": rng.normal(0, 0.5, (H, 4 * H)), "b": rng.normal(0, 0.5, 4 * H)}
    for k in ("p_i", "p_f", "p_o"):
        if peephole:
            p[k] = rng.normal(0, 0.5, (H,) if peephole == "diagonal" else (H, H))
    return p


def shared_peephole(a: str, b: str):
    """The peephole kind both presets hold: none, diagonal (ONNX) or full (the seed)."""
    if a not in PEEPHOLED or b not in PEEPHOLED:
        return None
    return "diagonal" if "onnx" in (a, b) else "full"


def forward(p, x):
    """nplstm's reference forward from zero state: h_1..h_T (T, B, H)."""
    kind = None if "p_i" not in p else "diagonal" if p["p_i"].ndim == 1 else "full"
    zero = np.zeros((x.shape[1], p["R"].shape[0]))
    return lstm_reference_forward(x, zero, zero, p, peephole=kind)[0][1:]


@pytest.mark.parametrize("src,dst", list(itertools.product(layouts.PRESETS, repeat=2)))
def test_a_round_trip_through_any_two_presets_gives_back_the_same_bits(src, dst):
    rng = np.random.default_rng(0)
    start = layouts.from_nplstm(nplstm_params(rng, shared_peephole(src, dst)), src)
    there = layouts.convert(start, src, dst)
    back = layouts.convert(there, dst, src)
    assert set(back) == set(start)
    for k in start:
        assert back[k].dtype == start[k].dtype and np.array_equal(back[k], start[k]), k
    assert set(there) == set(layouts.convention(dst).shapes(I, H, shared_peephole(src, dst)))


@pytest.mark.parametrize("name", list(layouts.PRESETS))
def test_every_preset_stores_the_shapes_it_announces_and_computes_the_same_lstm(name):
    rng = np.random.default_rng(1)
    kind = shared_peephole(name, name)
    p = nplstm_params(rng, kind)
    out = layouts.from_nplstm(p, name)
    assert {k: v.shape for k, v in out.items()} == layouts.convention(name).shapes(I, H, kind)
    x = rng.standard_normal((T, B, I))
    assert np.array_equal(forward(layouts.to_nplstm(out, name), x), forward(p, x))


def test_the_conversion_copies_and_keeps_the_dtype():
    p = {k: v.astype(np.float32) for k, v in nplstm_params(np.random.default_rng(2)).items()}
    out = layouts.convert(p, "nplstm", "torch")
    assert all(v.dtype == np.float32 for v in out.values())
    out["weight_ih_l0"][...] = 0
    assert p["W"].any()                                   # the source is not a view of the result


def test_torch_weights_converted_give_torch_nn_lstm_outputs(torch):
    torch.manual_seed(0)
    module = torch.nn.LSTM(I, H, dtype=torch.float64)        # time-major, as the "torch" preset's axes say
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    assert np.abs(sd["bias_hh_l0"]).max() > 0.05             # both biases matter: nplstm keeps their sum
    x = np.random.default_rng(3).standard_normal((T, B, I))
    want = module(torch.from_numpy(x))[0].detach().numpy()
    got = forward(layouts.to_nplstm(sd, "torch"), x)
    assert np.abs(got - want).max() < 1e-12
    layer = nplstm.LSTM(I, H, peephole=None, dtype=np.float64)
    layer.params = layouts.convert(sd, "torch", "nplstm.LSTM")
    assert np.abs(layer.forward(x.transpose(1, 0, 2))[0].transpose(1, 0, 2) - want).max() < 1e-12


def test_torch_lstmcell_weights_give_its_step(torch):
    torch.manual_seed(1)
    cell = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    sd = {k: v.detach().numpy() for k, v in cell.state_dict().items()}
    x = np.random.default_rng(4).standard_normal((1, B, I))
    h, _ = cell(torch.from_numpy(x[0]))
    assert np.abs(forward(layouts.to_nplstm(sd, "torch.LSTMCell"), x)[0] - h.detach().numpy()).max() < 1e-12


def load_seed():
    spec = importlib.util.spec_from_file_location("seed_lstm", ROOT / "examples" / "seed_lstm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_weights_converted_give_the_seeds_own_forward():
    seed = load_seed()
    n, S = 8, 12
    x, target = seed.sine_windows(S, n)
    net = seed.make_net(n, S, seed=5)
    for name in ("w", "u", "v"):                             # one set of weights for every step
        getattr(net, name)[:] = getattr(net, name)[:, :1]
    net.b[:] = np.random.default_rng(5).normal(0, 0.3, (4, n, 1))
    for t in range(S):                                      # no update: alpha = gamma = 0
        seed.seed_step(net, x, target, t, 0.0, 0.0)
    weights = {"w": net.w[:, 0], "u": net.u[:, 0], "v": net.v[:, 0], "b": net.b[:, :, 0]}
    assert net.v[seed.CELL, 0].any()                         # never read by the seed, ignored by the conversion
    p = layouts.to_nplstm(weights, "seed")
    assert p["p_i"].shape == (n, n)
    h = forward(p, x.T[:, None, :])                          # the seed's columns x[:, t] as rows (T, 1, I)
    assert np.abs(h[:, 0].T - net.h).max() < 1e-13


def test_karpathys_ifog_matrix_gives_his_equations():
    rng = np.random.default_rng(6)
    p = nplstm_params(rng)
    WLSTM = layouts.from_nplstm(p, "karpathy")["WLSTM"]     # (1 + I + H, 4H): rows [1, x, h], blocks i, f, o, g
    x = rng.standard_normal((T, B, I))
    h, c, out = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):                                       # his forward: sigmoid on the first 3H, tanh on the last H
        ifog = np.concatenate([np.ones((B, 1)), x[t], h], axis=1) @ WLSTM
        gates = 1 / (1 + np.exp(-ifog[:, :3 * H]))
        c = gates[:, :H] * np.tanh(ifog[:, 3 * H:]) + gates[:, H:2 * H] * c
        h = gates[:, 2 * H:] * np.tanh(c)
        out.append(h)
    assert np.abs(np.stack(out) - forward(p, x)).max() < 1e-14


def test_onnx_weights_run_by_onnxruntime_give_nplstms_outputs():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(7)
    p = nplstm_params(rng, "diagonal")
    w = {k: v.astype(np.float32) for k, v in layouts.from_nplstm(p, "onnx").items()}   # W, R, B, P
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y"], hidden_size=H)
    graph = helper.make_graph([node], "lstm", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"X": x})[0][:, 0]
    assert np.abs(y - forward(p, x.astype(np.float64))).max() < 1e-5


def test_gradients_convert_with_both_biases_getting_the_whole_db():
    g = nplstm_params(np.random.default_rng(8))
    out = layouts.convert(g, "nplstm", "torch", gradient=True)
    assert np.array_equal(out["bias_ih_l0"], g["b"]) and np.array_equal(out["bias_hh_l0"], g["b"])
    B_ = layouts.convert(g, "nplstm", "onnx", gradient=True)["B"][0]
    assert np.array_equal(B_[:4 * H], B_[4 * H:])
    assert np.array_equal(layouts.convert(out, "torch", "nplstm", gradient=True)["b"], g["b"])
    out["bias_hh_l0"] = out["bias_hh_l0"] + 1e-3
    with pytest.raises(ValueError, match="two bias gradients differ"):
        layouts.to_nplstm(out, "torch", gradient=True)


def test_peepholes_into_a_layout_without_them_are_refused_unless_zero():
    p = nplstm_params(np.random.default_rng(9), "diagonal")
    for dst in ("torch", "keras", "karpathy"):
        with pytest.raises(ValueError, match="no peephole connections"):
            layouts.from_nplstm(p, dst)
    zero = {**p, **{k: np.zeros(H) for k in ("p_i", "p_f", "p_o")}}
    assert set(layouts.from_nplstm(zero, "torch")) == {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


def test_full_peepholes_go_to_onnx_only_when_diagonal():
    p = nplstm_params(np.random.default_rng(10), "full")
    with pytest.raises(ValueError, match="off its diagonal"):
        layouts.from_nplstm(p, "onnx")
    diagonal = {**p, **{k: np.diag(np.diag(p[k])) for k in ("p_i", "p_f", "p_o")}}
    P = layouts.from_nplstm(diagonal, "onnx")["P"][0]
    assert np.array_equal(P, np.concatenate([np.diag(p[k]) for k in ("p_i", "p_o", "p_f")]))   # ONNX's order i, o, f


def test_the_peephole_option_asks_for_a_kind():
    p = nplstm_params(np.random.default_rng(11), "diagonal")
    seed = layouts.from_nplstm(p, "seed")                     # the seed holds full matrices
    assert layouts.to_nplstm(seed, "seed")["p_i"].shape == (H, H)
    back = layouts.to_nplstm(seed, "seed", peephole="diagonal")
    assert all(np.array_equal(back[k], p[k]) for k in p)
    none = layouts.from_nplstm(nplstm_params(np.random.default_rng(12)), "seed")
    assert not none["v"].any() and "p_i" not in layouts.to_nplstm(none, "seed")   # all-zero v: no peepholes
    assert layouts.to_nplstm(none, "seed", peephole="full")["p_o"].shape == (H, H)
    with pytest.raises(ValueError, match="not all zero"):
        layouts.to_nplstm(seed, "seed", peephole=None)
    with pytest.raises(ValueError, match="peephole: expected"):
        layouts.to_nplstm(seed, "seed", peephole="sparse")


def test_malformed_params_are_refused_with_what_was_expected():
    p = layouts.from_nplstm(nplstm_params(np.random.default_rng(13)), "torch")
    with pytest.raises(ValueError, match=r"expected a dict of arrays .*got list"):
        layouts.to_nplstm([p], "torch")
    with pytest.raises(ValueError, match="missing bias_hh_l0"):
        layouts.to_nplstm({k: v for k, v in p.items() if k != "bias_hh_l0"}, "torch")
    with pytest.raises(ValueError, match="unexpected weight_ih_l1"):
        layouts.to_nplstm({**p, "weight_ih_l1": p["weight_ih_l0"]}, "torch")
    with pytest.raises(ValueError, match=r"expected weight_ih_l0 \(16, 3\).*\(I = 3, H = 4.*got bias_ih_l0 \(15,\)$"):
        layouts.to_nplstm({**p, "bias_ih_l0": p["bias_ih_l0"][1:]}, "torch")
    onnx = layouts.from_nplstm(nplstm_params(np.random.default_rng(13)), "onnx")
    with pytest.raises(ValueError, match="expected W .*B \\(1, 32\\)"):
        layouts.to_nplstm({**onnx, "B": onnx["B"][0]}, "onnx")
    with pytest.raises(ValueError, match="one of nplstm, nplstm.LSTM, torch"):
        layouts.convert(p, "torch", "tensorflow")
    with pytest.raises(ValueError, match="missing p_f, p_o"):
        layouts.from_nplstm({**nplstm_params(np.random.default_rng(13)), "p_i": np.zeros(H)}, "seed")


def test_a_convention_of_your_own_is_checked_and_converts():
    mine = layouts.Convention("mine", gates="fgio", orientation="column", weights="per_gate",
                              names={"W": "Wx", "R": "Wh", "b": "bias"})
    p = nplstm_params(np.random.default_rng(14))
    out = layouts.from_nplstm(p, mine)
    assert np.array_equal(out["Wx"][0], p["W"][:, H:2 * H].T)   # block 0 is the forget gate, (H, I)
    assert all(np.array_equal(layouts.to_nplstm(out, mine)[k], p[k]) for k in p)
    with pytest.raises(ValueError, match="gates: expected a permutation of 'ifgo'"):
        layouts.Convention("bad", gates="ifgx")
    with pytest.raises(ValueError, match="bias: expected 'row' exactly when weights='stacked'"):
        layouts.Convention("bad", weights="stacked")


def test_sequence_axes_become_time_major():
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4)                 # (B, T, F)
    assert np.array_equal(layouts.time_major(a, "bth"), a.transpose(1, 0, 2))
    cols = np.arange(12.0).reshape(4, 3)                      # the seed's (H, T): one sequence
    assert layouts.time_major(cols, "ht").shape == (3, 1, 4)
    assert layouts.layout_of("seed") == ("ht", layouts.PRESETS["seed"])
    assert layouts.layout_of({"axes": "bth", "weights": "torch"}) == ("bth", layouts.PRESETS["torch"])
    with pytest.raises(ValueError, match="expected 2 axes"):
        layouts.time_major(a, "ht")
    with pytest.raises(ValueError, match="layout\\['axes'\\]"):
        layouts.layout_of({"axes": "btx"})
