"""What an odyssey's runs say: a table per task (Welch's test of every model against the vanilla LSTM), the
learning rate's share of the search's variance, Greff et al.'s findings beside ours, and the box plots."""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..variants import VARIANTS
from .stats import VERDICTS, mean_var, verdict, welch

HURTS, SAME, HELPS = VERDICTS
GREFF = tuple(v for v in VARIANTS if v != "vanilla")   # the eight variants of Greff et al. (2017)


def summarize(results: dict) -> dict:
    """{task: {cell: row}} with row: lr, params, n, values (finite test metrics), diverged, solved, mean, sd,
    p and verdict against vanilla ("reference" for vanilla, "inconclusive: ..." short of data), or na."""
    grid, runs = results["grid"], results["runs"]
    chosen = {(c["task"], c["cell"]): c for c in results["chosen"]}
    table = {}
    for spec in grid["tasks"]:
        rows = {}
        for cell in grid["cells"]:
            pick = chosen.get((spec["name"], cell), {})
            mine = [r for r in runs if r["stage"] == "test" and r["task"] == spec["name"] and r["cell"] == cell]
            if pick.get("na"):
                rows[cell] = {"na": pick["na"]}
                continue
            values = [r["metric"] for r in mine if r["metric"] is not None and math.isfinite(r["metric"])]
            row = {"lr": pick.get("lr"), "params": next((r["params"] for r in mine if r["params"]), None),
                   "n": len(mine), "values": values, "diverged": sum(bool(r["diverged"]) for r in mine),
                   "solved": sum(bool(r["solved"]) for r in mine)}
            if len(values) >= 2:
                row["mean"], var = mean_var(values)
                row["sd"] = math.sqrt(var)
            elif values:
                row["mean"], row["sd"] = values[0], math.nan
            rows[cell] = row
        ref = rows.get("vanilla", {})
        for cell, row in rows.items():
            if "na" in row:
                continue
            if cell == "vanilla":
                row["verdict"] = "reference"
            elif len(row["values"]) < 2 or len(ref.get("values", ())) < 2:
                row["verdict"] = "inconclusive: fewer than 2 finite runs"
            else:
                w = welch(row["values"], ref["values"])
                row["p"], row["t"], row["df"] = w.p, w.t, w.df
                row["verdict"] = verdict(w.p, w.mean_a, w.mean_b, spec["higher_is_better"], grid["alpha"])
        table[spec["name"]] = rows
    return table


def lr_importance(results: dict) -> dict:
    """{task: {"lr": share, "variant": share}}: how much of the variance of the search's validation metric,
    over Greff's LSTMs x the learning rates, the learning rate's main effect explains, and the variant's
    (two-way analysis of variance without replication, on the means over search seeds). A diverged run
    counts as the task's worst finite value. Tasks with fewer than 2 variants or 2 rates are left out."""
    grid, shares = results["grid"], {}
    lrs = grid["lrs"]
    for spec in grid["tasks"]:
        cells = [c for c in grid["cells"] if c in VARIANTS]
        means = {}
        for c in cells:
            for lr in lrs:
                vals = [r["validation"] for r in results["runs"] if r["stage"] == "search" and r["task"] == spec["name"]
                        and r["cell"] == c and r["lr"] == lr and not r["na"]]
                if vals:
                    means[c, lr] = _mean_or_nan(vals)
        cells = [c for c in cells if all((c, lr) in means for lr in lrs)]
        finite = [v for v in means.values() if math.isfinite(v)]
        if len(cells) < 2 or len(lrs) < 2 or not finite:
            continue
        worst = min(finite) if spec["higher_is_better"] else max(finite)
        m = {(c, lr): (means[c, lr] if math.isfinite(means[c, lr]) else worst) for c in cells for lr in lrs}
        grand = sum(m.values()) / len(m)
        total = sum((v - grand) ** 2 for v in m.values())
        by_lr = len(cells) * sum((sum(m[c, lr] for c in cells) / len(cells) - grand) ** 2 for lr in lrs)
        by_cell = len(lrs) * sum((sum(m[c, lr] for lr in lrs) / len(lrs) - grand) ** 2 for c in cells)
        shares[spec["name"]] = {"lr": by_lr / total if total else 0.0, "variant": by_cell / total if total else 0.0}
    return shares


def _mean_or_nan(vals) -> float:
    vals = [math.nan if v is None else v for v in vals]
    return math.nan if any(not math.isfinite(v) for v in vals) else sum(vals) / len(vals)


