"""ONNX export: the checker accepts every graph, and ONNX Runtime computes what nplstm's forward computes
for every cell nplstm trains, native operator or Scan, ragged or not, in both directions."""
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import nplstm
from nplstm.interop import onnx as nx
from nplstm.variants import VARIANTS
from nplstm.training.checkpoint import load_model

TOL = 1e-5
B, T, I, H = 4, 6, 3, 5
LENGTHS = np.array([6, 2, 1, 4], np.int32)   # ragged: longest first is not required, and 1 is the edge
# (variant, peephole): every variant with each peephole kind; NP is vanilla with peephole=None
CELLS = [(name, peephole) for name in VARIANTS if name != "NP" for peephole in ("diagonal", "full", None)]
NATIVE = {("vanilla", "diagonal"), ("vanilla", None), ("CIFG", "diagonal"), ("CIFG", None)}


def randomize(layer, seed=0):
    """Weights, biases and peepholes all drawn N(0, 0.5), so that no term hides behind a zero."""
    rng = np.random.default_rng(seed)
    for key, a in layer.params.items():
        layer.params[key] = rng.normal(0, 0.5, a.shape).astype(a.dtype)
    return layer


def session(path):
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def op_types(path) -> set:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def inputs(seed=1, b=B, t=T, i=I):
    return np.random.default_rng(seed).normal(size=(b, t, i)).astype(np.float32)


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("variant,peephole", CELLS)
def test_lstm_matches_forward(tmp_path, variant, peephole, layers, bidirectional, ragged):
    lstm = randomize(nplstm.LSTM(I, H, num_layers=layers, bidirectional=bidirectional, variant=variant,
                                 peephole=peephole))
    path = nx.export(lstm, tmp_path / "lstm.onnx", lengths=ragged)
    x, lengths = inputs(), LENGTHS if ragged else None
    feed = {"x": x, **({"sequence_lens": LENGTHS} if ragged else {})}
    y, h_n, c_n = session(path).run(["y", "h_n", "c_n"], feed)
    y_ref, (h_ref, c_ref) = lstm.forward(x, lengths=lengths)
    for got, want in ((y, y_ref), (h_n, h_ref), (c_n, c_ref)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    if ragged:
        assert not y[1, 2:].any()            # padded outputs are zero
    native = (variant, peephole) in NATIVE
    assert nx.native(lstm) == native
    assert ("LSTM" in op_types(path)) == native and ("Scan" in op_types(path)) != native


@pytest.mark.parametrize("ragged", [False, True], ids=["full", "ragged"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 2])
def test_gru_matches_forward(tmp_path, layers, bidirectional, ragged):
    gru = randomize(nplstm.GRU(I, H, num_layers=layers, bidirectional=bidirectional))
    path = nx.export(gru, tmp_path / "gru.onnx", lengths=ragged)
    x = inputs()
    y, h_n = session(path).run(["y", "h_n"], {"x": x, **({"sequence_lens": LENGTHS} if ragged else {})})
    y_ref, h_ref = gru.forward(x, lengths=LENGTHS if ragged else None)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=TOL)
    np.testing.assert_allclose(h_n, h_ref, rtol=0, atol=TOL)
    assert "GRU" in op_types(path) and "Scan" not in op_types(path)


def make_model(cell, many_to_one, bidirectional, layers=2, out=2, **model_kwargs):
    D = 2 if bidirectional else 1
    if cell == "gru":
        rnn = nplstm.GRU(I, H, num_layers=layers, bidirectional=bidirectional)
    else:
        rnn = nplstm.LSTM(I, H, num_layers=layers, bidirectional=bidirectional, peephole=cell)
    model = nplstm.Model(randomize(rnn), randomize(nplstm.Linear(D * H, out), 2), many_to_one=many_to_one,
                         **model_kwargs)
    return model


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("many_to_one", [False, True], ids=["per_step", "many_to_one"])
@pytest.mark.parametrize("cell", ["diagonal", "full", "gru"])   # LSTM op, Scan, GRU op
def test_model_matches_forward_at_any_batch_and_length(tmp_path, cell, many_to_one, bidirectional):
    model = make_model(cell, many_to_one, bidirectional)
    sess = session(nx.export(model, tmp_path / "model.onnx"))
    for b, t, lengths in ((B, T, LENGTHS), (1, 9, np.array([7], np.int32)), (3, 2, np.array([2, 2, 2], np.int32))):
        x = inputs(b=b, t=t)
        (out,) = sess.run(["out"], {"x": x, "sequence_lens": lengths})
        want = model.forward(x, lengths=lengths)
        assert out.shape == want.shape == ((b, 2) if many_to_one else (b, t, 2))
        np.testing.assert_allclose(out, want, rtol=0, atol=TOL)


