"""`nplstm predict RUN_DIR --path FILE`: a trained run's predictions on a file, as CSV, with the
preprocessing the run saved (its scaler, and for a series its window, horizon and columns)."""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np

from .options import integer


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict with a trained run on a CSV series or an .npz of sequences",
                       description="Predictions of the run in RUN_DIR on FILE, as CSV: for a series, one row per "
                                   "window with its target's date (or row index), the prediction and the truth; "
                                   "with --steps-ahead K, the recursive forecast of the K steps after the file's "
                                   "end; for sequences, one row per sequence (or per step).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `nplstm train series|sequences`")
    p.add_argument("--path", required=True, metavar="FILE", help="the CSV series or .npz file to predict on")
    p.add_argument("--out", metavar="CSV", help="write the predictions here (default: standard output)")
    p.add_argument("--steps-ahead", type=integer(1, 10 ** 6), metavar="K",
                   help="series: forecast K steps past the end of the file, feeding each prediction back")
    p.set_defaults(run=_predict)


def _predict(args) -> None:
    from ..training.checkpoint import load_model
    from ..training.runs import read_config

    run = Path(args.run_dir)
    config = read_config(run)
    task = config["task"]
    if task.get("name") not in ("series", "sequences"):
        raise ValueError(f"run dir {run}: trained on task {task.get('name')!r}; predict reads runs of your own data "
                         "(nplstm train series or sequences)")
    model = load_model(run / "checkpoint.npz")
    options = task.get("options") or {}
    header, rows = (_series(model, options, args) if task["name"] == "series" else _sequences(model, args))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if args.out:
        Path(args.out).write_text(text.getvalue(), encoding="utf-8")
        print(f"wrote {len(rows)} rows to {args.out}")
    else:
        sys.stdout.write(text.getvalue())


def _series(model, options: dict, args):
    from ..data import windows
    from ..tasks.files import load_series

    window, horizon = options.get("window", 48), options.get("horizon", 1)
    values, columns, dates = load_series(args.path, options.get("column") or (), options.get("fill"))
    target = options.get("target")
    out = [columns.index(target)] if target else list(range(len(columns)))
    names = [columns[j] for j in out]
    if args.steps_ahead:
        if len(values) < window:
            raise ValueError(f"{args.path}: {len(values)} rows, fewer than the run's window of {window}")
        if horizon != 1 or len(out) != len(columns):
            raise ValueError("--steps-ahead: a recursive forecast feeds each prediction back as the next input, "
                             "so it needs a run with horizon 1 that predicts every input column")
        ahead = model.forecast(values[-window:], args.steps_ahead).reshape(args.steps_ahead, -1)
        labels = _future(dates, args.steps_ahead)
        return ["step", *[f"{n}_forecast" for n in names]], [[lab, *map(_fmt, r)] for lab, r in zip(labels, ahead)]
    if len(values) < window + horizon:
        raise ValueError(f"{args.path}: {len(values)} rows, fewer than window + horizon = {window + horizon}")
    x, y = windows(values, window, horizon)
    pred = model.predict(x)
    first = window + horizon - 1
    when = dates[first:] if dates is not None else [str(i) for i in range(first, len(values))]
    header = ["date" if dates is not None else "row", *[f"{n}_predicted" for n in names], *[f"{n}_true" for n in names]]
    return header, [[w, *map(_fmt, p), *map(_fmt, t)] for w, p, t in zip(when, pred, y[:, out])]


def _future(dates, k: int) -> list[str]:
    """Labels of the k steps after the file: numeric dates (years) continue by their last step, else t+1..t+k."""
    try:
        last, prev = float(dates[-1]), float(dates[-2])
        step = last - prev
        return [_fmt(last + step * (j + 1)) for j in range(k)]
    except (TypeError, ValueError, IndexError):
        return [f"t+{j + 1}" for j in range(k)]


def _sequences(model, args):
    from ..tasks.files import load_npz

    arrays = load_npz(args.path, required=("x",))
    pred = model.predict(arrays["x"], arrays.get("lengths"))
    classes = getattr(model, "target", None) == "classes"
    if model.many_to_one:
        header = ["sequence", *(["class"] if classes else []), *[f"out{j}" for j in range(pred.shape[-1])]]
        return header, [[b, *([int(p.argmax())] if classes else []), *map(_fmt, p)] for b, p in enumerate(pred)]
    lengths = arrays.get("lengths")
    header = ["sequence", "step", *(["class"] if classes else []), *[f"out{j}" for j in range(pred.shape[-1])]]
    rows = []
    for b in range(pred.shape[0]):
        for t in range(int(lengths[b]) if lengths is not None else pred.shape[1]):
            rows.append([b, t, *([int(pred[b, t].argmax())] if classes else []), *map(_fmt, pred[b, t])])
    return header, rows


def _fmt(v) -> str:
    return f"{float(v):.6g}"
