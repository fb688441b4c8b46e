"""`nplstm reproduce`: the papers' experiments over several seeds, beside the papers' numbers.

Each experiment is a task with its recipe (nplstm/training/recipes.py) plus the ablation it shows;
every seed trains a fresh model until the paper's criterion is met or the recipe's update
budget runs out. The suite also runs the peepholes × learning rule 2 × 2 on the Gers 2002 timing
tasks (nplstm/training/peepholes.py). All runs share one pool of processes, one BLAS thread each.
"""
from __future__ import annotations

import multiprocessing
import os
import shlex
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import peepholes


@dataclass(frozen=True)
class Experiment:
    label: str                   # row of the table
    task: str
    error: str                   # the test metric shown as "test error"
    paper: dict                  # the paper's success rate, sequences, test error, as printed
    model: dict = field(default_factory=dict)   # overrides of the recipe
    train: dict = field(default_factory=dict)
    task_options: dict = field(default_factory=dict)


EXPERIMENTS = [
    Experiment("Embedded Reber (1997 Exp. 1)", "reber", "wrong_test",
               {"success": "100%", "sequences": "8,440", "error": "0", "source": "HS97 Table 1, best LSTM"}),
    Experiment("Adding, T = 100 (1997 Exp. 4)", "adding", "frac_wrong",
               {"success": "100%", "sequences": "74,000", "error": "1 of 2560", "source": "HS97 Table 7"}),
    Experiment("Temporal order 6a (1997 Exp. 6a)", "temporal_order", "frac_wrong",
               {"success": "100%", "sequences": "31,390", "error": "0 of 2560", "source": "HS97 Table 9"}),
    Experiment("Noise-free lag, p = 100 (1997 Exp. 2a)", "noise_free_lag", "loss",
               {"success": "100%", "sequences": "5,040", "error": "0", "source": "HS97 Table 3"}),
    Experiment("Continual Reber, forget gate (Gers 2000)", "continual_reber", "accuracy_tp",
               {"success": "learns (abstract)", "sequences": "-", "error": "-", "source": "GSC00"}),
    Experiment("Continual Reber, no forget gate (Gers 2000)", "continual_reber", "accuracy_tp",
               {"success": "breaks down (abstract)", "sequences": "-", "error": "-", "source": "GSC00"},
               model={"forget_gate": False}),
    Experiment("Spike delays, peepholes (Gers 2002)", "timing", "mse",
               {"success": "peepholes needed for 49 vs 50 steps (abstract)", "sequences": "-", "error": "-",
                "source": "GSS02"},
               model={"peephole": "diagonal"}),
    Experiment("Spike delays, no peepholes (Gers 2002)", "timing", "mse",
               {"success": "-", "sequences": "-", "error": "-", "source": "GSS02"},
               model={"peephole": None}),
]

SOURCES = {
    "HS97": "Hochreiter & Schmidhuber (1997), Long Short-Term Memory, Neural Computation 9(8)",
    "GSC00": "Gers, Schmidhuber & Cummins (2000), Learning to Forget, Neural Computation 12(10)",
    "GSS02": "Gers, Schraudolph & Schmidhuber (2002), Learning Precise Timing with LSTM Recurrent Networks, JMLR 3",
}


def run_one(exp: Experiment, seed: int, quick: bool) -> dict:
    """Train one seed of one experiment; returns its row of raw results."""
    from ..anomaly import NonFiniteError
    from ..tasks import make_task
    from .recipes import RECIPES
    from .trainer import TrainConfig, build_model, train

    recipe = RECIPES[exp.task]
    task = make_task(exp.task, **{**recipe.task, **exp.task_options})
    train_cfg = {**recipe.train, **exp.train}
    if quick:
        train_cfg.update(steps=min(train_cfg["steps"], 20), eval_every=10)
    model = build_model(task, seed=seed, **{**recipe.model, **exp.model})
    start = time.perf_counter()
    try:
        history = train(model, task, TrainConfig(**train_cfg, seed=seed, progress=False, log_every=0))
    except NonFiniteError as err:            # a diverged seed is a failure, never a result
        return {"label": exp.label, "seed": seed, "solved": False, "sequences": None, "error": float("nan"),
                "seconds": time.perf_counter() - start, "steps": None, "max_c": float("nan"), "diverged": str(err)}
    seconds = time.perf_counter() - start
    test = history.records[-1]["test"]
    probe = task.test_set()                  # how large the cell state grew on (part of) the test data
    model.lstm.forward(probe.x[:256], lengths=None if probe.lengths is None else probe.lengths[:256])
    max_c = float("nan") if model.is_gru else max(float(np.abs(v["c"]).max()) for v in model.lstm.internals().values())
    return {"label": exp.label, "seed": seed, "solved": history.solved and bool(np.isfinite(test["loss"])),
            "sequences": history.sequences_to_solve, "error": test.get(exp.error, float("nan")), "seconds": seconds,
            "steps": history.steps_done, "max_c": max_c}


TIMING_2X2 = "timing2x2"       # the --only name of the default 2 × 2 tables; each alone goes by its key in SETUPS


def only_names() -> dict[str, list[str]]:
    """Every name --only takes, by kind: experiment tasks, timing tables, experiment labels."""
    return {"task": list(dict.fromkeys(e.task for e in EXPERIMENTS)),
            "timing table": [*peepholes.SETUPS, TIMING_2X2], "label": [e.label for e in EXPERIMENTS]}


def check_name(name: str) -> str:
    """name, if --only takes it; else a ValueError that lists every name it takes."""
    kinds = only_names()
    if not any(name in names for names in kinds.values()):
        listed = "; ".join(f"{kind}s: " + ", ".join(map(repr, names)) for kind, names in kinds.items())
        raise ValueError(f"expected the name of an experiment ({listed}), got {name!r}")
    return name