def findings(table: dict, shares: dict) -> list[tuple[str, str, str]]:
    """Greff et al.'s findings, each with our mark (agree / disagree / inconclusive) and the numbers behind it."""
    tasks = list(table)
    got = {c: {t: table[t][c]["verdict"] for t in tasks if c in table[t] and "na" not in table[t][c]} for c in GREFF}

    def count(cell, what):
        vs = got.get(cell, {})
        return sum(v == what for v in vs.values()), len(vs)

    def where(cell, what):
        return ", ".join(t for t, v in got.get(cell, {}).items() if v == what) or "none"

    out = []
    helps = [f"{c} on {t}" for c in GREFF for t, v in got.get(c, {}).items() if v == HELPS]
    measured = any(got.get(c) for c in GREFF)
    out.append(("No variant significantly improves on the vanilla LSTM",
                "inconclusive" if not measured else "disagree" if helps else "agree",
                "significant improvements: " + (", ".join(helps) or "none")))
    for claim, cells, rule in (
            ("The forget gate and the output activation are the most critical parts: NFG and NOAF hurt on all "
             "three data sets", ("NFG", "NOAF"), "all"),
            ("NIG, NOG and NIAF hurt on two of the three data sets", ("NIG", "NOG", "NIAF"), "most")):
        counts = {c: count(c, HURTS) for c in cells if got.get(c)}
        detail = "; ".join([f"{c} hurts on {k} of {n} ({where(c, HURTS)})" for c, (k, n) in counts.items()]
                           + [f"{c} not measured" for c in cells if c not in counts])
        if len(counts) < len(cells):
            mark = "inconclusive"
        elif all(k == n if rule == "all" else 2 * k >= n for k, n in counts.values()):
            mark = "agree"
        elif all(k == 0 for k, _ in counts.values()):
            mark = "disagree"
        else:
            mark = "inconclusive"
        out.append((claim, mark, detail or "not measured"))
    counts = {c: (len(got[c]) - count(c, SAME)[0], len(got[c])) for c in ("CIFG", "NP") if got.get(c)}
    detail = "; ".join([f"{c} differs significantly on {k} of {n}" for c, (k, n) in counts.items()]
                       + [f"{c} not measured" for c in ("CIFG", "NP") if c not in counts])
    mark = ("inconclusive" if len(counts) < 2 else "agree" if all(k == 0 for k, _ in counts.values())
            else "disagree" if any(2 * k >= n for k, n in counts.values()) else "inconclusive")
    out.append(("CIFG (coupled gates) and NP (no peepholes) make no significant difference", mark, detail or "not measured"))
    fgr = [(table[t]["FGR"], table[t].get("vanilla", {})) for t in tasks if "FGR" in table[t] and "na" not in table[t]["FGR"]]
    if fgr:
        k, n = count("FGR", HELPS)
        more = fgr[0][0].get("params") and fgr[0][1].get("params") and fgr[0][0]["params"] > fgr[0][1]["params"]
        params = f"{fgr[0][0]['params']:,} parameters against vanilla's {fgr[0][1]['params']:,}" if more else ""
        out.append(("Full gate recurrence (FGR) adds parameters for no gain", "disagree" if k else "agree" if more
                    else "inconclusive", f"{params}; helps on {k} of {n}".lstrip("; ")))
    else:
        out.append(("Full gate recurrence (FGR) adds parameters for no gain", "inconclusive", "not measured"))
    lr_first = [t for t, s in shares.items() if s["lr"] > s["variant"]]
    detail = "; ".join(f"{t}: learning rate {s['lr']:.0%}, variant {s['variant']:.0%}" for t, s in shares.items())
    mark = ("inconclusive" if not shares or 2 * len(lr_first) == len(shares)
            else "agree" if 2 * len(lr_first) > len(shares) else "disagree")
    out.append(("The learning rate is by far the most important hyperparameter", mark,
                (detail + " of the search's variance") if detail else "not measured"))
    return out


def _fmt(x, spec="{:.4g}") -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else spec.format(x)


