"""`nplstm odyssey`: every LSTM variant (with the GRU and a plain RNN) on a suite of tasks, each with its own
learning-rate search, judged against the vanilla LSTM by Welch's t-test (nplstm/science/)."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from .options import MAX_SEEDS, integer, number


def add_odyssey_parser(sub) -> None:
    from ..science.baselines import CELLS
    from ..science.odyssey import SUITE
    p = sub.add_parser("odyssey", help="Greff et al.'s (2017) LSTM variants against vanilla, with Welch's t-test",
                       description="Train every model (Greff's LSTM variants, the GRU, a plain RNN) on a suite of "
                                   "tasks: a learning-rate search per model on a validation set, then several seeds "
                                   "at the chosen rate, each tested against the vanilla LSTM (Welch's t-test). "
                                   "Writes odyssey.md, runs.json and odyssey.png (with matplotlib) into --out.")
    p.add_argument("--quick", action="store_true",
                   help="the reduced grid: a sixth to a quarter of the updates, 3 learning rates, 3 seeds, smaller test "
                        "sets (minutes)")
    p.add_argument("--seeds", type=integer(2, MAX_SEEDS), help="test seeds per model (default 5; quick 3)")
    p.add_argument("--search-seeds", type=integer(1, MAX_SEEDS), help="seeds per learning rate in the search (default 1)")
    p.add_argument("--lrs", type=number(above=0), nargs="+", metavar="LR",
                   help="the learning rates searched (default 0.001 0.003 0.01 0.03; quick 0.003 0.01 0.03)")
    p.add_argument("--steps", type=integer(1), help="updates per run on every task (default: each task's budget)")
    p.add_argument("--tasks", nargs="+", choices=[t.name for t in SUITE], metavar="TASK",
                   help="some of: " + ", ".join(t.name for t in SUITE) + " (default all)")
    p.add_argument("--variants", nargs="+", choices=list(CELLS), metavar="MODEL",
                   help="some of: " + ", ".join(CELLS) + " (default all; vanilla is always included)")
    p.add_argument("--series", metavar="CSV", help="the series task's file (default tests/data/sunspots.csv)")
    p.add_argument("--jobs", type=integer(1, os.cpu_count() or 1), default=1,
                   help="parallel processes, at most the cores here (default 1)")
    p.add_argument("--out", metavar="DIR", default="odyssey",
                   help="a new directory for odyssey.md, runs.json, odyssey.png (default ./odyssey); never overwritten")
    p.set_defaults(run=_odyssey)


def _odyssey(args) -> None:
    from ..science.odyssey import make_grid, run_odyssey
    from ..science.report import plain, write
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out: {out} already exists; name a new directory (an odyssey never overwrites one)")
    grid = make_grid(quick=args.quick, tasks=args.tasks, cells=args.variants, seeds=args.seeds, steps=args.steps,
                     lrs=args.lrs, search_seeds=args.search_seeds, series_path=args.series)
    out.mkdir(parents=True)                 # claimed before the hours of training, so no other run takes it
    with open(out / "runs.jsonl", "a", encoding="utf-8") as log:   # each run as it ends: an interruption keeps them
        results = run_odyssey(grid, jobs=args.jobs, keep=lambda r: (log.write(json.dumps(plain(r)) + "\n"), log.flush()))
    results["command"] = _command(args)
    for path in write(results, out):
        print(path)


def _command(args) -> str:
    """The command line that reproduces this grid, written out from the parsed options."""
    words = ["nplstm", "odyssey"] + (["--quick"] if args.quick else [])
    for flag, value in (("--seeds", args.seeds), ("--search-seeds", args.search_seeds), ("--steps", args.steps),
                        ("--lrs", args.lrs), ("--tasks", args.tasks), ("--variants", args.variants),
                        ("--series", args.series), ("--jobs", args.jobs), ("--out", args.out)):
        if value is not None:
            words += [flag, *(f"{v:g}" if isinstance(v, float) else str(v) for v in (value if isinstance(value, list) else [value]))]
    return " ".join(shlex.quote(w) for w in words)
