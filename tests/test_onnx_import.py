"""ONNX graphs into nplstm: what torch.onnx.export writes for nn.LSTM / nn.GRU (+ nn.Linear) gives torch's
outputs, and hand-built graphs (peepholes, coupled gates, identity activations) give onnxruntime's.

Outputs are compared in float32 within 1e-5: values of order 1 summed in different orders differ by a
few ulps (~1e-7), a wrong gate order or bias by O(0.1).
"""
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import nplstm
from nplstm.interop.onnx_import import load

TOL = 1e-5


class WithHead(torch.nn.Module):
    """nn.LSTM or nn.GRU + nn.Linear: on every step ("steps"), the last step ("last") or h_n ("h_n")."""

    def __init__(self, rnn, reads):
        super().__init__()
        self.rnn, self.reads = rnn, reads
        self.fc = torch.nn.Linear(rnn.hidden_size * (1 + rnn.bidirectional), 2)

    def forward(self, x):
        y, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state
        if self.reads == "steps":
            return self.fc(y)
        if self.reads == "last":
            return self.fc(y[:, -1] if self.rnn.batch_first else y[-1])
        return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1) if self.rnn.bidirectional else h_n[-1])


def exported(module, path, batch_first):
    """torch's outputs on a probe batch, and the module written to path by the TorchScript exporter."""
    torch.manual_seed(0)
    module.eval()
    x = torch.randn((3, 6, 3) if batch_first else (6, 3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the legacy exporter's deprecation and batch-size notes
        torch.onnx.export(module, (x,), str(path), dynamo=False)
    with torch.no_grad():
        out = module(x)
    out = out[0] if isinstance(out, tuple) else out
    return x.numpy(), out.numpy()


def nplstm_output(obj, x, batch_first):
    """obj's output on the graph's input x, in the graph's layout (nplstm is batch-first)."""
    xb = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
    out = obj.forward(xb) if isinstance(obj, nplstm.Model) else obj.forward(xb)[0]
    return out if batch_first or out.ndim == 2 else out.transpose(1, 0, 2)


RNNS = {
    "lstm": lambda bf: torch.nn.LSTM(3, 4, batch_first=bf),
    "lstm-2-layers-bi": lambda bf: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=bf),
    "gru": lambda bf: torch.nn.GRU(3, 4, batch_first=bf),
    "gru-2-layers-bi": lambda bf: torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=bf),
}


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_major"])
@pytest.mark.parametrize("name", RNNS)
def test_torch_rnn_exports_load(tmp_path, name, batch_first):
    x, expected = exported(RNNS[name](batch_first), tmp_path / "rnn.onnx", batch_first)
    obj = load(tmp_path / "rnn.onnx")
    assert isinstance(obj, nplstm.GRU if name.startswith("gru") else nplstm.LSTM)
    assert np.abs(nplstm_output(obj, x, batch_first) - expected).max() < TOL


@pytest.mark.parametrize("name, reads, batch_first, many_to_one", [
    ("lstm-2-layers-bi", "steps", True, False),
    ("lstm", "steps", False, False),
    ("lstm", "last", True, True),
    ("lstm-2-layers-bi", "h_n", True, True),
    ("gru", "last", False, True),
    ("gru-2-layers-bi", "steps", True, False),
])
def test_torch_models_with_a_linear_head_load(tmp_path, name, reads, batch_first, many_to_one):
    x, expected = exported(WithHead(RNNS[name](batch_first), reads), tmp_path / "model.onnx", batch_first)
    model = load(tmp_path / "model.onnx")
    assert isinstance(model, nplstm.Model) and model.many_to_one == many_to_one
    assert np.abs(nplstm_output(model, x, batch_first) - expected).max() < TOL


def test_a_bidirectional_head_on_the_last_step_is_refused(tmp_path):
    """y[:, -1] of the reverse direction has seen one step; nplstm's many-to-one reads h_n (all of them)."""
    exported(WithHead(RNNS["lstm-2-layers-bi"](True), "last"), tmp_path / "m.onnx", True)
    with pytest.raises(ValueError, match="computes no nplstm Model"):
        load(tmp_path / "m.onnx")


# --- hand-built graphs, against onnxruntime ------------------------------------------------------

def tensor(rng, name, shape):
    return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)


def lstm_graph(*, D=1, peephole=True, input_forget=0, activations=None, many_to_one=False, op="LSTM",
               lengths=False, **attrs):
    """x (B, T, 3) batch-first [and sequence_lens (B,)] -> Transpose -> LSTM (H = 4) -> plumbing -> y (B, T, D·H),
    or a Gemm head on Y_h -> (B, 2). Every weight random."""
    rng, H, I, G = np.random.default_rng(0), 4, 3, 3 if op == "GRU" else 4
    init = [tensor(rng, "W", (D, G * H, I)), tensor(rng, "R", (D, G * H, H)), tensor(rng, "B", (D, 2 * G * H)),
            tensor(rng, "head_W", (2, D * H)), tensor(rng, "head_b", (2,)),
            numpy_helper.from_array(np.array([0, 0, -1] if not many_to_one else [0, -1], np.int64), "shape")]
    if peephole:
        init.append(tensor(rng, "P", (D, 3 * H)))
    if activations:
        attrs["activations"] = activations
    if activations and "Affine" in activations:
        attrs.update(activation_alpha=[1.0] * activations.count("Affine"),
                     activation_beta=[0.0] * activations.count("Affine"))
    if op == "LSTM":
        attrs["input_forget"] = input_forget
    inputs = ["X", "W", "R", "B", "sequence_lens" if lengths else ""] + (["", "", "P"] if peephole else [])
    attrs.setdefault("direction", "bidirectional" if D == 2 else "forward")
    nodes = [helper.make_node("Transpose", ["x"], ["X"], perm=[1, 0, 2]),
             helper.make_node(op, inputs, ["Y", "Y_h"], hidden_size=H, **attrs)]
    if many_to_one:                          # Y_h (D, B, H) -> (B, D·H) -> Gemm
        nodes += [helper.make_node("Transpose", ["Y_h"], ["Y_hb"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", ["Y_hb", "shape"], ["feature"]),
                  helper.make_node("Gemm", ["feature", "head_W", "head_b"], ["y"], transB=1)]
    else:                                    # Y (T, D, B, H) -> (B, T, D, H) -> (B, T, D·H)
        nodes += [helper.make_node("Transpose", ["Y"], ["Yb"], perm=[2, 0, 1, 3]),
                  helper.make_node("Reshape", ["Yb", "shape"], ["y"])]
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", I])]
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    graph = helper.make_graph(nodes, "g", graph_inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 2] if many_to_one else ["B", "T", D * H])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnxruntime_output(graph, x, lengths=None):
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, **({} if lengths is None else {"sequence_lens": lengths})})[0]


