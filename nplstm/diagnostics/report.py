"""One self-contained HTML page for a run directory: the verdict, the anomaly report if training
stopped on one, the final metrics, the pictures (embedded PNG), the history and the configuration.

Plain HTML and a little CSS: no external resources and no JavaScript, so it opens in any browser.
"""
from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

from ..training.runs import Run, load_run, verdict
from .plots import run_figures, save_figures, split_metrics

MAX_ROWS = 25                                # evaluations shown in the history table

CAPTIONS = {
    "curves": "Train loss (mean since the previous evaluation) and test loss, then each test metric, "
              "against updates.",
    "grad_norm": "Gradient norm before clipping: mean and max between evaluations (and per parameter "
                 "where the history has it).",
    "forecast": "The held-out part of the series: the truth, the one-step-ahead prediction from each true "
                "window, and the recursive forecast that feeds each prediction back from the split's start.",
    "confusion": "Confusion matrix on the test split: rows the true class, columns the predicted one.",
    "gradient_flow": "Norm of the gradient of a loss at the last step with respect to the state entering "
                     "each step t: a plain tanh RNN's vanishes going back in time; the LSTM's cell "
                     "state carries it (the constant error carousel).",
}

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; }
.verdict { font-size: 1.15em; padding: .5em .8em; border-radius: 4px; }
.solved { background: #e6f4ea; border-left: 5px solid #2e7d32; }
.unsolved { background: #fff4e5; border-left: 5px solid #ef6c00; }
.anomaly { background: #fdecea; border-left: 5px solid #c62828; padding: .6em; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.config { display: flex; flex-wrap: wrap; gap: 2em; }
.scroll { overflow-x: auto; }
figure { margin: 1em 0 2em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: .9em; }
"""


def write_report(run_dir, *, figures: dict | None = None) -> Path:
    """Write run_dir/report.html and return its path. The anomaly report shown is run_dir/anomaly.txt,
    else history.json's "anomaly", if either is there.

    run_dir: a run directory (or a loaded runs.Run); figures: name -> matplotlib Figure, as
    plots.run_figures makes them (None: make them here, which needs matplotlib; {}: no pictures).
    """
    from ..training.checkpoint import atomic_write

    run = run_dir if isinstance(run_dir, Run) else load_run(run_dir)
    if figures is None:
        figures = run_figures(run)
    pictures = {name: _png(fig) for name, fig in figures.items()}
    saved = run.path / "anomaly.txt"
    anomaly = saved.read_text(errors="replace") if saved.is_file() else run.history.get("anomaly") or None
    text = render_report(run, pictures, anomaly)
    path = run.path / "report.html"
    atomic_write(path, lambda f: f.write(text.encode()))
    path.chmod(0o644)                        # a page to open and share, not a private temporary file
    return path


def plot_run(run_dir, out=None, formats=("png",), *, report: bool = True) -> list[Path]:
    """Every figure of a run directory, written to out (default run_dir/plots), and run_dir/report.html
    unless report=False -> the paths written, the report last."""
    run = load_run(run_dir)
    figures = run_figures(run)
    paths = save_figures(figures, run.path / "plots" if out is None else out, formats)
    return (paths + [write_report(run, figures=figures)]) if report else paths


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def render_report(run: Run, pictures: dict[str, bytes], anomaly: str | None = None) -> str:
    """The page as a string. pictures: figure name -> PNG bytes; anomaly: the anomaly report or None."""
    name = run.config["task"]["name"]
    solved, line = verdict(run.history, run.config["train"]["batch_size"])
    records = run.history["records"]
    paper = getattr(run.task, "paper", None) or {}
    parts = [f"<h1>nplstm run: {escape(name)}</h1>",
             f'<p class="verdict {"solved" if solved else "unsolved"}">{escape(name)}: {escape(line)}</p>']
    if paper:
        parts.append('<p class="note">paper: ' + escape(", ".join(f"{k} {_fmt(v)}" for k, v in paper.items()
                                                                   if k != "source"))
                     + f" ({escape(str(paper.get('source', '')))})</p>")
    if anomaly is not None:
        parts += ["<h2>Anomaly</h2>", f'<pre class="anomaly">{escape(anomaly)}</pre>']
    if records:
        parts += [f"<h2>Final test metrics (after update {records[-1]['step']:,})</h2>",
                  _table(["metric", "value"], [[k, v] for k, v in records[-1]["test"].items()])]
    if pictures:
        parts.append("<h2>Pictures</h2>")
    for fig_name, png in pictures.items():
        data = base64.b64encode(png).decode("ascii")
        caption = CAPTIONS.get(fig_name) or (f"Gates i, f, g, o and cell state c (units × time) of test sequence 0, "
                                             f"layer/direction {fig_name.removeprefix('gates_')}.")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig_name)}">'
                     f"<figcaption>{escape(caption)}</figcaption></figure>")
    parts += ["<h2>History</h2>", _history_table(records, run.config["train"]["batch_size"]) if records
              else '<p class="note">No evaluation yet.</p>', "<h2>Configuration</h2>", '<div class="config">']
    task_cfg = {**{k: v for k, v in run.config["task"].items() if k != "options"},
                **(run.config["task"].get("options") or {})}
    for title, cfg in (("model", run.config["model"]), ("training", run.config["train"]), ("task", task_cfg)):
        parts.append(f"<div><h3>{title}</h3>{_table(['setting', 'value'], [[k, v] for k, v in cfg.items()])}</div>")
    parts += ["</div>", f'<p class="note">run directory {escape(str(run.path))}</p>']
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>nplstm: {escape(name)} ({'solved' if solved else 'not solved'})</title>"
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _history_table(records: list[dict], batch_size: int) -> str:
    """At most MAX_ROWS evaluations, evenly spread, the first and last always included."""
    metrics, _ = split_metrics(records[-1]["test"])
    shown = records
    if len(records) > MAX_ROWS:
        step = (len(records) - 1) / (MAX_ROWS - 1)
        shown = [records[round(k * step)] for k in range(MAX_ROWS)]
    header = ["update", "sequences", "train loss", "test loss", *metrics, "grad norm mean", "grad norm max", "lr", "s"]
    rows = [[r["step"], r.get("sequences_seen", r["step"] * batch_size), r["train_loss"], r["test"]["loss"],
             *(r["test"].get(k) for k in metrics), r["grad_norm"]["mean"], r["grad_norm"]["max"],
             r.get("lr"), r.get("seconds")] for r in shown]
    note = "" if shown is records else f'<p class="note">{len(shown)} of {len(records)} evaluations shown.</p>'
    return f'<div class="scroll">{_table(header, rows)}</div>{note}'


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1e4 else f"{v:.4g}"
    return json.dumps(v)
