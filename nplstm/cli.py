"""The `nplstm` command (also `python -m nplstm`): one subcommand per job.

Errors a user can cause (bad options, unreadable files, malformed input) print one line
and exit non-zero; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import json
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):                # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bench(args):
    from . import bench
    rows = bench.run("tiny" if args.tiny else "default", repeat=args.repeat, threads=args.threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
        print(f"wrote {args.json}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nplstm", description="A NumPy-only LSTM with checked backpropagation through time.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("bench", help="time a training step against torch.nn.LSTM, side by side",
                       description="Time one training step (forward + backward) and one forward of nplstm "
                                   "against torch.nn.LSTM in the same process (float32, medians).")
    p.add_argument("--tiny", action="store_true", help="one tiny size only (a smoke test; CI runs this)")
    p.add_argument("--repeat", type=int, default=7, help="timed repetitions per size (default 7)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: NumPy's BLAS threads)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.set_defaults(run=_bench)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError) as err:
        print(f"nplstm {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nplstm {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0