@pytest.mark.parametrize("kwargs, variant", [
    (dict(), dict(peephole="diagonal")),
    (dict(D=2), dict(peephole="diagonal")),
    (dict(input_forget=1), dict(peephole="diagonal", coupled=True)),
    (dict(input_forget=1, D=2, peephole=False), dict(peephole=None, coupled=True)),
    (dict(activations=["Sigmoid", "Affine", "Affine"]), dict(input_activation="identity",
                                                             output_activation="identity")),
    (dict(activations=["Sigmoid", "Tanh", "Affine"]), dict(output_activation="identity")),
    (dict(D=2, many_to_one=True), dict(peephole="diagonal")),
    (dict(op="GRU", peephole=False, linear_before_reset=1), dict()),
    (dict(op="GRU", peephole=False, linear_before_reset=1, D=2, many_to_one=True), dict()),
], ids=str)
def test_hand_built_graphs_give_onnxruntimes_outputs(kwargs, variant):
    graph = lstm_graph(**kwargs)
    onnx.checker.check_model(graph)
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    obj = load(graph)
    rnn = obj.lstm if isinstance(obj, nplstm.Model) else obj
    assert all(getattr(rnn.config, k) == v for k, v in variant.items())
    out = obj.forward(x) if isinstance(obj, nplstm.Model) else obj.forward(x)[0]
    assert np.abs(out - onnxruntime_output(graph, x)).max() < TOL


@pytest.mark.parametrize("kwargs", [dict(D=2), dict(D=2, many_to_one=True), dict(op="GRU", peephole=False,
                                    linear_before_reset=1, D=2, many_to_one=True)], ids=str)
def test_a_lengths_input_is_nplstms_lengths(kwargs):
    """sequence_lens (B,) as a second graph input: ragged batches, the reverse direction within each length."""
    graph = lstm_graph(lengths=True, **kwargs)
    x = np.random.default_rng(1).standard_normal((4, 5, 3)).astype(np.float32)
    lengths = np.array([5, 2, 4, 1], np.int32)
    out = load(graph).forward(x, lengths=lengths)
    out = out if isinstance(out, np.ndarray) else out[0]
    assert np.abs(out - onnxruntime_output(graph, x, lengths)).max() < TOL


def test_load_reads_a_file(tmp_path):
    onnx.save(lstm_graph(D=2), tmp_path / "g.onnx")
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    assert np.abs(load(str(tmp_path / "g.onnx")).forward(x)[0] - onnxruntime_output(lstm_graph(D=2), x)).max() < TOL


def with_node(graph, node, at=1):
    graph.graph.node.insert(at, node)
    return graph


@pytest.mark.parametrize("make, message", [
    (lambda: with_node(lstm_graph(), helper.make_node("Conv", ["x", "W"], ["c"], name="conv0")),
     "unsupported Conv node 'conv0'"),
    (lambda: lstm_graph(op="RNN", peephole=False), "unsupported RNN node"),
    (lambda: lstm_graph(op="GRU", peephole=False), "linear_before_reset=0"),
    (lambda: lstm_graph(direction="reverse"), "direction='reverse'"),
    (lambda: lstm_graph(clip=3.0), "clips its cell at 3.0"),
    (lambda: lstm_graph(activations=["Sigmoid", "Relu", "Tanh"]), "activations f=Sigmoid, g=Relu, h=Tanh"),
    (lambda: with_node(lstm_graph(many_to_one=True), helper.make_node("MatMul", ["x", "head_W"], ["unused"]), 2),
     "expected one MatMul or Gemm"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_what_nplstm_lacks_is_refused(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load(make())
    assert "\n" not in str(info.value)


def test_a_second_graph_input_and_nonzero_initial_states_are_refused():
    graph = lstm_graph(peephole=False)
    lstm = graph.graph.node[1]
    lstm.input.append("h0")                  # input 5: initial_h
    graph.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, "B", 4]))
    with pytest.raises(ValueError, match="expected one graph input, the sequence"):
        load(graph)
    graph.graph.input.pop()
    graph.graph.initializer.append(numpy_helper.from_array(np.ones((1, 2, 4), np.float32), "h0"))
    with pytest.raises(ValueError, match="has a nonzero initial_h; expected zero initial states"):
        load(graph)


def test_import_nplstm_onnx_import_does_not_import_onnx():
    code = "import sys, nplstm.interop.onnx_import; print('onnx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "False"
