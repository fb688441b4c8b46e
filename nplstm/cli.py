"""The `nplstm` command (also `python -m nplstm`): one subcommand per job.

Errors a user can cause (bad options, unreadable files, malformed input) print one line
and exit non-zero; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):     # no prefix matching: --p is noise_free_lag's p, not --peephole
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):                # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(least: int | None = None):
    """An argparse type: an integer, at least `least`; the error names what was expected."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if least is not None and value < least:
            raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}")
        return value
    return convert


def number(*, above: float | None = None, least: float | None = None, below: float | None = None):
    """An argparse type: a finite number, > above, >= least, < below where given."""
    bounds = [f"> {above:g}" if above is not None else "", f">= {least:g}" if least is not None else "",
              f"< {below:g}" if below is not None else ""]
    wanted = "a finite number" + (" " + " and ".join(b for b in bounds if b) if any(bounds) else "")

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (above is not None and not value > above) or \
                (least is not None and not value >= least) or (below is not None and not value < below):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    return convert


def _bench(args):
    from .diagnostics import bench
    rows = bench.run("tiny" if args.tiny else "default", repeat=args.repeat, threads=args.threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
        print(f"wrote {args.json}")


def _tasks(args):
    from .training.recipes import RECIPES
    from .tasks import TASKS
    width = max(map(len, TASKS))
    for name in TASKS:
        print(f"{name:<{width}}  {RECIPES[name].summary}")
    print("\nnplstm train TASK --help lists the options; task options go as --NAME VALUE (e.g. --T 200).")


def task_fields(task_cls) -> list:
    """The options of a task, as `nplstm train TASK --NAME VALUE` sets them: its dataclass fields but
    `seed` (the command line's --seed seeds the model and the data order)."""
    return [f for f in dataclasses.fields(task_cls) if f.init and f.name != "seed"]


def _add_task_options(parser) -> None:
    """One argparse option per task field, for every task (a name two tasks share is one option);
    _task_options keeps those the chosen task has and refuses the others."""
    from .tasks import TASKS
    seen = {}
    for name, cls in TASKS.items():
        for f in task_fields(cls):
            seen.setdefault(f.name, (f, []))[1].append(name)
    group = parser.add_argument_group("task options (each task has its own; see the epilog)")
    for field_name, (f, owners) in seen.items():
        flags = [f"--{field_name}"] + ([f"--{field_name.replace('_', '-')}"] if "_" in field_name else [])
        group.add_argument(*flags, dest="task_" + field_name, default=None, metavar=str(f.type).split()[0].upper(),
                           type=integer() if str(f.type) == "int" else str, help=f"({', '.join(owners)})")


def _task_options(args) -> dict:
    """The task options given on the command line, {field: value}, refusing any the task does not have."""
    from .tasks import TASKS
    accepted = {f.name for f in task_fields(TASKS[args.task])}
    given = {k[len("task_"):]: v for k, v in vars(args).items() if k.startswith("task_") and v is not None}
    for name in given:
        if name not in accepted:
            raise ValueError(f"--{name} is not an option of task {args.task}; its options: "
                             + (", ".join(f"--{k}" for k in sorted(accepted)) or "none"))
    return given


def _train_config(args, base: dict) -> dict:
    """The training settings: `base` (the recipe's, or the resumed run's) with the options given on top."""
    cfg = dict(base)
    given = {"steps": args.steps, "batch_size": args.batch, "lr": args.lr, "optimizer": args.optimizer,
             "momentum": args.momentum, "lr_schedule": args.schedule, "eval_every": args.eval_every,
             "seed": args.seed, "checkpoint_every": args.checkpoint_every}
    cfg.update({k: v for k, v in given.items() if v is not None})
    if args.clip is not None:
        cfg["clip"] = None if args.clip <= 0 else args.clip
    if args.no_early_stop:
        cfg["early_stop"] = False
    return cfg


def _model_config(args, base: dict) -> dict:
    cfg = dict(base)
    given = {"hidden_size": args.hidden, "num_layers": args.layers, "forget_bias": args.forget_bias}
    cfg.update({k: v for k, v in given.items() if v is not None})
    if args.peephole is not None:
        cfg["peephole"] = None if args.peephole == "none" else args.peephole
    if args.no_forget_gate:
        cfg["forget_gate"] = False
    if args.bidirectional:
        cfg["bidirectional"] = True
    return cfg


# what a run's config.json gives a resumed command as its base; the rest is the command's own
RESUMED_TRAIN = ("steps", "batch_size", "lr", "optimizer", "momentum", "clip", "lr_schedule", "warmup", "min_lr_frac",
                 "step_size", "step_gamma", "eval_every", "eval_batch", "early_stop", "patience", "seed",
                 "checkpoint_every", "schedule_steps")
RESUMED_MODEL = ("hidden_size", "num_layers", "bidirectional", "peephole", "forget_gate")


def _bases(args, recipe, run_dir: Path):
    """(task options, model, training settings) to start from: the recipe's for a new run; for
    --resume, the run's own config.json, so that only the options given on the command line change."""
    if not args.resume:
        return dict(recipe.task), dict(recipe.model), dict(recipe.train)
    from .training.runs import read_config
    config = read_config(run_dir)
    if config["task"].get("name") != args.task:
        raise ValueError(f"--resume: {run_dir} is a run of task {config['task'].get('name')!r}, not {args.task!r}")
    return (dict(config["task"].get("options") or {}), {k: config["model"][k] for k in RESUMED_MODEL},
            {k: config["train"][k] for k in RESUMED_TRAIN if k in config["train"]})


def _claim_run_dir(task: str) -> Path:
    """A new default run dir, runs/TASK-TIME[-n], created here: mkdir is atomic, so two runs started in
    the same second get two directories."""
    stem = Path("runs") / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ValueError(f"run dir: {stem}-1..999 all exist; pass --run-dir")


def _train(args):
    from .anomaly import AnomalyError
    from .tasks import make_task
    from .training.recipes import RECIPES
    from .training.trainer import TrainConfig, build_model, train

    if args.resume and not args.run_dir:
        raise ValueError("--resume: say which run to continue with --run-dir DIR")
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite: choose one (continue the run, or replace it)")
    run_dir = Path(args.run_dir) if args.run_dir else None
    resume = None
    if args.resume:
        resume = run_dir / "checkpoint.npz"
        if not resume.exists():
            raise ValueError(f"--resume: no checkpoint at {resume}")
    task_base, model_base, train_base = _bases(args, RECIPES[args.task], run_dir)
    task = make_task(args.task, **{**task_base, **_task_options(args)})
    model_cfg = _model_config(args, model_base)
    claimed = run_dir is None
    run_dir = _claim_run_dir(args.task) if claimed else run_dir
    try:
        cfg = TrainConfig(**_train_config(args, train_base), run_dir=run_dir, progress=not args.no_progress,
                          log_every=0 if args.quiet else 100, detect_anomaly=args.detect_anomaly,
                          overwrite=args.overwrite, override=tuple(args.override or ()))
        model = build_model(task, seed=cfg.seed, **model_cfg)
        if not args.quiet:
            print(f"{task.name}: {model.lstm!r}, head {model.head.params['W'].shape}; "
                  f"{cfg.optimizer} lr {cfg.lr}, batch {cfg.batch_size}, up to {cfg.steps} updates; run dir {run_dir}")
        history = train(model, task, cfg, resume_from=resume)
    except AnomalyError as err:
        err.add_note(f"  history in {run_dir}")
        if args.plot:
            err.add_note(f"  report in {_write_plots(run_dir)}")
        raise
    except BaseException:
        if claimed and not any(run_dir.iterdir()):
            run_dir.rmdir()                  # a run that wrote nothing leaves no empty directory behind
        raise
    print(verdict(task, history, cfg))
    if args.plot:
        _write_plots(run_dir)


def _write_plots(run_dir) -> Path:
    """Pictures and report.html of a run; prints each path and returns the report's."""
    from .diagnostics.report import plot_run
    paths = plot_run(run_dir)
    for path in paths:
        print(path)
    return paths[-1]


def verdict(task, history, cfg) -> str:
    """The run's outcome in the paper's terms (runs.verdict), its test metrics and the paper's numbers."""
    from .training.runs import verdict as sentence

    _, line = sentence(dataclasses.asdict(history), cfg.batch_size)
    test = history.records[-1]["test"] if history.records else {}
    lines = [f"{task.name}: {line}", "  test: " + ", ".join(f"{k} {v:.4g}" for k, v in test.items() if k != "solved")]
    paper = getattr(task, "paper", None) or {}
    if paper:
        lines.append("  paper: " + ", ".join(f"{k} {v}" for k, v in paper.items() if k != "source")
                     + f" ({paper.get('source', '')})")
    if cfg.run_dir is not None:
        lines.append(f"  history, config and checkpoint in {cfg.run_dir}")
    return "\n".join(lines)


def _sample(args):
    from .tasks.charlm import sample_text
    from .training.checkpoint import load_model

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    model, meta = load_model(path, with_meta=True)
    if not meta.get("vocab"):
        raise ValueError(f"{path} was not trained on charlm (task {meta.get('task')!r}): nothing to sample")
    print(sample_text(model, meta["vocab"], prime=args.prime, length=args.length,
                      temperature=args.temperature, seed=args.seed))


def _reproduce(args):
    from .training.reproduce import run_suite
    run_suite(seeds=args.seeds, quick=args.quick, only=args.only, out=args.out, jobs=args.jobs)


def _plot(args):
    from .diagnostics.report import plot_run
    for path in plot_run(args.run_dir, args.out, ("png", "svg") if args.format == "both" else (args.format,)):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nplstm", description="A NumPy-only LSTM with checked backpropagation through time.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("bench", help="time a training step against torch.nn.LSTM, side by side",
                       description="Time one training step (forward + backward) and one forward of nplstm "
                                   "against torch.nn.LSTM in the same process (float32, medians).")
    p.add_argument("--tiny", action="store_true", help="one tiny size only (a smoke test; CI runs this)")
    p.add_argument("--repeat", type=integer(1), default=7, help="timed repetitions per size (default 7)")
    p.add_argument("--threads", type=integer(1), default=None, help="torch threads (default: NumPy's BLAS threads)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.set_defaults(run=_bench)

    p = sub.add_parser("tasks", help="list the tasks", description="List the tasks `nplstm train` knows.")
    p.set_defaults(run=_tasks)

    from .tasks import TASKS
    p = sub.add_parser("train", help="train an LSTM on a task and judge it by the paper's criterion",
                       description="Train on TASK with its recipe's defaults (nplstm/training/recipes.py); every option "
                                   "below overrides one. Task options go as --NAME VALUE, e.g. --T 200.",
                       epilog="task options: " + "; ".join(
                           f"{n}: " + ", ".join(f"--{f.name}" for f in task_fields(t)) for n, t in TASKS.items()))
    p.add_argument("task", choices=list(TASKS), metavar="TASK", help="one of: " + ", ".join(TASKS))
    m = p.add_argument_group("model")
    m.add_argument("--hidden", type=integer(1), help="hidden units H")
    m.add_argument("--layers", type=integer(1), help="stacked LSTM layers")
    m.add_argument("--peephole", choices=["diagonal", "full", "none"], help="peephole connections")
    m.add_argument("--no-forget-gate", action="store_true", help="the 1997 LSTM: no forget gate")
    m.add_argument("--forget-bias", type=number(), help="initial forget-gate bias")
    m.add_argument("--bidirectional", action="store_true", help="a reverse direction too (per-step tasks)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=integer(1), help="maximum updates")
    t.add_argument("--batch", type=integer(1), help="sequences per update")
    t.add_argument("--lr", type=number(above=0), help="learning rate")
    t.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop"])
    t.add_argument("--momentum", type=number(least=0, below=1), help="SGD momentum")
    t.add_argument("--clip", type=number(least=0), help="max gradient norm (0: no clipping)")
    t.add_argument("--schedule", choices=["constant", "cosine", "step"], help="learning-rate schedule")
    t.add_argument("--eval-every", type=integer(1), help="updates between test evaluations")
    t.add_argument("--seed", type=integer(0), help="seed of the model and the data order (default 0)")
    t.add_argument("--no-early-stop", action="store_true", help="keep training after the criterion is met")
    t.add_argument("--detect-anomaly", action="store_true",
                   help="stop at the first NaN or Inf and explain where it came from (slower)")
    o = p.add_argument_group("output")
    o.add_argument("--run-dir", help="where history.json, config.json, checkpoint.npz go (default runs/TASK-TIME)")
    o.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its checkpoint, with its own settings; options given "
                        "change them only where a resume allows (--steps extends; the cosine schedule keeps its horizon)")
    o.add_argument("--override", nargs="+", choices=["lr", "clip"], metavar="SETTING",
                   help="with --resume: let these settings differ from the run's (lr, clip)")
    o.add_argument("--overwrite", action="store_true", help="replace the run already in --run-dir")
    o.add_argument("--checkpoint-every", type=integer(0), help="updates between checkpoints (default: at the end)")
    o.add_argument("--no-progress", action="store_true", help="plain lines instead of a tqdm bar")
    o.add_argument("--plot", action="store_true",
                   help="then write the run's pictures and report.html (pip install nplstm[plot])")
    o.add_argument("--quiet", action="store_true", help="print the verdict only")
    _add_task_options(p)
    p.set_defaults(run=_train)

    p = sub.add_parser("sample", help="generate text from a charlm checkpoint",
                       description="Generate text from a character model trained with `nplstm train charlm`.")
    p.add_argument("checkpoint", help="a run directory or its checkpoint.npz")
    p.add_argument("--length", type=integer(0), default=500, help="characters to generate (default 500)")
    p.add_argument("--prime", default="", help="text to start from")
    p.add_argument("--temperature", type=number(above=0), default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--seed", type=integer(0), default=0)
    p.set_defaults(run=_sample)

    p = sub.add_parser("reproduce", help="the papers' experiments over several seeds, beside their numbers",
                       description="Run the paper suite and print (and write as Markdown) a table of success "
                                   "rate, training sequences, test error and wall time beside the papers'.")
    p.add_argument("--seeds", type=integer(1), default=5, help="seeds per experiment (default 5)")
    p.add_argument("--quick", action="store_true", help="a short version of every experiment (a smoke test)")
    p.add_argument("--only", nargs="+", metavar="EXPERIMENT", help="run only these experiments")
    p.add_argument("--out", default="results.md", help="Markdown file to write (default results.md)")
    p.add_argument("--jobs", type=integer(1), default=None, help="parallel processes (default: the number of cores)")
    p.set_defaults(run=_reproduce)

    p = sub.add_parser("plot", help="plot a run (curves, gates, gradient flow) and write its report.html",
                       description="Write the pictures of a run directory (loss and metric curves, gradient "
                                   "norms, gate heatmaps, gradient flow in time) and a self-contained "
                                   "RUN_DIR/report.html. Needs matplotlib: pip install \"nplstm[plot]\".")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `nplstm train`")
    p.add_argument("--out", metavar="DIR", help="where the pictures go (default RUN_DIR/plots)")
    p.add_argument("--format", choices=["png", "svg", "both"], default="png", help="picture format (default png)")
    p.set_defaults(run=_plot)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train":
        from .tasks import TASKS
        parser.error(f"unrecognized argument {extra[0]!r}; options of task {args.task}: "
                     + ", ".join(f"--{f.name}" for f in task_fields(TASKS[args.task])))
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from .anomaly import AnomalyError, NonFiniteError
    try:
        args.run(args)
    except AnomalyError as err:              # a diverged run: the whole report, not a traceback
        notes = "".join(f"\n{n}" for n in getattr(err, "__notes__", ()))
        print(f"nplstm {args.command}: stopped at the first NaN or Inf\n{err}{notes}", file=sys.stderr)
        return 1
    except NonFiniteError as err:            # diverged, detection off: one line that says what and when
        print(f"nplstm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except MemoryError as err:
        print(f"nplstm {args.command}: error: out of memory ({err}); use shorter sequences or smaller batches",
              file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"nplstm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nplstm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
