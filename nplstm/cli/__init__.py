"""The `nplstm` command (also `python -m nplstm`): one subcommand per job.

Errors a user can cause (bad options, unreadable files, malformed input) print one line
and exit non-zero; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .export import add_export_parser
from .odyssey import add_odyssey_parser
from .options import MAX_SEEDS, _Parser, integer, number, one_line
from .predict import add_predict_parser
from .train import _add_task_options, _train, task_fields


def _bench(args):
    from ..diagnostics import bench, bench_family
    grid = bench.SIZES["tiny" if args.tiny else "default"]
    if args.repeat < bench.MIN_REPEAT:
        print(f"note: {args.repeat} rounds, fewer than {bench.MIN_REPEAT}: the ratios are indicative only")
    if args.variants:
        result = bench_family.run_variants([s for s in grid if s[3] >= 128] or grid, repeat=args.repeat)
    elif args.gru:
        sizes = grid if args.tiny else [(1, 100, 8, 32), (64, 100, 32, 128), (64, 100, 128, 512)]
        result = bench_family.run_gru(sizes, repeat=args.repeat, threads=args.threads)
    else:
        result = bench.run("tiny" if args.tiny else "default", repeat=args.repeat, threads=args.threads,
                           scaling=not args.no_scaling)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")


def _tasks(args):
    from ..training.recipes import RECIPES
    from ..tasks import TASKS
    width = max(map(len, TASKS))
    for name in TASKS:
        print(f"{name:<{width}}  {RECIPES[name].summary}")
    print("\nnplstm train TASK --help lists the options; task options go as --NAME VALUE (e.g. --T 200).")


def _sample(args):
    from ..tasks.charlm import sample_text
    from ..training.checkpoint import load_model

    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "checkpoint.npz"
    model, meta = load_model(path, with_meta=True)
    if not meta.get("vocab"):
        raise ValueError(f"{path} was not trained on charlm (task {meta.get('task')!r}): nothing to sample")
    print(sample_text(model, meta["vocab"], prime=args.prime, length=args.length,
                      temperature=args.temperature, seed=args.seed))


def _reproduce(args):
    from ..training.reproduce import run_suite
    run_suite(seeds=args.seeds, quick=args.quick, only=args.only, out=args.out, jobs=args.jobs)


def _experiment(text: str) -> str:
    """An argparse type: a name `reproduce --only` takes (reproduce.check_name); imported only when given."""
    from ..training.reproduce import check_name
    try:
        return check_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _plot(args):
    from ..diagnostics.report import plot_run
    for path in plot_run(args.run_dir, args.out, ("png", "svg") if args.format == "both" else (args.format,)):
        print(path)


def build_parser() -> argparse.ArgumentParser:
    from ..variants import VARIANTS
    parser = _Parser(prog="nplstm", description="A NumPy-only LSTM with checked backpropagation through time.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("bench", help="time nplstm against torch and ONNX Runtime, side by side",
                       description="Time one training step (forward + backward) and one forward of nplstm against "
                                   "torch.nn.LSTM, torch.nn.GRU and ONNX Runtime in the same process, interleaved "
                                   "(float32; min, median, max; ratios of medians with their spread).")
    p.add_argument("--tiny", action="store_true", help="one tiny size only (a smoke test; CI runs this)")
    p.add_argument("--repeat", type=integer(1), default=15,
                   help="interleaved rounds per size after a warm-up (default 15; fewer only for a smoke test)")
    p.add_argument("--threads", type=integer(1, os.cpu_count() or 1), default=None,
                   help="threads for NumPy's BLAS (through threadpoolctl), torch and ONNX Runtime, at most the "
                        "cores here (default: NumPy's BLAS threads)")
    p.add_argument("--no-scaling", action="store_true", help="skip the scaling rows (T and B growing)")
    p.add_argument("--variants", action="store_true",
                   help="each of Greff's LSTM variants against the vanilla LSTM instead (sizes with H >= 128)")
    p.add_argument("--gru", action="store_true", help="nplstm.GRU against torch.nn.GRU instead (needs torch)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.set_defaults(run=_bench)

    p = sub.add_parser("tasks", help="list the tasks", description="List the tasks `nplstm train` knows.")
    p.set_defaults(run=_tasks)

    from ..tasks import TASKS
    p = sub.add_parser("train", help="train an LSTM on a task and judge it by the paper's criterion",
                       description="Train on TASK with its recipe's defaults (nplstm/training/recipes.py); every option "
                                   "below overrides one. Task options go as --NAME VALUE, e.g. --T 200.",
                       epilog="task options: " + "; ".join(
                           f"{n}: " + ", ".join(f"--{f.name}" for f in task_fields(t)) for n, t in TASKS.items()))
    p.add_argument("task", choices=list(TASKS), metavar="TASK", help="one of: " + ", ".join(TASKS))
    m = p.add_argument_group("model")
    m.add_argument("--hidden", type=integer(1), help="hidden units H")
    m.add_argument("--layers", type=integer(1, 100), help="stacked LSTM layers (at most 100)")
    m.add_argument("--peephole", choices=["diagonal", "full", "none"], help="peephole connections")
    m.add_argument("--no-forget-gate", action="store_true", help="the 1997 LSTM: no forget gate")
    m.add_argument("--cell", choices=["lstm", "gru"], help="the recurrent layer: an LSTM (default) or "
                   "PyTorch's GRU (nplstm.GRU)")
    m.add_argument("--variant", choices=list(VARIANTS), help="one of Greff et al.'s (2017) LSTM variants, each changing "
                   "one part of the vanilla LSTM (diagonal peepholes, forget gate): NIG/NFG/NOG no input/forget/"
                   "output gate, NIAF/NOAF identity input/output activation, NP no peepholes, CIFG f = 1 - i, "
                   "FGR gate recurrence; --peephole and --no-forget-gate change it further")
    m.add_argument("--forget-bias", type=number(), help="initial forget-gate bias")
    m.add_argument("--bidirectional", action="store_true", help="a reverse direction too (per-step tasks)")
    m.add_argument("--dropout", type=number(least=0, below=1),
                   help="dropout between stacked layers and before the head (training only)")
    m.add_argument("--embedding-dim", type=integer(1),
                   help="embedding size for token-id inputs (charlm, sequences of ids; default 32)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=integer(1), help="maximum updates")
    t.add_argument("--batch", type=integer(1, 10 ** 6), help="sequences per update")
    t.add_argument("--lr", type=number(above=0), help="learning rate")
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "rmsprop"])
    t.add_argument("--weight-decay", type=number(least=0), help="adamw: decoupled weight decay; sgd: L2")
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
                                   "rate, training sequences, test error and wall time beside the papers', then "
                                   "the 2 x 2 of peepholes x learning rule (BPTT, the 1997 truncated rule) on "
                                   "the Gers 2002 timing tasks.")
    p.add_argument("--seeds", type=integer(1, MAX_SEEDS), default=5, help="seeds per experiment (default 5)")
    p.add_argument("--quick", action="store_true", help="a short version of every experiment (a smoke test)")
    p.add_argument("--only", nargs="+", type=_experiment, metavar="EXPERIMENT",
                   help="run only these: a task (reber, adding, ...; timing is the suite's spike-delay rows), "
                        "an experiment's label, or a timing table of the 2 x 2 (msd, gts, or timing2x2 for both)")
    p.add_argument("--out", default="results.md", help="Markdown file to write (default results.md)")
    p.add_argument("--jobs", type=integer(1, os.cpu_count() or 1), default=None,
                   help="parallel processes, at most the cores here (default: the number of cores)")
    p.set_defaults(run=_reproduce)

    p = sub.add_parser("plot", help="plot a run (curves, gates, gradient flow) and write its report.html",
                       description="Write the pictures of a run directory (loss and metric curves, gradient "
                                   "norms, gate heatmaps, gradient flow in time) and a self-contained "
                                   "RUN_DIR/report.html. Needs matplotlib: pip install \"nplstm[plot]\".")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by `nplstm train`")
    p.add_argument("--out", metavar="DIR", help="where the pictures go (default RUN_DIR/plots)")
    p.add_argument("--format", choices=["png", "svg", "both"], default="png", help="picture format (default png)")
    p.set_defaults(run=_plot)
    add_predict_parser(sub)
    add_export_parser(sub)
    add_odyssey_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train":
        from ..tasks import TASKS
        parser.error(f"unrecognized argument {extra[0]!r}; options of task {args.task}: "
                     + ", ".join(f"--{f.name}" for f in task_fields(TASKS[args.task])))
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from ..anomaly import AnomalyError, NonFiniteError
    try:
        args.run(args)
    except AnomalyError as err:              # a diverged run: the whole report, not a traceback
        notes = "".join(f"\n{n}" for n in getattr(err, "__notes__", ()))
        print(f"nplstm {args.command}: stopped at the first NaN or Inf\n{err}{notes}", file=sys.stderr)
        return 1
    except NonFiniteError as err:            # diverged, detection off: one line that says what and when
        print(f"nplstm {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except MemoryError as err:
        print(f"nplstm {args.command}: error: out of memory ({one_line(err)}); "
              "use shorter sequences or smaller batches", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"nplstm {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nplstm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
