"""Pictures of a training run: loss and metric curves, gradient norms, gates, gradient flow in time.

Data functions (NumPy only) compute what is drawn; figure functions return matplotlib Figures on
the non-interactive Agg canvas (matplotlib is imported inside them: pip install "nplstm[plot]");
`run_figures` makes every figure for a run directory and `save_figures` writes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..stack import LSTMConfig
from ..training.runs import Run
from .gradflow import gradient_flow

FORMATS = ("png", "svg")
MAX_STEPS = 100                              # steps of the test sequence shown in gates and gradient flow


class MissingExtra(ImportError, ValueError):
    """matplotlib is not installed. A ValueError too, so that the command line prints one line."""


# ---- data ---------------------------------------------------------------------------------------

def split_metrics(test: dict) -> tuple[list[str], list[str]]:
    """A test record's metrics worth a curve (all but loss and solved), and the reference values a task
    reports alongside them (baseline_*, *_entropy), drawn as dashed lines."""
    references = [k for k in test if k.startswith("baseline_") or k.endswith("_entropy")]
    return [k for k in test if k not in ("loss", "solved") and k not in references], references


def one_test_sequence(task, max_steps: int = MAX_STEPS) -> np.ndarray:
    """The first test sequence of a task, cut at its length and at max_steps -> x (1, T, I)."""
    test = task.test_set()
    T = test.x.shape[1] if test.lengths is None else int(test.lengths[0])
    return np.array(test.x[:1, :min(T, max_steps)])


# ---- figures ------------------------------------------------------------------------------------

def _figure(**kwargs):
    """A matplotlib Figure on an Agg canvas (no pyplot, no global backend)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra('nplstm\'s plots need matplotlib: pip install "nplstm[plot]"') from None
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _mark_solved(ax, history: dict) -> None:
    if history.get("solved"):
        ax.axvline(history["step_solved"], color="tab:green", ls=":", lw=1, label="solved")


