"""Pictures of a real (short) run, the gradient-flow data behind one of them, and `nplstm plot`."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import nplstm
from nplstm.diagnostics import gradflow, plots
from nplstm.diagnostics.report import plot_run
from nplstm.training import runs
from nplstm.tasks import make_task
from nplstm.training.trainer import TrainConfig, build_model, train

if not os.environ.get("CI"):
    pytest.importorskip("matplotlib")        # in CI the plot extra is installed, and these tests must run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Reber, a two-layer LSTM, 30 updates: history.json, config.json and checkpoint.npz."""
    path = tmp_path_factory.mktemp("run")
    task = make_task("reber", n_train=64, n_test=64)
    model = build_model(task, hidden_size=8, num_layers=2, seed=0)
    train(model, task, TrainConfig(steps=30, batch_size=8, eval_every=10, run_dir=path, progress=False, log_every=0))
    return path


@pytest.fixture(scope="module")
def figures(run_dir):
    return plots.run_figures(runs.load_run(run_dir))


def test_every_figure_of_a_run(figures):
    assert list(figures) == ["curves", "grad_norm", "gates_l0", "gates_l1", "gradient_flow"]


def test_curves_have_a_panel_for_the_loss_and_each_metric(figures, run_dir):
    history = json.loads((run_dir / "history.json").read_text())
    metrics = ["step_accuracy", "accuracy_tp", "wrong_test", "wrong_train", "frac_wrong"]
    axes = figures["curves"].axes
    assert [ax.get_title() for ax in axes] == ["reber: loss", *metrics]
    train_loss, test_loss = axes[0].lines[:2]
    np.testing.assert_array_equal(train_loss.get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(test_loss.get_ydata(), [r["test"]["loss"] for r in history["records"]])
    for ax, name in zip(axes[1:], metrics):
        np.testing.assert_allclose(ax.lines[0].get_ydata(), [r["test"][name] for r in history["records"]])


def test_gates_are_heatmaps_of_units_by_time(figures):
    seq_len = int(make_task("reber", n_train=64, n_test=64).test_set().lengths[0])
    fig = figures["gates_l1"]
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title(loc="left") for ax in panels] == ["input gate i", "forget gate f", "cell input g",
                                                           "output gate o", "cell state c"]
    for ax in panels:
        image = ax.images[0].get_array()
        assert image.shape == (8, seq_len)               # (H, T)
        assert np.isfinite(image).all() and image.std() > 0
    gates = [ax.images[0].get_array() for ax in panels[:4]]
    assert all(0 <= g.min() and g.max() <= 1 for g in (gates[0], gates[1], gates[3]))


def test_gradient_flow_figure_draws_rnn_and_lstm(figures):
    ax, = figures["gradient_flow"].axes
    assert ax.get_yscale() == "log"
    labels = [line.get_label() for line in ax.lines]
    assert labels[0].startswith("plain RNN") and sum("LSTM, trained" in s for s in labels) == 2
    assert all(np.isfinite(line.get_ydata()).any() for line in ax.lines)


