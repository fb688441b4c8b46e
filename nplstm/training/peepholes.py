"""Do peepholes matter? The timing tasks of Gers, Schraudolph & Schmidhuber (2002) trained with and
without peepholes, by backpropagation through time and by the 1997 truncated rule (nplstm.truncated):
one 2 × 2 table per task of seeds solved and sequences needed.

    rows, table = timing_table(seeds=5, budget=80_000)      # quick=True: a few updates, for tests

`nplstm reproduce` runs the same cells in its process pool (reproduce.run_suite).

Both rules train through `fit` below, which is the trainer's loop (trainer.train) cut to what these runs
use, with the gradient as the one thing that changes: "bptt" is trainer.train_step, "truncated" the
1997 rule. tests/test_peepholes.py holds fit(rule="bptt") to trainer.train, update for update.
docs/results.md ("Do peepholes matter?") gives the settings' provenance and the measured tables.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import NamedTuple

import numpy as np

from ..anomaly import NonFiniteError
from ..lstm import lstm_forward
from ..optim import clip_grad_norm
from ..tasks import make_task
from ..truncated import truncated_backward
from .trainer import LOSSES, TrainConfig, build_model, evaluate, lr_at, make_optimizer, train_step


BUDGET = 80_000                # training sequences per seed: 5,000 updates of 16


@dataclasses.dataclass(frozen=True)
class Setup:
    """One table: a task and the network every cell of it trains."""
    label: str
    task: str                  # a name of nplstm.tasks.TASKS
    task_options: dict         # make_task options
    hidden_size: int = 8       # the paper's network has one cell; with one, nothing learned in our budget
    train: dict = dataclasses.field(default_factory=dict)   # TrainConfig fields
    stream: dict | None = None  # a solved network is tested again with these task options on top (long streams)
    budget: int = BUDGET       # training sequences per seed, unless the caller gives one


SETUPS = {
    "msd": Setup("Measuring spike delays (MSD), gaps of 10 or 11 steps", "timing",
                 {"T": 120, "t_min": 10, "t_max": 11, "test_size": 128}),
    "gts": Setup("Generating timed spikes (GTS), every 10 steps", "timed_spikes",
                 {"T": 60, "period": 10, "test_size": 32}, stream={"T": 10_010, "test_size": 8}),
    # the paper's own distinction; 160 steps hold 3 measured spikes. Not in DEFAULT: its 20 runs of
    # 200,000 sequences (the budget) took 43 minutes on 2 cores (docs/results.md)
    "msd50": Setup("Measuring spike delays (MSD), gaps of 49 or 50 steps (the paper's)", "timing",
                   {"T": 160, "t_min": 49, "t_max": 50, "test_size": 128}, budget=200_000),
}
DEFAULT = ("msd", "gts")       # the tables timing_table and nplstm reproduce run unless others are named
TRAIN = {"batch_size": 16, "lr": 1e-2, "optimizer": "adam", "clip": 1.0, "eval_every": 25}
PEEPHOLES = ("diagonal", None)
RULES = ("bptt", "truncated")


def truncated_train_step(model, batch, loss_fn) -> float:
    """trainer.train_step with the 1997 rule for the LSTM's gradient (the head's is exact); fills model.grads.
    One layer, one direction, sequences of equal length."""
    lstm = model.lstm
    c = lstm.config
    if c.num_layers != 1 or c.bidirectional or batch.lengths is not None:
        raise ValueError("truncated_train_step: expected one layer, one direction and equal lengths")
    P = lstm.params
    p = None if c.peephole is None else (P["l0.p_i"], P["l0.p_f"], P["l0.p_o"])
    B, T, _ = batch.x.shape
    zeros = np.zeros((B, c.hidden_size), lstm.dtype)
    h, _, cache = lstm_forward(np.ascontiguousarray(batch.x.transpose(1, 0, 2)), zeros, zeros, P["l0.W"], P["l0.R"],
                               P["l0.b"], p, batch_sizes=(B,) * T, variant=c.variant)
    out = model.head.forward(np.ascontiguousarray(h[1:].transpose(1, 0, 2)))   # (B, T, O)
    loss, dout = loss_fn(out, batch.y, batch.mask)
    dh = model.head.backward(dout)                                              # (B, T, H)
    grads = truncated_backward(np.ascontiguousarray(dh.transpose(1, 0, 2)), cache, p)
    lstm.grads = {"l0." + k: v for k, v in grads.items()}
    return loss


def fit(model, task, cfg: TrainConfig, rule: str = "bptt") -> dict:
    """Train until the task is solved at an evaluation or cfg.steps updates are spent.

    As trainer.train: batches drawn from default_rng(cfg.seed), the lr schedule, clipping, the optimizer,
    evaluate() every cfg.eval_every updates and after the last. Returns solved, sequences (to the first
    solved evaluation, else None), steps, seconds and the last test metrics.
    """
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    if cfg.schedule_steps is None:
        cfg = dataclasses.replace(cfg, schedule_steps=cfg.steps)
    loss_fn, test = LOSSES[task.loss], task.test_set()
    opt, rng = make_optimizer(cfg), np.random.default_rng(cfg.seed)
    start, metrics = time.perf_counter(), {}
    for step in range(1, cfg.steps + 1):
        opt.lr = lr_at(cfg, step)
        batch = task.batch(rng, cfg.batch_size)
        if rule == "bptt":
            train_step(model, batch, loss_fn)
        else:
            truncated_train_step(model, batch, loss_fn)
        grads = model.grads
        norm = clip_grad_norm(grads, cfg.clip or math.inf)
        if not math.isfinite(norm):
            return {"solved": False, "sequences": None, "steps": step, "seconds": time.perf_counter() - start,
                    "test": metrics, "diverged": True}
        opt.step(model.params, grads)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate(model, task, test, cfg.eval_batch)
            if metrics["solved"]:
                return {"solved": True, "sequences": step * cfg.batch_size, "steps": step,
                        "seconds": time.perf_counter() - start, "test": metrics}
    return {"solved": False, "sequences": None, "steps": cfg.steps, "seconds": time.perf_counter() - start,
            "test": metrics}


def run_one(key: str, peephole: str | None, rule: str, seed: int, budget: int | None = None,
            quick: bool = False) -> dict:
    """One seed of one cell of one table: a fresh model (build_model's init, from `seed`), up to `budget`
    sequences (None: the setup's)."""
    setup = SETUPS[key]
    budget = setup.budget if budget is None else budget
    task = make_task(setup.task, **setup.task_options)
    settings = {**TRAIN, **setup.train}
    steps = max(1, budget // settings["batch_size"])
    if quick:
        steps, settings["eval_every"] = min(steps, 4), 2
    model = build_model(task, setup.hidden_size, peephole=peephole, seed=seed)
    cfg = TrainConfig(**settings, steps=steps, seed=seed, progress=False, log_every=0)
    try:
        result = fit(model, task, cfg, rule)
    except NonFiniteError as err:            # a diverged seed is a failure, never a result
        result = {"solved": False, "sequences": None, "steps": None, "seconds": float("nan"), "test": {},
                  "diverged": str(err)}
    stream = None                            # the paper's test: 1000 successive spikes right
    if result["solved"] and setup.stream is not None:
        long = make_task(setup.task, **{**setup.task_options, **setup.stream})
        try:
            stream = bool(evaluate(model, long, long.test_set(), cfg.eval_batch)["solved"])
        except NonFiniteError:               # the output blew up somewhere along the stream
            stream = False
    return {"task": key, "peephole": peephole, "rule": rule, "seed": seed, "budget": steps * settings["batch_size"],
            **{k: result[k] for k in ("solved", "sequences", "steps", "seconds")}, "stream": stream,
            "test_mse": result["test"].get("mse", float("nan")), "diverged": bool(result.get("diverged"))}


class TimingTable(NamedTuple):
    rows: list                   # one dict per (task, peephole, rule, seed), as run_one returns it
    markdown: str                # one 2 × 2 table per task


def timing_table(seeds: int = 5, budget: int | None = None, quick: bool = False, tasks=DEFAULT,
                 print_fn=None) -> TimingTable:
    """Every task of `tasks` (keys of SETUPS) × peepholes {diagonal, none} × rules {bptt, truncated} × seeds,
    one after another on this process. budget: training sequences per seed (None: each setup's); print_fn: called with a line
    per run (e.g. print). -> TimingTable(rows, markdown)."""
    unknown = [t for t in tasks if t not in SETUPS]
    if unknown:
        raise ValueError(f"tasks: expected keys of {sorted(SETUPS)}, got {unknown}")
    rows = []
    for key in tasks:
        for peephole in PEEPHOLES:
            for rule in RULES:
                for seed in range(seeds):
                    rows.append(run_one(key, peephole, rule, seed, budget, quick))
                    if print_fn is not None:
                        print_fn(describe(rows[-1]))
    return TimingTable(rows, render(rows, tasks))


def describe(r: dict) -> str:
    """One run in a line."""
    outcome = f"solved at {r['sequences']:,} sequences" if r["solved"] else "not solved"
    if r["stream"] is not None:
        outcome += ", long stream " + ("right" if r["stream"] else "wrong")
    return (f"{r['task']} peephole={r['peephole']} {r['rule']} seed {r['seed']}: {outcome} "
            f"({r['seconds']:.0f} s, test mse {r['test_mse']:.3g})")


def cell(rows: list) -> str:
    """'k/n; median [min–max]' sequences over the solved seeds of one cell."""
    solved = sorted(r["sequences"] for r in rows if r["solved"])
    text = f"{len(solved)}/{len(rows)}"
    if solved:
        text += f"; {statistics.median(solved):,.0f} [{solved[0]:,}–{solved[-1]:,}]"
    streams = [r["stream"] for r in rows if r.get("stream") is not None]
    if streams:
        text += f"; {sum(streams)}/{len(streams)} right on the long stream"
    diverged = sum(r["diverged"] for r in rows)
    return text + (f" ({diverged} diverged)" if diverged else "")


def render(rows: list, tasks=None) -> str:
    """One Markdown table per task: rows peepholes diagonal / none, columns BPTT / 1997 truncated rule."""
    out = []
    for key in tasks or dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == key]
        budget = max(r["budget"] for r in mine)
        title = (f"**{SETUPS[key].label}**, budget {budget:,} sequences per seed: seeds solved; median [range] "
                 f"sequences to solve")
        stream = SETUPS[key].stream
        if stream:
            title += f"; of the solved, those also right on every step of {stream['test_size']} streams of " \
                     f"{stream['T']:,} steps"
        out += [title, "", "| peepholes | BPTT | 1997 truncated rule |", "|---|---|---|"]
        for peephole in PEEPHOLES:
            cells = [cell([r for r in mine if r["peephole"] == peephole and r["rule"] == rule]) for rule in RULES]
            out.append(f"| {peephole or 'none'} | {cells[0]} | {cells[1]} |")
        out.append("")
    return "\n".join(out)
