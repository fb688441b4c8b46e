"""`nplstm odyssey`: Greff et al.'s (2017) comparison of LSTM variants, at the scale of this library's tasks.

Protocol, for every task of the suite and every model (Greff's nine LSTMs, the GRU, the plain RNN):
1. search: train once per learning rate of a log-spaced grid (and per search seed), on a validation set
   (the task's test set drawn from another seed; for the series task, its validation split);
2. choose the learning rate with the best mean validation metric (a diverged run counts as the worst);
3. test: train `seeds` fresh seeds at that rate and measure the test metric;
4. Welch's t-test of each model's test metrics against the vanilla LSTM's (report.py writes the verdicts).
Every model of a task gets the same updates, batch size and hidden size H; Greff et al. searched H too.
A combination the trainer refuses (the GRU and the RNN on a stream) is recorded as n/a with the reason.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .._checks import check_int
from .baselines import CELLS, count_params, make_model

SUNSPOTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "sunspots.csv"
SEARCH_SEED = 1000       # search runs use seeds 1000, 1001, ...; test runs 0, 1, ...: no run is reused


@dataclass(frozen=True)
class TaskSpec:
    """One task of the suite and the fixed budget every model gets on it."""
    name: str                    # a TASKS name, and the --tasks name
    label: str                   # the table's heading
    options: dict                # make_task options of the test runs
    metric: str                  # the compared metric, a key of the task's evaluate()
    higher_is_better: bool
    hidden: int                  # H
    batch: int                   # sequences per update
    steps: int                   # updates, all of them: no early stop, so every run has the same budget
    validation: dict = field(default_factory=dict)   # options replaced for the search runs (another test seed)
    held_out: bool = False       # series: the test metric is the held-out split's; search uses the validation split
    success: str = "the task's criterion"           # what the success column counts
    evals: int = 4               # test-set evaluations per run (the criterion is checked at each)

    @property
    def eval_every(self) -> int:
        return max(1, self.steps // self.evals)


SUITE = (
    TaskSpec("temporal_order", "Temporal order 6a (Hochreiter & Schmidhuber 1997, Exp. 6a)",
             {"experiment": "6a", "test_size": 1000}, "loss", False, hidden=32, batch=16, steps=1000,
             validation={"seed": 1}, success="fewer than 1 wrong in 2000 test sequences"),
    TaskSpec("adding", "Adding, T = 100 (1997, Exp. 4)", {"T": 100, "test_size": 1000}, "mse", False,
             hidden=32, batch=16, steps=1000, validation={"seed": 1},
             success="fewer than 1 in 2000 test sums off by 0.04 or more"),
    TaskSpec("continual_reber", "Continual embedded Reber, no resets (Gers, Schmidhuber & Cummins 2000)",
             {"T": 100, "test_steps": 5000}, "accuracy_tp", True, hidden=32, batch=16, steps=400,
             validation={"seed": 1}, success="accuracy on the closing T/P >= 0.95"),
    TaskSpec("charlm", "Character model, Python's documentation topics", {"T": 50, "max_test_windows": 128},
             "bits_per_char", False, hidden=64, batch=16, steps=600,
             success="held-out loss below the bigram model's"),
    TaskSpec("series", "Sunspots, yearly (tests/data/sunspots.csv), the next value from 24", {"window": 24},
             "mse", False, hidden=16, batch=16, steps=400, held_out=True,
             success="test MSE below persistence's"),
)
QUICK_STEPS = {"temporal_order": 150, "adding": 150, "continual_reber": 100, "charlm": 100, "series": 150}
QUICK_OPTIONS = {"temporal_order": {"test_size": 500}, "adding": {"test_size": 500},
                 "continual_reber": {"test_steps": 2000}, "charlm": {"max_test_windows": 64}}


@dataclass(frozen=True)
class Grid:
    """Everything an odyssey runs: tasks x models x (search: lrs x search_seeds; test: seeds at the chosen lr)."""
    tasks: tuple                 # TaskSpecs
    cells: tuple = CELLS         # the models: variants.VARIANTS names, "GRU", "RNN"; "vanilla" is the reference
    lrs: tuple = (1e-3, 3e-3, 1e-2, 3e-2)    # Adam's learning rates, log-spaced
    search_seeds: int = 1
    seeds: int = 5               # test runs per model at its chosen learning rate
    optimizer: str = "adam"
    clip: float = 1.0            # max global gradient norm
    alpha: float = 0.05
    quick: bool = False

    def as_json(self) -> dict:
        return {**dataclasses.asdict(self), "tasks": [dataclasses.asdict(t) for t in self.tasks]}


def make_grid(*, quick: bool = False, tasks=None, cells=None, seeds: int | None = None, steps: int | None = None,
              lrs=None, search_seeds: int | None = None, series_path=None) -> Grid:
    """The default grid, or the reduced one (quick: a sixth to a quarter of the updates, 3 learning rates,
    3 seeds, 2 evaluations per run, smaller test sets), with any of its parts replaced.
    ValueError names an unknown task or model, a bad count, or a series file that cannot be read."""
    from ..tasks import make_task
    known = {t.name: t for t in SUITE}
    tasks = list(tasks or known)
    cells = list(cells or CELLS)
    for what, given, allowed in (("task", tasks, known), ("model", cells, CELLS)):
        unknown = [g for g in given if g not in allowed]
        if unknown:
            raise ValueError(f"unknown {what} {unknown[0]!r}; expected some of: {', '.join(allowed)}")
        if len(set(given)) < len(given):
            raise ValueError(f"{what}s: each may be named once, got {' '.join(given)}")
    if "vanilla" not in cells:
        cells.insert(0, "vanilla")           # the reference every test is against
    specs = []
    for name in tasks:
        spec = known[name]
        if quick:
            spec = dataclasses.replace(spec, steps=QUICK_STEPS[name], evals=2,
                                       options={**spec.options, **QUICK_OPTIONS.get(name, {})})
        if steps is not None:
            spec = dataclasses.replace(spec, steps=check_int("steps", steps))
        if name == "series":
            spec = dataclasses.replace(spec, options={**spec.options, "path": str(series_path or SUNSPOTS)})
            make_task(name, **spec.options)  # a missing or malformed file: its one-line error now, not in a worker
        specs.append(spec)
    lrs = tuple(lrs or ((3e-3, 1e-2, 3e-2) if quick else Grid.lrs))
    if not all(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0 for lr in lrs):
        raise ValueError(f"lrs: expected finite learning rates > 0, got {list(lrs)}")
    seeds = check_int("seeds (Welch's test needs 2 per model at least)",
                      seeds if seeds is not None else (3 if quick else Grid.seeds), 2)
    search_seeds = check_int("search_seeds", search_seeds if search_seeds is not None else 1)
    return Grid(tuple(specs), tuple(cells), tuple(sorted(set(lrs))), search_seeds, seeds, quick=quick)


class Job(NamedTuple):
    """One training run."""
    task: str
    cell: str
    lr: float
    seed: int                    # the model's init and the data order
    stage: str                   # "search" or "test"


def search_jobs(grid: Grid) -> list[Job]:
    return [Job(t.name, c, lr, SEARCH_SEED + k, "search") for t in grid.tasks for c in grid.cells
            for lr in grid.lrs for k in range(grid.search_seeds)]


def choose_lrs(grid: Grid, runs: list[dict]) -> dict:
    """{(task, cell): {"lr": best, "scores": {lr: mean validation metric}} or {"na": reason}} from the search runs.

    The best learning rate has the best mean validation metric over the search seeds, in the metric's
    direction; a diverged run scores the worst possible (so a rate that diverges on any seed is chosen
    only when every rate does), and ties go to the smaller rate.
    """
    chosen = {}
    for t in grid.tasks:
        for c in grid.cells:
            mine = [r for r in runs if r["stage"] == "search" and r["task"] == t.name and r["cell"] == c]
            refused = [r for r in mine if r.get("na")]
            if refused:
                chosen[(t.name, c)] = {"na": refused[0]["na"]}
                continue
            worst = -math.inf if t.higher_is_better else math.inf
            scores = {}
            for lr in grid.lrs:
                values = [r["validation"] for r in mine if r["lr"] == lr]
                scores[lr] = worst if any(not math.isfinite(v) for v in values) else sum(values) / len(values)
            pick = max if t.higher_is_better else min
            best = pick(grid.lrs, key=lambda lr: (scores[lr], -lr) if t.higher_is_better else (scores[lr], lr))
            chosen[(t.name, c)] = {"lr": best, "scores": scores}
    return chosen


def measure_jobs(grid: Grid, chosen: dict) -> list[Job]:
    return [Job(t.name, c, chosen[(t.name, c)]["lr"], k, "test") for t in grid.tasks for c in grid.cells
            if "lr" in chosen[(t.name, c)] for k in range(grid.seeds)]


_TASKS: dict = {}                            # per process: tasks that keep no state between runs


def _task(spec: TaskSpec, search: bool):
    from ..tasks import make_task
    options = {**spec.options, **(spec.validation if search else {})}
    key = (spec.name, repr(sorted(options.items())))
    if key in _TASKS:
        return _TASKS[key]
    task = make_task(spec.name, **options)
    if not getattr(task, "stateful", False):  # a stream's position belongs to one run: build it afresh
        _TASKS[key] = task
    return task


def run_job(spec: TaskSpec, job: Job, grid: Grid) -> dict:
    """Train one model once; returns its record (JSON-serializable). A refusal (ValueError) is recorded as
    "na" with its reason, any other failure as "na" = "failed: ...", a run that produced NaN or Inf as
    "diverged" (its metrics NaN); nothing is raised, so one run cannot end an hour of others."""
    from ..anomaly import NonFiniteError
    from ..training.trainer import TrainConfig, train

    record = {**job._asdict(), "na": "", "diverged": "", "metric": math.nan, "validation": math.nan,
              "solved": False, "steps": 0, "params": None, "seconds": 0.0}
    start = time.perf_counter()
    try:
        task = _task(spec, job.stage == "search")
        model = make_model(task, job.cell, spec.hidden, seed=job.seed)
        record["params"] = count_params(model)
        cfg = TrainConfig(steps=spec.steps, batch_size=spec.batch, lr=job.lr, optimizer=grid.optimizer,
                          clip=grid.clip, eval_every=spec.eval_every, early_stop=False, seed=job.seed,
                          progress=False, log_every=0)
        history = train(model, task, cfg)
    except NonFiniteError as err:
        record.update(diverged=str(err).splitlines()[0], seconds=time.perf_counter() - start)
        return record
    except ValueError as err:                # the trainer (or the model factory) refuses this combination
        record.update(na=str(err).splitlines()[0], seconds=time.perf_counter() - start)
        return record
    except Exception as err:                 # a failure of one run is shown in its row; the other runs go on
        record.update(na=f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                      seconds=time.perf_counter() - start)
        return record
    last = history.records[-1]["test"]
    record.update(steps=history.steps_done, validation=last.get(spec.metric, math.nan))
    if job.stage == "test":
        if spec.held_out:                    # the series' held-out split, in the data's own units
            measured = task.test_metrics(model)
            record["solved"] = measured["mse"] < task.baselines()["persistence"]["mse"]
        else:
            measured, record["solved"] = last, bool(history.solved)
        record["metric"] = float(measured.get(spec.metric, math.nan))
    record["seconds"] = time.perf_counter() - start
    return record


def _execute(grid: Grid, jobs: list[Job], workers: int, print_fn, keep) -> list[dict]:
    specs = {t.name: t for t in grid.tasks}
    results = []
    if workers == 1 or len(jobs) <= 1:
        for j in jobs:
            results.append(run_job(specs[j.task], j, grid))
            _progress(results[-1], print_fn, keep)
        return results
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"   # inherited: one core per worker
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_job, specs[j.task], j, grid) for j in jobs]
        for f in futures:
            results.append(f.result())
            _progress(results[-1], print_fn, keep)
    return results


def _progress(r: dict, print_fn, keep) -> None:
    if keep is not None:
        keep(r)
    what = f"n/a ({r['na']})" if r["na"] else "diverged" if r["diverged"] else (
        f"validation {r['validation']:.4g}" if r["stage"] == "search" else f"test {r['metric']:.4g}")
    print_fn(f"  {r['stage']:<6} {r['task']} {r['cell']} lr {r['lr']:g} seed {r['seed']}: {what} ({r['seconds']:.1f} s)")


def run_odyssey(grid: Grid, *, jobs: int = 1, print_fn=print, keep=None) -> dict:
    """Search, choose, test. Returns {"grid", "runs" (every run's record), "chosen", "seconds", "jobs"}.
    keep: called with each run's record as it finishes (the command appends it to runs.jsonl)."""
    jobs = check_int("jobs", jobs)
    start = time.perf_counter()
    search = search_jobs(grid)
    print_fn(f"odyssey: {len(grid.tasks)} tasks x {len(grid.cells)} models; search {len(search)} runs "
             f"({len(grid.lrs)} learning rates x {grid.search_seeds} seed), then {grid.seeds} seeds each, "
             f"on {jobs} process(es)")
    runs = _execute(grid, search, jobs, print_fn, keep)
    chosen = choose_lrs(grid, runs)
    runs += _execute(grid, measure_jobs(grid, chosen), jobs, print_fn, keep)
    return {"grid": grid.as_json(), "runs": runs, "jobs": jobs, "seconds": time.perf_counter() - start,
            "chosen": [{"task": t, "cell": c, **{k: v for k, v in ch.items() if k != "scores"},
                        "scores": {repr(lr): s for lr, s in ch.get("scores", {}).items()}}
                       for (t, c), ch in chosen.items()]}
