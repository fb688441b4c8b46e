"""`nplstm train`: task options from the task dataclasses, settings from a recipe or the resumed run,
a run dir claimed atomically, the verdict."""
from __future__ import annotations

import dataclasses
import time
import typing
from pathlib import Path

from .options import integer


def task_fields(task_cls) -> list:
    """The options of a task, as `nplstm train TASK --NAME VALUE` sets them: its dataclass fields but
    `seed` (the command line's --seed seeds the model and the data order)."""
    return [f for f in dataclasses.fields(task_cls) if f.init and f.name != "seed"]


def _add_task_options(parser) -> None:
    """One argparse option per task field, for every task (a name two tasks share is one option);
    _task_options keeps those the chosen task has and refuses the others."""
    from ..tasks import TASKS
    seen = {}
    for name, cls in TASKS.items():
        for f in task_fields(cls):
            seen.setdefault(f.name, (f, []))[1].append(name)
    group = parser.add_argument_group("task options (each task has its own; see the epilog)")
    for field_name, (f, owners) in seen.items():
        flags = [f"--{field_name}"] + ([f"--{field_name.replace('_', '-')}"] if "_" in field_name else [])
        kind = typing.get_type_hints(TASKS[owners[0]])[field_name]   # int, str, str | None or tuple[str, ...]
        many = typing.get_origin(kind) is tuple
        group.add_argument(*flags, dest="task_" + field_name, default=None, metavar="INT" if kind is int else "TEXT",
                           type=integer() if kind is int else str, nargs="+" if many else None,
                           help=f"({', '.join(owners)})")


def _task_options(args) -> dict:
    """The task options given on the command line, {field: value}, refusing any the task does not have."""
    from ..tasks import TASKS
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
             "seed": args.seed, "checkpoint_every": args.checkpoint_every, "weight_decay": args.weight_decay}
    cfg.update({k: v for k, v in given.items() if v is not None})
    if args.clip is not None:
        cfg["clip"] = None if args.clip <= 0 else args.clip
    if args.no_early_stop:
        cfg["early_stop"] = False
    return cfg


VARIANT_FIELDS = ("input_gate", "output_gate", "input_activation", "output_activation", "coupled", "gate_recurrence")


def _model_config(args, base: dict) -> dict:
    cfg = dict(base)
    given = {"hidden_size": args.hidden, "num_layers": args.layers, "forget_bias": args.forget_bias,
             "dropout": args.dropout, "embedding_dim": args.embedding_dim}
    cfg.update({k: v for k, v in given.items() if v is not None})
    if args.peephole is not None:
        cfg["peephole"] = None if args.peephole == "none" else args.peephole
    if args.no_forget_gate:
        cfg["forget_gate"] = False
    if args.bidirectional:
        cfg["bidirectional"] = True
    if args.variant is not None:
        cfg["variant"] = args.variant
        for key in ("forget_gate", *VARIANT_FIELDS):   # the recipe's flags give way to the variant's
            if key not in ("forget_gate",) or not args.no_forget_gate:
                cfg.pop(key, None)
        if args.peephole is None:
            cfg.pop("peephole", None)
    if args.cell == "gru" or cfg.get("cell") == "gru":
        lstm_only = [flag for flag, given in (("--variant", args.variant), ("--peephole", args.peephole),
                                              ("--no-forget-gate", args.no_forget_gate),
                                              ("--forget-bias", args.forget_bias)) if given]
        if lstm_only:
            raise ValueError(f"--cell gru: {', '.join(lstm_only)} belong(s) to the LSTM")
        cfg = {k: v for k, v in cfg.items() if k in ("hidden_size", "num_layers", "bidirectional", "dropout",
                                                     "embedding_dim")}
        cfg["cell"] = "gru"                  # the recipe's LSTM flags do not apply
    return cfg


# what a run's config.json gives a resumed command as its base; the rest is the command's own
RESUMED_TRAIN = ("steps", "batch_size", "lr", "optimizer", "momentum", "clip", "lr_schedule", "warmup", "min_lr_frac",
                 "step_size", "step_gamma", "eval_every", "eval_batch", "early_stop", "patience", "seed",
                 "checkpoint_every", "schedule_steps", "weight_decay", "restore_best")
RESUMED_MODEL = ("hidden_size", "num_layers", "bidirectional", "peephole", "forget_gate", "cell", "dropout")


def _bases(args, recipe, run_dir: Path):
    """(task options, model, training settings) to start from: the recipe's for a new run; for
    --resume, the run's own config.json, so that only the options given on the command line change."""
    if not args.resume:
        return dict(recipe.task), dict(recipe.model), dict(recipe.train)
    from ..training.runs import read_config
    config = read_config(run_dir)
    if config["task"].get("name") != args.task:
        raise ValueError(f"--resume: {run_dir} is a run of task {config['task'].get('name')!r}, not {args.task!r}")
    model = {k: config["model"][k] for k in (*RESUMED_MODEL, *VARIANT_FIELDS) if k in config["model"]}
    return (dict(config["task"].get("options") or {}), model,
            {k: config["train"][k] for k in RESUMED_TRAIN if k in config["train"]})


def _model_sizes(task, model_cfg: dict) -> dict:
    """model_config's dict for the model build_model would make: what check_memory reads."""
    return {"input_size": task.input_size, "output_size": task.output_size, "num_layers": 1, "bidirectional": False,
            "peephole": "diagonal", "dtype": "float32", **model_cfg}


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
    from ..anomaly import AnomalyError
    from ..tasks import make_task
    from ..training.recipes import RECIPES
    from ..training.trainer import TrainConfig, build_model, check_memory, train

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
        check_memory(task, _model_sizes(task, model_cfg), cfg)   # before the model exists: a size can be absurd
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
    print(verdict(task, history, cfg, model))
    if args.plot:
        _write_plots(run_dir)


def _write_plots(run_dir) -> Path:
    """Pictures and report.html of a run; prints each path and returns the report's."""
    from ..diagnostics.report import plot_run
    paths = plot_run(run_dir)
    for path in paths:
        print(path)
    return paths[-1]


def verdict(task, history, cfg, model=None) -> str:
    """The run's outcome in the paper's terms (runs.verdict), its test metrics and the paper's numbers;
    for your own data (a task with `report`), the held-out test split beside its baselines."""
    from ..training.runs import verdict as sentence

    if hasattr(task, "report") and model is not None:
        lines = task.report(model)
        lines.append(f"  {history.steps_done:,} updates, {history.wall_seconds:.0f} s; stopped: {history.stopped}"
                     + ("; the parameters of the best validation loss restored" if cfg.restore_best else ""))
        if cfg.run_dir is not None:
            lines.append(f"  history, config and checkpoint in {cfg.run_dir}")
        return "\n".join(lines)
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
