"""Turn several `nplstm bench --json` files into the tables of docs/performance.md.

Run:  python tools/bench_tables.py run1.json run2.json run3.json

Every cell is the range over the runs (min–max); a ratio cell adds, in brackets, the largest in-run
spread (the interquartile range of the per-round ratios over their median) of that ratio. Standard
library only: it reads JSON and prints Markdown.
"""
from __future__ import annotations

import json
import sys


def _num(v: float) -> str:
    """Three significant figures, the way the tables print them."""
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _range(values, fmt=_num) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)}–{fmt(hi)}"


def _ratio(rows, key) -> str:
    spread = max(r[key + "_spread"] for r in rows)
    return f"{_range([r[key] for r in rows], lambda v: f'{v:.2f}')} ({spread:.0%})".replace("%)", " %)")


def _size(r) -> str:
    return f"({r['B']}, {r['T']}, {r['I']}, {r['H']})"


def tables(runs: list[dict]) -> str:
    out = []
    ratios = [("train_ratio", "training / torch"), ("gru_ratio", "GRU training / nn.GRU"),
              ("infer_ratio", "inference / torch"), ("ort_ratio", "inference / ORT"),
              ("ort_peephole_ratio", "inference with peepholes / ORT with peepholes"),
              ("diagonal_over_none", "diagonal peepholes, training"), ("full_over_none", "full peepholes, training"),
              ("infer_diagonal_over_none", "diagonal peepholes, inference")]
    out.append("| (B, T, I, H) | " + " | ".join(name for _, name in ratios) + " |")
    out.append("|---" * (len(ratios) + 1) + "|")
    for rows in zip(*(run["rows"] for run in runs)):
        out.append(f"| {_size(rows[0])} | " + " | ".join(_ratio(rows, key) for key, _ in ratios) + " |")
    out.append("")
    cols = [("train_ms", "nplstm training"), ("torch_train_ms", "torch training"), ("infer_ms", "nplstm inference"),
            ("torch_infer_ms", "torch inference"), ("gflops", "GFLOP/s")]
    out.append("| (B, T, I, H) | " + " | ".join(name for _, name in cols) + " | checks | peak |")
    out.append("|---" * (len(cols) + 3) + "|")
    for rows in zip(*(run["rows"] for run in runs)):
        cells = [_range([r[key] for r in rows]) for key, _ in cols]
        checks = _range([100 * r["checks_fraction"] for r in rows], lambda v: f"{v:.1f}") + " %"
        peak = _range([r["inference_peak"] for r in rows], lambda v: f"{v:.2f}")
        out.append(f"| {_size(rows[0])} | " + " | ".join(cells) + f" | {checks} | {peak} |")
    floors = [("floor_ratio", "GEMMs / torch, training"), ("numpy_floor_ratio", "NumPy floor / torch, training"),
              ("over_numpy_floor", "nplstm / NumPy floor, training"), ("infer_floor_ratio", "GEMMs / torch, inference"),
              ("infer_numpy_floor_ratio", "NumPy floor / torch, inference"),
              ("infer_numpy_floor_over_ort", "NumPy floor / ORT, inference"),
              ("infer_over_numpy_floor", "nplstm / NumPy floor, inference")]
    if all(key in r for run in runs for r in run["rows"] for key, _ in floors):
        out.append("")
        out.append("| (B, T, I, H) | " + " | ".join(name for _, name in floors) + " |")
        out.append("|---" * (len(floors) + 1) + "|")
        for rows in zip(*(run["rows"] for run in runs)):
            out.append(f"| {_size(rows[0])} | " + " | ".join(_ratio(rows, key) for key, _ in floors) + " |")
    if all(run.get("scaling") for run in runs):
        out.append("")
        out.append("| (B, T, I, H) | nplstm training | torch training | ratio | nplstm inference | torch inference | ratio |")
        out.append("|---" * 7 + "|")
        for rows in zip(*(run["scaling"] for run in runs)):
            cells = []
            for side in ("train", "infer"):      # microseconds per sequence and step: time / (B T)
                ours = [r["ms"][f"{side} None"]["median"] * 1e3 / (r["B"] * r["T"]) for r in rows]
                theirs = [r["ms"][f"torch {side}"]["median"] * 1e3 / (r["B"] * r["T"]) for r in rows]
                cells += [_range(ours), _range(theirs),
                          _range([a / b for a, b in zip(ours, theirs)], lambda v: f"{v:.2f}")]
            out.append(f"| {_size(rows[0])} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tools/bench_tables.py RUN.json [RUN.json ...]")
    print(tables([json.load(open(path)) for path in sys.argv[1:]]))