def task_table(spec: dict, rows: dict) -> str:
    direction = "higher is better" if spec["higher_is_better"] else "lower is better"
    head = (f"| model | parameters | learning rate | success | {spec['metric']} mean ± sd (n) | p (Welch, vs vanilla) "
            f"| verdict ({direction}) |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for cell, row in rows.items():
        if "na" in row:
            lines.append(f"| {cell} | – | – | – | – | – | n/a: {row['na']} |")
            continue
        spread = f"{_fmt(row.get('mean'))} ± {_fmt(row.get('sd'), '{:.2g}')} ({len(row['values'])})"
        gone = f", {row['diverged']} diverged" if row["diverged"] else ""
        lines.append(f"| {cell} | {_fmt(row['params'], '{:,}')} | {_fmt(row['lr'], '{:g}')} | {row['solved']}/{row['n']}"
                     f"{gone} | {spread} | {_fmt(row.get('p'), '{:.3g}')} | {row['verdict']} |")
    return "\n".join(lines)


def markdown(results: dict, figure: str | None = None) -> str:
    """The whole report: the grid, a table per task, the learning rate's share, the findings."""
    grid, table = results["grid"], summarize(results)
    shares = lr_importance(results)
    seconds = sum(r["seconds"] for r in results["runs"])
    parts = ["# LSTM variants against the vanilla LSTM (after Greff et al. 2017)", "",
             f"Command: `{results.get('command', 'nplstm odyssey')}`" + (" (the quick grid)" if grid["quick"] else ""),
             f"Models: {', '.join(grid['cells'])}. Learning rates searched ({grid['optimizer']}, gradient norm clipped "
             f"at {grid['clip']:g}): {', '.join(f'{lr:g}' for lr in grid['lrs'])}, {grid['search_seeds']} search seed(s) "
             f"each on a validation set; then {grid['seeds']} test seeds per model at its chosen rate. Welch's t-test "
             f"against vanilla at α = {grid['alpha']:g}.",
             f"{len(results['runs'])} runs, {results['seconds']:.0f} s wall on {results['jobs']} process(es) "
             f"({seconds:.0f} s of training summed over runs).", ""]
    for spec in grid["tasks"]:
        parts += [f"## {spec['label']}", "",
                  f"Budget: {spec['steps']:,} updates of {spec['batch']} sequences for every run, H = {spec['hidden']} "
                  f"for every model. Metric: {spec['metric']} after the last update"
                  + (" on the held-out test split" if spec["held_out"] else " on the test set")
                  + f"; success: {spec['success']}" + ("" if spec["held_out"] else ", at any of the run's "
                  f"{spec['evals']} evaluations") + ".", "", task_table(spec, table[spec["name"]]), ""]
    tests = sum("p" in row for rows in table.values() for row in rows.values())
    parts += [f"{tests} tests at α = {grid['alpha']:g}: were no model different from vanilla, about "
              f"{tests * grid['alpha']:.1f} of them would still come out significant by chance.", ""]
    if shares:
        parts += ["## How much the learning rate matters", "",
                  "Share of the variance of the search's validation metric (Greff's LSTMs x the learning rates) "
                  "explained by each main effect:", "", "| task | learning rate | variant |", "|---|---|---|",
                  *(f"| {t} | {s['lr']:.0%} | {s['variant']:.0%} |" for t, s in shares.items()), ""]
    parts += ["## Greff et al.'s findings beside ours", "", "| Greff et al. (2017) | ours | why |", "|---|---|---|",
              *(f"| {claim} | {mark} | {detail} |" for claim, mark, detail in findings(table, shares)), ""]
    if figure:
        parts += [f"![test metric per model and task]({figure})", ""]
    return "\n".join(parts)


def figure(results: dict, path) -> bool:
    """Box plots of the test metric per model, one panel per task; False if matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    grid, table = results["grid"], summarize(results)
    n = len(grid["tasks"])
    cols = min(n, 3)
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(4.4 * cols, 3.4 * -(-n // cols)), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    colour = {"reference": "0.6", HURTS: "tab:orange", HELPS: "tab:green"}
    for ax, spec in zip(axes.flat, grid["tasks"]):
        rows = {c: r for c, r in table[spec["name"]].items() if r.get("values")}
        boxes = ax.boxplot([r["values"] for r in rows.values()], patch_artist=True, medianprops={"color": "black"})
        for patch, r in zip(boxes["boxes"], rows.values()):
            patch.set_facecolor(colour.get(r["verdict"], "white"))
        ax.set_xticks(range(1, len(rows) + 1), list(rows), rotation=60, fontsize=8)
        ax.set_title(spec["name"], fontsize=10)
        ax.set_ylabel(f"{spec['metric']} ({'higher' if spec['higher_is_better'] else 'lower'} is better)", fontsize=8)
    fig.suptitle("test metric per model (orange: hurts, green: helps vs vanilla, Welch p < 0.05)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plain(x):
    """JSON without NaN or Infinity: non-finite floats become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def write(results: dict, out) -> list[Path]:
    """runs.json (every run, the grid, the choices), odyssey.png (with matplotlib) and odyssey.md into `out`,
    a directory that already exists. Returns the paths written."""
    out = Path(out)
    written = [out / "runs.json"]
    written[0].write_text(json.dumps(plain(results), indent=1), encoding="utf-8")
    picture = out / "odyssey.png"
    if figure(results, picture):
        written.append(picture)
    doc = out / "odyssey.md"
    doc.write_text(markdown(results, picture.name if picture in written else None), encoding="utf-8")
    return written + [doc]
