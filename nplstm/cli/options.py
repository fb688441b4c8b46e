"""The command line's argument types and parser: every value checked with its flag's name, every error one line."""
from __future__ import annotations

import argparse
import math


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):     # no prefix matching: --p is noise_free_lag's p, not --peephole
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):                # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")

    def _get_values(self, action, arg_strings):   # Python 3.11 drops the '--' of --lr=--, leaving [] untyped
        if action.option_strings and arg_strings == ["--"]:
            raise argparse.ArgumentError(action, "expected a value, got '--'")
        return super()._get_values(action, arg_strings)


# the characters str.splitlines() breaks at, escaped as repr() writes them
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(message) -> str:
    """str(message) with its line breaks escaped: a value the user typed (a path, an argument) cannot split
    the error line."""
    return str(message).translate(_LINE_BREAKS)


def integer(least: int | None = None, most: int | None = None):
    """An argparse type: an integer, >= least and <= most where given; the error names what was expected."""
    bounds = [f"{op} {n}" for op, n in ((">=", least), ("<=", most)) if n is not None]
    wanted = "an integer " + " and ".join(bounds)

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (least is not None and value < least) or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
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


MAX_SEEDS = 10_000   # reproduce --seeds at most: run_suite lists every (experiment, seed) run up front