def test_model_without_lengths_has_one_input(tmp_path):
    model = make_model("full", True, True)
    path = nx.export(model, tmp_path / "m.onnx", lengths=False)
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["x"]
    np.testing.assert_allclose(sess.run(None, {"x": inputs()})[0], model.forward(inputs()), rtol=0, atol=TOL)


@pytest.mark.parametrize("many_to_one", [False, True], ids=["per_step", "many_to_one"])
def test_embedding_and_scaler_travel_with_the_model(tmp_path, many_to_one):
    from nplstm.data import Scaler
    from nplstm.layers import Embedding
    rng = np.random.default_rng(3)
    # tokens: Gather first, token ids unscaled; the output un-standardised
    model = make_model("full", many_to_one, True, embedding=randomize(Embedding(11, I), 4))
    model.scaler = Scaler(np.zeros(I), np.ones(I), np.array([1.5, -2.0]), np.array([0.5, 3.0]))
    tokens = rng.integers(0, 11, (B, T))
    (out,) = session(nx.export(model, tmp_path / "tok.onnx")).run(None, {"tokens": tokens, "sequence_lens": LENGTHS})
    want = model.forward(tokens, lengths=LENGTHS) * model.scaler.y_std + model.scaler.y_mean
    np.testing.assert_allclose(out, want, rtol=0, atol=TOL)
    # vectors: standardised on the way in, as predict does
    model = make_model("diagonal", many_to_one, False)
    model.scaler = Scaler(rng.normal(0, 2, I), rng.uniform(0.5, 2, I), np.array([1.5, -2.0]), np.array([0.5, 3.0]))
    x = inputs() * 2 + 1
    (out,) = session(nx.export(model, tmp_path / "vec.onnx")).run(None, {"x": x, "sequence_lens": LENGTHS})
    want = model.predict(x, LENGTHS)
    valid = slice(None) if many_to_one else np.arange(T)[None, :] < LENGTHS[:, None]  # predict zeroes padding
    np.testing.assert_allclose(out[valid], want[valid], rtol=0, atol=TOL)


@pytest.mark.parametrize("peephole", ["diagonal", "full"])
def test_float64_needs_dtype_float32(tmp_path, peephole):
    model = make_model(peephole, False, True)
    model64 = nplstm.Model(nplstm.LSTM(I, H, num_layers=2, bidirectional=True, peephole=peephole, dtype=np.float64),
                           nplstm.Linear(2 * H, 2, dtype=np.float64))
    model64.load_params({k: v.astype(np.float64) for k, v in model.params.items()})
    with pytest.raises(ValueError, match=r"float64, and ONNX Runtime's LSTM kernel is float32 only; "
                                         r"pass dtype=np\.float32 to export a float32 copy"):
        nx.export(model64, tmp_path / "m.onnx")
    sess = session(nx.export(model64, tmp_path / "m.onnx", dtype=np.float32))
    (out,) = sess.run(None, {"x": inputs(), "sequence_lens": LENGTHS})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, model64.forward(inputs().astype(np.float64), LENGTHS), rtol=0, atol=TOL)


@pytest.mark.parametrize("opset", [nx.MIN_OPSET, nx.DEFAULT_OPSET, 21])
def test_supported_opsets_run(tmp_path, opset):
    for peephole in ("diagonal", "full"):
        model = make_model(peephole, True, True)
        path = nx.export(model, tmp_path / "m.onnx", opset=opset)
        assert onnx.load(str(path)).opset_import[0].version == opset
        (out,) = session(path).run(None, {"x": inputs(), "sequence_lens": LENGTHS})
        np.testing.assert_allclose(out, model.forward(inputs(), LENGTHS), rtol=0, atol=TOL)


NEWEST = onnx.defs.onnx_opset_version()