def select(only=None) -> tuple[list[Experiment], list[str]]:
    """The experiments and the timing tables (keys of peepholes.SETUPS) that `only` names; None: all."""
    if not only:
        return list(EXPERIMENTS), list(peepholes.DEFAULT)
    for name in only:
        try:
            check_name(name)
        except ValueError as err:
            raise ValueError(f"--only: {err}") from None
    return ([e for e in EXPERIMENTS if e.task in only or e.label in only],
            [k for k in peepholes.SETUPS if k in only or (TIMING_2X2 in only and k in peepholes.DEFAULT)])


class Suite(NamedTuple):
    rows: list                   # one dict per (experiment, seed), as run_one returns it
    timing: list                 # one dict per (table, peephole, rule, seed), as peepholes.run_one returns it


def run_suite(seeds: int = 5, quick: bool = False, only=None, out: str | None = "results.md", jobs=None,
              print_fn=print, budget: int | None = None) -> Suite:
    """Run every experiment and the timing 2 × 2 (or those `only` names, see select) over `seeds` seeds.
    budget: training sequences per seed of the 2 × 2 (None: each setup's). Prints a line per run and the
    tables; writes them to `out` (Markdown), keeping the notes below NOTES_MARKER. -> Suite(rows, timing)."""
    chosen, tables = select(only)
    jobs = jobs or os.cpu_count() or 1
    cells = [(key, peephole, rule) for key in tables for peephole in peepholes.PEEPHOLES for rule in peepholes.RULES]
    what = " and ".join(([f"{len(chosen)} experiments"] if chosen else []) +
                        ([f"{len(cells)} timing cells"] if cells else []))
    print_fn(f"{what} x {seeds} seeds on {jobs} processes" + (" (quick)" if quick else ""))
    os.environ["OPENBLAS_NUM_THREADS"] = "1"     # inherited by the workers: one core each
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        # both kinds queued before any result is awaited, so that neither waits for the other to finish
        main = [pool.submit(run_one, e, s, quick) for e in chosen for s in range(seeds)]
        timed = [pool.submit(peepholes.run_one, *c, s, budget, quick) for c in cells for s in range(seeds)]
        results, timing = [], []
        for f in main:
            r = f.result()
            results.append(r)
            outcome = "diverged (NaN or Inf)" if r.get("diverged") else "solved" if r["solved"] else "not solved"
            print_fn(f"  {r['label']}, seed {r['seed']}: {outcome} ({r['sequences'] or '-'} sequences, "
                     f"{r['seconds']:.0f} s)")
        for f in timed:
            timing.append(f.result())
            print_fn(f"  {peepholes.describe(timing[-1])}")
    parts = ([markdown_table(chosen, results, seeds)] if chosen else []) + \
        ([timing_section(timing, tables)] if tables else [])
    text = "\n".join(parts)
    print_fn(text)
    if out:
        notes = _kept_notes(out)
        command = " ".join(["nplstm reproduce", f"--seeds {seeds}", *(["--quick"] if quick else []),
                            *(["--only", *map(shlex.quote, only)] if only else [])])
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(f"# Reproduced results\n\nMeasured by `{command}` in {time.perf_counter() - start:.0f} s "
                     f"({jobs} processes, one BLAS thread each).\n\n{text}\n{notes}")
        print_fn(f"wrote {out}")
    return Suite(results, timing)


def timing_section(rows: list, tables) -> str:
    """The 2 × 2 tables of `tables` (keys of peepholes.SETUPS) under their heading, as results.md shows them."""
    return ("## Do peepholes matter? The 2 × 2 (Gers 2002 timing tasks × learning rule)\n\n"
            "Each seed trains a fresh network for at most the budget in its table's title; the tasks' "
            "settings are those of peepholes.SETUPS, explained in the notes below (\"Do peepholes matter?\").\n\n"
            + peepholes.render(rows, tables))


NOTES_MARKER = "<!-- notes: everything below this line is kept when nplstm reproduce rewrites the file -->"


def _kept_notes(path) -> str:
    """The hand-written part of an existing results file (from NOTES_MARKER on), or ''."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return ""
    at = text.find(NOTES_MARKER)
    return "" if at < 0 else "\n" + text[at:]


def markdown_table(experiments, results, seeds) -> str:
    head = ("| experiment | solved (ours) | paper | training sequences, median [range] (ours) | paper "
            "| test error, median (ours) | paper | max abs(c), median | wall time per seed, median |\n"
            "|---|---|---|---|---|---|---|---|---|")
    rows = []
    for e in experiments:
        rs = [r for r in results if r["label"] == e.label]
        solved = [r["sequences"] for r in rs if r["solved"]]
        seqs = f"{statistics.median(solved):,.0f} [{min(solved):,}–{max(solved):,}]" if solved else "-"
        err = statistics.median(r["error"] for r in rs)
        diverged = sum(bool(r.get("diverged")) for r in rs)
        rows.append(f"| {e.label} | {len(solved)}/{len(rs)}{f' ({diverged} diverged)' if diverged else ''} "
                    f"| {e.paper['success']} | {seqs} | {e.paper['sequences']} "
                    f"| {e.error} {err:.4g} | {e.paper['error']} | {statistics.median(r['max_c'] for r in rs):.3g} "
                f"| {statistics.median(r['seconds'] for r in rs):.0f} s |")
    notes = "\n".join(f"- {k}: {v}" for k, v in SOURCES.items())
    return "\n".join([head, *rows]) + f"\n\nSources of the papers' numbers:\n{notes}\n"