def curves_figure(history: dict, config: dict):
    """Train and test loss, then one panel per test metric, against updates (sequences on top)."""
    records = history["records"]
    steps = [r["step"] for r in records]
    metrics, references = split_metrics(records[-1]["test"])
    n = 1 + len(metrics)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = _figure(figsize=(5.5 * cols, 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    B = config["train"]["batch_size"]
    ax = axes[0]
    ax.plot(steps, [r["train_loss"] for r in records], marker=".", label="train loss")
    ax.plot(steps, [r["test"]["loss"] for r in records], marker=".", label="test loss")
    ax.secondary_xaxis("top", functions=(lambda s: s * B, lambda n: n / B)).set_xlabel("sequences")
    ax.set_title(f"{config['task']['name']}: loss")
    for ax, name in zip(axes[1:], metrics):
        ax.plot(steps, [r["test"].get(name, np.nan) for r in records], marker=".", label=f"test {name}")
        ax.set_title(name)
    for ref in references:                   # baseline_K beside K, anything else beside the loss
        target = ref.removeprefix("baseline_")
        ax = axes[1 + metrics.index(target)] if target in metrics else axes[0]
        ax.axhline(records[-1]["test"][ref], color="gray", ls="--", lw=1, label=ref)
    for ax in axes[:n]:
        _mark_solved(ax, history)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def grad_norm_figure(history: dict, config: dict):
    """The global gradient norm (mean and max between evaluations, before clipping), and per
    parameter when the records have a grad_norm_per_param dict."""
    records = history["records"]
    steps = [r["step"] for r in records]
    per_param = [r.get("grad_norm_per_param") for r in records]
    has_per_param = any(isinstance(p, dict) and p for p in per_param)
    fig = _figure(figsize=(6.5, 3.4 * (1 + has_per_param)), layout="constrained")
    axes = fig.subplots(1 + has_per_param, 1, squeeze=False)[:, 0]
    ax = axes[0]
    for stat in ("mean", "max"):
        ax.plot(steps, [r["grad_norm"][stat] for r in records], marker=".", label=f"{stat} since last evaluation")
    clip = config["train"].get("clip")
    if clip:
        ax.axhline(clip, color="gray", ls="--", lw=1, label=f"clip {clip:g}")
    ax.set_title("global gradient norm (before clipping)")
    if has_per_param:
        names = sorted({k for p in per_param if isinstance(p, dict) for k in p})
        for k, name in enumerate(names):     # past the 10 colours of the cycle, dashed
            axes[1].plot(steps, [_norm_value((p or {}).get(name)) for p in per_param], ls="-" if k < 10 else "--",
                         label=name)
        axes[1].set_title("gradient norm per parameter")
    for ax in axes:
        _mark_solved(ax, history)
        ax.set_yscale("log")
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncol=2)
    return fig


def _norm_value(v) -> float:
    """A per-parameter record entry: a number, or a dict with a "mean"."""
    if isinstance(v, dict):
        v = v.get("mean")
    return np.nan if v is None else float(v)


def gates_figure(internals: dict[str, np.ndarray], title: str = ""):
    """Heatmaps (units × time) of one sequence: an LSTM's i, f, g, o and c, or a GRU's r, z, n and h.
    internals: name -> (T, H)."""
    lstm = "c" in internals
    fig = _figure(figsize=(8, 9 if lstm else 7.4), layout="constrained")
    axes = fig.subplots(5 if lstm else 4, 1, sharex=True)
    c_max = max(float(np.abs(internals["c"]).max()), 1e-6) if lstm else 1.0
    scales = {"i": (0, 1, "viridis"), "f": (0, 1, "viridis"), "g": (-1, 1, "RdBu_r"), "o": (0, 1, "viridis"),
              "c": (-c_max, c_max, "RdBu_r")} if lstm else \
             {"r": (0, 1, "viridis"), "z": (0, 1, "viridis"), "n": (-1, 1, "RdBu_r"), "h": (-1, 1, "RdBu_r")}
    names = {"i": "input gate i", "f": "forget gate f", "g": "cell input g", "o": "output gate o", "c": "cell state c",
             "r": "reset gate r", "z": "update gate z", "n": "candidate n", "h": "hidden state h"}
    for ax, (key, (vmin, vmax, cmap)) in zip(axes, scales.items()):
        image = ax.imshow(internals[key].T, aspect="auto", origin="lower", interpolation="nearest",
                          vmin=vmin, vmax=vmax, cmap=cmap)
        fig.colorbar(image, ax=ax, pad=0.01)
        ax.set_title(names[key], fontsize="medium", loc="left")
        ax.set_ylabel("unit")
    axes[-1].set_xlabel("t")
    fig.suptitle(title)
    return fig


def gradient_flow_figure(curves: dict[str, np.ndarray], title: str = ""):
    """Norms of the state gradients against t, log scale. curves: "model: quantity" -> (T,);
    one colour per model, ∂L/∂h dashed and ∂L/∂c solid for the LSTM."""
    fig = _figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    colours = {}
    for label, norms in curves.items():
        model = label.split(":")[0]
        colour = colours.setdefault(model, f"C{len(colours)}")
        dashed = "LSTM" in model and "∂h" in label
        ax.plot(np.arange(len(norms)), np.where(norms > 0, norms, np.nan), marker=".", ms=3, color=colour,
                ls="--" if dashed else "-", label=label)
    T = len(next(iter(curves.values())))
    ax.set_yscale("log")
    ax.set_xlabel(f"t: the state entering step t (the loss is on the output of step {T - 1})")
    ax.set_ylabel("gradient norm")
    ax.set_title(title or "gradient flow back in time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def forecast_figure(dates, truth: np.ndarray, pred: np.ndarray, ahead: np.ndarray | None, names, title: str = ""):
    """Prediction against truth on the held-out part of a series. truth, pred: (N, O) one-step-ahead
    (each from the true window before it); ahead: (K, O) the recursive forecast from the split's start, or None."""
    fig = _figure(figsize=(10, 2.6 * truth.shape[1]))
    t = np.arange(len(truth))
    for j in range(truth.shape[1]):
        ax = fig.add_subplot(truth.shape[1], 1, j + 1)
        ax.plot(t, truth[:, j], color="black", lw=1.2, label="truth")
        ax.plot(t, pred[:, j], color="tab:blue", lw=1.2, label="one step ahead (from the true window)")
        if ahead is not None:
            ax.plot(t[:len(ahead)], ahead[:, j], color="tab:orange", ls="--", lw=1.2,
                    label="recursive forecast from the split's start")
        ax.set_ylabel(names[j])
        if dates is not None:
            ticks = t[::max(1, len(t) // 8)]
            ax.set_xticks(ticks, [dates[k] for k in ticks], fontsize=8)
        ax.legend(fontsize=8, loc="upper left")
    fig.axes[0].set_title(title)
    fig.tight_layout()
    return fig


def confusion(pred: np.ndarray, truth: np.ndarray, n: int) -> np.ndarray:
    """counts[true class, predicted class] (n, n) over the pairs given (1-D int arrays)."""
    counts = np.zeros((n, n), np.int64)
    np.add.at(counts, (truth, pred), 1)
    return counts


def confusion_figure(counts: np.ndarray, title: str = ""):
    """A confusion matrix: rows the true class, columns the predicted one, each cell its count."""
    fig = _figure(figsize=(1.2 + 0.5 * len(counts), 1 + 0.5 * len(counts)))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        ax.text(j, i, str(c), ha="center", va="center", fontsize=8,
                color="white" if c > counts.max() / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def data_figures(run: Run) -> dict[str, object]:
    """The pictures of a run on your own data: forecast (series) or confusion (classes), on the test split."""
    task, model = run.task, run.model
    test = getattr(task, "test", None)
    if model is None or test is None:
        return {}
    if getattr(task, "target_type", None) == "classes":
        out = model.predict(test.x, test.lengths).argmax(-1)
        pred, truth = (out, test.y) if test.mask is None else (out[test.mask], test.y[test.mask])
        return {"confusion": confusion_figure(confusion(pred, truth, model.head.out_features),
                                              f"{task.name}: the test split ({len(truth)} targets)")}
    if task.name != "series":
        return {}
    pred = model.predict(test.x)
    ahead = None
    if task.horizon == 1 and len(task.output_columns) == len(task.columns):
        ahead = np.asarray(model.forecast(test.x[0], len(test.x))).reshape(len(test.x), -1)
    dates = None if task.dates is None else task.dates[-len(test.x):]
    return {"forecast": forecast_figure(dates, test.y, pred, ahead, task.output_columns,
                                        f"{task.name}: the held-out test split (the last 20%)")}


# ---- a run --------------------------------------------------------------------------------------

def run_figures(run: Run) -> dict[str, object]:
    """Every figure of a run, by file stem: curves and grad_norm (once there are evaluations),
    gates_<layer> (with a checkpoint), gradient_flow."""
    name = run.config["task"]["name"]
    figures = {}
    if run.history["records"]:
        figures["curves"] = curves_figure(run.history, run.config)
        figures["grad_norm"] = grad_norm_figure(run.history, run.config)
    figures.update(data_figures(run))
    x = one_test_sequence(run.task)
    if x.dtype.kind in "iu":                 # token ids -> the vectors the LSTM reads
        if run.model is not None and run.model.embedding is not None:
            x = run.model.embedding.forward(x)
        else:   # a charlm run from before the Embedding (one-hot inputs), or no checkpoint to embed with
            I = run.config["model"]["input_size"]
            x = np.eye(I, dtype=np.float32)[x % I]
    gru = run.config["model"].get("cell") == "gru"
    if run.model is not None:
        layer = run.model.lstm               # the LSTM, or the GRU
        layer.forward(x.astype(layer.dtype))
        state = "hidden" if gru else "cell"
        for key, series in layer.internals().items():
            figures[f"gates_{key}"] = gates_figure({k: v[0] for k, v in series.items()},
                                                   f"{name}: gates and {state} state of test sequence 0 ({key})")
    if run.model is not None and not gru:
        cfg, trained = run.model.lstm.config, run.model.lstm
    else:                                    # a fresh LSTM of the run's sizes beside the plain RNN (and the GRU)
        m = run.config["model"]
        cfg, trained = LSTMConfig(m["input_size"], m["hidden_size"], m["num_layers"]), None
    trained_gru = run.model.lstm if gru and run.model is not None else None
    figures["gradient_flow"] = gradient_flow_figure(gradient_flow(x, cfg, trained, gru=trained_gru),
                                                    f"{name}: gradient of a loss at the last step, test sequence 0")
    return figures


def save_figures(figures: dict, out, formats=("png",)) -> list[Path]:
    """Write each figure as out/<name>.<format> for each format ("png", "svg") -> the paths written."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats: expected some of {FORMATS}, got {tuple(formats)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(path, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
    return paths