def lstm_with(change=None):
    lstm = nplstm.LSTM(2, 3)
    if change:
        change(lstm.params)
    return lstm


def model_with(change):
    model = nplstm.Model(nplstm.LSTM(2, 3), nplstm.Linear(3, 2))
    change(model)
    return model


def _scaler(model, x_size=2, y_size=2):
    from nplstm.data import Scaler
    model.scaler = Scaler(np.zeros(x_size), np.ones(x_size), np.zeros(y_size), np.ones(y_size))


@pytest.mark.parametrize("make,where,kwargs,message", [
    (lambda: "a string", "m.onnx", {}, "expected an nplstm.LSTM, nplstm.GRU or nplstm.Model, got str"),
    (lambda: nplstm.Linear(2, 2), "m.onnx", {}, "expected an nplstm.LSTM, nplstm.GRU or nplstm.Model, got Linear"),
    (lambda: nplstm.RNN(2, 2), "m.onnx", {}, "got RNN"),
    (lstm_with, "no/such/dir/m.onnx", {}, "path: expected a file in an existing directory"),
    (lstm_with, ".", {}, "path: expected a file path, got the directory"),
    (lstm_with, 3, {}, "path: expected a file path \\(str or os.PathLike\\), got 3"),
    (lstm_with, "m.onnx", {"opset": nx.MIN_OPSET - 1}, f"opset: expected an integer from {nx.MIN_OPSET} to {NEWEST}"),
    (lstm_with, "m.onnx", {"opset": NEWEST + 1}, f"got {NEWEST + 1}"),
    (lstm_with, "m.onnx", {"opset": "17"}, "opset: expected an integer"),
    (lstm_with, "m.onnx", {"opset": True}, "opset: expected an integer"),
    (lstm_with, "m.onnx", {"dtype": np.float16}, "dtype: expected None or np.float32"),
    (lstm_with, "m.onnx", {"dtype": "no such type"}, "dtype: expected None or np.float32, got 'no such type'"),
    (lstm_with, "m.onnx", {"lengths": "yes"}, "lengths: expected True or False, got 'yes'"),
    (lambda: lstm_with(lambda p: p.pop("l0.p_o")), "m.onnx", {}, "params: missing 'l0.p_o'"),
    (lambda: lstm_with(lambda p: p["l0.b"].__setitem__(0, np.nan)), "m.onnx", {}, "contains NaN or Inf"),
    (lambda: model_with(lambda m: m.head.params.__setitem__("b", np.zeros(5, np.float32))), "m.onnx", {},
     r"head.b expected shape \(2,\), got \(5,\)"),
    (lambda: model_with(lambda m: _scaler(m, x_size=4)), "m.onnx", {}, r"scaler.x_mean expected shape \(2,\)"),
    (lambda: model_with(lambda m: _scaler(m, y_size=3)), "m.onnx", {}, r"scaler.y_mean expected shape \(2,\)"),
])
def test_bad_requests_are_one_line_value_errors(tmp_path, monkeypatch, make, where, kwargs, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        nx.export(make(), where, **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


def test_import_does_not_load_onnx():
    code = "import sys, nplstm, nplstm.interop.onnx; print('onnx' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_cli_exports_a_trained_run(tmp_path):
    run = tmp_path / "run"
    train = [sys.executable, "-m", "nplstm", "train", "adding", "--T", "10", "--steps", "2", "--batch", "2",
             "--hidden", "4", "--eval-every", "2", "--no-progress", "--quiet", "--run-dir", str(run)]
    subprocess.run(train, check=True, capture_output=True, timeout=300)
    out = tmp_path / "adding.onnx"
    done = subprocess.run([sys.executable, "-m", "nplstm", "export", str(run), "--onnx", str(out), "--opset", "18"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    model = load_model(run / "checkpoint.npz")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 10, model.lstm.config.input_size)).astype(np.float32)
    lengths = np.array([10, 7, 3], np.int32)
    (got,) = session(out).run(None, {"x": x, "sequence_lens": lengths})
    np.testing.assert_allclose(got, model.forward(x, lengths), rtol=0, atol=TOL)
    bad = subprocess.run([sys.executable, "-m", "nplstm", "export", str(tmp_path / "nope"), "--onnx", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "expected a run directory holding checkpoint.npz" in bad.stderr