def test_grad_norm_global_and_per_parameter(run_dir):
    run = runs.load_run(run_dir)
    history = json.loads(json.dumps(run.history))
    for r in history["records"]:
        r.pop("grad_norm_per_param", None)
    ax, = plots.grad_norm_figure(history, run.config).axes
    assert [line.get_label() for line in ax.lines][:2] == ["mean since last evaluation", "max since last evaluation"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [r["grad_norm"]["max"] for r in history["records"]])
    for k, r in enumerate(history["records"]):      # the two forms a per-parameter entry may take
        r["grad_norm_per_param"] = {"lstm.l0.W": 0.1 * (k + 1), "head.W": {"mean": 0.2, "max": 0.3}}
    fig = plots.grad_norm_figure(history, run.config)
    assert len(fig.axes) == 2
    per_param = {line.get_label(): line.get_ydata() for line in fig.axes[1].lines}
    np.testing.assert_allclose(per_param["lstm.l0.W"], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(per_param["head.W"], [0.2, 0.2, 0.2])


@pytest.mark.slow
def test_png_and_svg_files(figures, tmp_path):
    paths = plots.save_figures(figures, tmp_path, ("png", "svg"))
    assert len(paths) == 2 * len(figures)
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 10_000, path
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            root = ET.fromstring(data)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            assert len(list(root.iter())) > 100     # paths, text, images: a drawing, not an empty page


def test_bad_run_dirs(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        runs.load_run(tmp_path / "nothing")
    with pytest.raises(ValueError, match="no config.json"):
        runs.load_run(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        runs.load_run(tmp_path)
    with pytest.raises(ValueError, match="formats"):
        plots.save_figures({}, tmp_path, ("pdf",))


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install \"nplstm\[plot\]\"") as err:
        plots.gradient_flow_figure({"a": np.ones(3)})
    assert isinstance(err.value, ValueError)         # so `nplstm plot` says it in one line


# ---- the gradient-flow data --------------------------------------------------------------------

def unit(rng, shape):
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v)


def test_rnn_state_gradients_are_the_chain_rule():
    """∂L/∂h entering step t, by the Jacobians written out: δ_t = (δ_{t+1} ⊙ (1 - y_t²)) Rᵀ."""
    rng = np.random.default_rng(0)
    rnn = nplstm.RNN(3, 5, dtype=np.float64, seed=0)
    x, dy_last = rng.standard_normal((2, 9, 3)), unit(rng, (2, 5))
    got = gradflow.rnn_state_gradients(rnn, x, dy_last)
    y, _ = rnn.forward(x)
    delta, want = dy_last, []
    for t in range(8, -1, -1):
        delta = (delta * (1 - y[:, t] ** 2)) @ rnn.params["R"].T
        want.append(np.linalg.norm(delta))
    np.testing.assert_allclose(got, want[::-1], rtol=1e-12)


def test_lstm_state_gradients_match_torch_autograd(torch):
    """PyTorch differentiates the same LSTM step by step; the state handed to step t+1 is its own node."""
    rng = np.random.default_rng(1)
    B, T, I, H = 2, 7, 3, 4
    lstm = nplstm.LSTM(I, H, peephole=None, dtype=np.float64, seed=0)
    for k, v in lstm.params.items():
        lstm.params[k] = rng.normal(0, 0.5, v.shape)
    x, dy_last = rng.standard_normal((B, T, I)), unit(rng, (B, H))
    dh, dc = gradflow.lstm_state_gradients(lstm, x, dy_last)

    W, R, b = (torch.tensor(lstm.params["l0." + k]) for k in "WRb")
    h, c = (torch.zeros(B, H, dtype=torch.float64, requires_grad=True) for _ in range(2))
    states = []
    for t in range(T):
        states.append((h, c))
        a = torch.tensor(x[:, t]) @ W + h @ R + b
        i, f, g, o = torch.sigmoid(a[:, :H]), torch.sigmoid(a[:, H:2 * H]), torch.tanh(a[:, 2 * H:3 * H]), \
            torch.sigmoid(a[:, 3 * H:])
        c_t = f * c + i * g
        h_t = o * torch.tanh(c_t)
        h, c = h_t * 1, c_t * 1                  # the state entering step t+1, apart from h_t's use of c_t
        h.retain_grad(), c.retain_grad()
    (h_t * torch.tensor(dy_last)).sum().backward()
    np.testing.assert_allclose(dh, [s[0].grad.norm().item() for s in states], rtol=1e-10)
    np.testing.assert_allclose(dc, [s[1].grad.norm().item() for s in states], rtol=1e-10)


def small_weights(rng, T=50, I=2, H=16, scale=0.1):
    """An LSTM (forget bias 5) and a plain RNN whose weights are scaled to spectral norm `scale`."""
    lstm = nplstm.LSTM(I, H, dtype=np.float64, seed=0, forget_bias=5.0)
    for k in lstm.params:
        if not k.endswith(".b"):
            lstm.params[k] = lstm.params[k] * scale   # orthogonal R blocks: spectral norm `scale`
    rnn = nplstm.RNN(I, H, dtype=np.float64, seed=0)
    rnn.params["R"] = lstm.params["l0.R"][:, 2 * H:3 * H].copy()   # the LSTM's g block
    return lstm, rnn, rng.standard_normal((1, T, I)), unit(rng, (1, H))


def test_plain_rnn_gradient_vanishes_geometrically():
    lstm, rnn, x, dy_last = small_weights(np.random.default_rng(2))
    dh = gradflow.rnn_state_gradients(rnn, x, dy_last)
    # ‖δ_t‖ ≤ ‖δ_{t+1}‖ · max|tanh'| · ‖R‖₂ ≤ 0.1 ‖δ_{t+1}‖ at every step back
    assert (dh[:-1] / dh[1:] <= 0.1 + 1e-12).all()
    assert dh[0] / dh[-1] < 1e-40


def test_lstm_cell_carries_the_gradient():
    lstm, rnn, x, dy_last = small_weights(np.random.default_rng(2))
    dh, dc = gradflow.lstm_state_gradients(lstm, x, dy_last)
    assert dc.max() / dc.min() < 2 and dh.max() / dh.min() < 2   # f ≈ σ(5): 50 steps lose < a factor 2
    assert dc[0] > 0.5 * dc[-1]


def test_gradient_flow_curves(run_dir):
    run = runs.load_run(run_dir)
    x = plots.one_test_sequence(run.task)
    curves = gradflow.gradient_flow(x, run.model.lstm.config, run.model.lstm)
    assert len(curves) == 5 and all(c.shape == (x.shape[1],) and (c > 0).all() for c in curves.values())
    bidirectional = nplstm.LSTM(7, 8, bidirectional=True, seed=0)
    assert len(gradflow.gradient_flow(x, bidirectional.config, bidirectional)) == 3   # RNN + fresh LSTM h and c
    with pytest.raises(ValueError, match="bidirectional"):
        gradflow.lstm_state_gradients(bidirectional, x, np.ones((1, 8), np.float32))


# ---- the command line --------------------------------------------------------------------------

def nplstm_cli(*args):
    return subprocess.run([sys.executable, "-m", "nplstm", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_nplstm_plot_writes_pictures_and_report(run_dir, tmp_path):
    result = nplstm_cli("plot", run_dir, "--out", tmp_path / "pictures", "--format", "both")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.split()
    stems = ["curves", "grad_norm", "gates_l0", "gates_l1", "gradient_flow"]
    assert printed == [str(tmp_path / "pictures" / f"{s}.{f}") for s in stems for f in ("png", "svg")] + \
        [str(run_dir / "report.html")]
    assert all(Path(name).stat().st_size > 10_000 for name in printed)


@pytest.mark.slow
def test_pictures_go_to_run_dir_plots_by_default(run_dir):
    paths = plot_run(run_dir, report=False)
    assert paths == [run_dir / "plots" / f"{s}.png" for s in ("curves", "grad_norm", "gates_l0", "gates_l1",
                                                                "gradient_flow")]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_nplstm_plot_without_matplotlib(run_dir):
    code = ("import sys; sys.modules['matplotlib'] = None; from nplstm.cli import main; "
            f"sys.exit(main(['plot', {str(run_dir)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == 'nplstm plot: error: nplstm\'s plots need matplotlib: pip install "nplstm[plot]"\n'


@pytest.mark.parametrize("args,message", [
    (["/no/such/run"], "nplstm plot: error: run dir /no/such/run: no such directory"),
    ([".", "--format", "pdf"], "invalid choice: 'pdf'"),
])
def test_nplstm_plot_errors_are_one_line(args, message):
    result = nplstm_cli("plot", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
