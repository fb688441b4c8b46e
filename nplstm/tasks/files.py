"""Your own files as tasks of `nplstm train`: a CSV series (`series`) and an .npz of sequences (`sequences`).

Both hold out the last 20 % (by time, for a series) as the test split, train on the rest with its own
last 10 % as the validation split the trainer watches, and report the test split at the end: a series
beside the persistence forecast (and the seasonal-naive one), in the data's own units.
"""
from __future__ import annotations

import csv
import datetime
import zipfile
import zlib
from dataclasses import dataclass, field, fields

import numpy as np

from ..data import windows
from ..predict import regression_metrics
from .base import check_choice, check_int
from .user import Arrays, Data, prepare, split

TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.1
DATE_NAMES = ("date", "time", "datetime", "timestamp", "year", "month", "day", "period", "week")
MISSING = ("", "na", "nan", "null", "none", "?")
FILLS = ("ffill", "interpolate")


def read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    """A CSV file with a header row -> (header, rows as lists of cells); one-line ValueErrors."""
    header, rows, _ = _read_csv(path)
    return header, rows


def _read_csv(path: str) -> tuple[list[str], list[list[str]], list[int]]:
    """read_csv's (header, rows) and each row's line number in the file (blank lines skipped, so a message
    that names a row names the line a user's editor shows)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader, rows, lines, line = csv.reader(fh), [], [], 1
            for r in reader:
                if any(c.strip() for c in r):
                    rows.append(r)
                    lines.append(line)
                line = reader.line_num + 1            # the next record starts on the line after this one ends
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot be read as a UTF-8 CSV file ({type(err).__name__}: {err})") from None
    if not rows:
        raise ValueError(f"{path}: the file is empty; expected a header row and then one row per time step")
    header = [c.strip() for c in rows[0]]
    if all(_number(c) is not None for c in header if c):
        raise ValueError(f"{path}: the first row {rows[0][:4]} is numbers, not a header; the first row must name "
                         "the columns")
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"{path}: the header {header} has an empty or repeated column name")
    for r, n in zip(rows[1:], lines[1:]):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {n} has {len(r)} cells, the header {len(header)}")
    return header, rows[1:], lines[1:]


def _number(cell: str):
    try:
        v = float(cell)
    except ValueError:
        return None
    return v


def _is_date(cell: str) -> bool:
    cell = cell.strip()
    for fmt in ("%Y-%m-%d", "%Y-%m", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y"):
        try:
            datetime.datetime.strptime(cell, fmt)
            return True
        except ValueError:
            continue
    try:
        datetime.datetime.fromisoformat(cell)
        return True
    except ValueError:
        return False


def load_series(path: str, columns=(), fill: str | None = None):
    """The numeric columns of a CSV series -> (values (N, F) float64, column names, the date column's
    cells or None). The date column is the first one named like a date (DATE_NAMES) or holding dates."""
    header, rows, lines = _read_csv(path)
    date = next((j for j, name in enumerate(header) if name.lower() in DATE_NAMES), None)
    if date is None:
        date = next((j for j in range(len(header)) if all(_is_date(r[j]) for r in rows[:50])), None)
    names = list(columns) or [n for j, n in enumerate(header) if j != date]
    if not names:
        raise ValueError(f"{path}: no column of values; the only column, {header[0]!r}, is read as the dates "
                         "(a series needs at least one numeric column besides the date)")
    for name in names:
        if name not in header:
            raise ValueError(f"{path}: no column {name!r}; the columns are {', '.join(header)}")
    index = [header.index(n) for n in names]
    values = np.full((len(rows), len(names)), np.nan)
    for n, r in enumerate(rows):
        for k, j in enumerate(index):
            cell = r[j].strip()
            if cell.lower() in MISSING:
                continue
            v = _number(cell)
            if v is None:
                raise ValueError(f"{path}: row {lines[n]}, column {names[k]!r}: {cell!r} is not a number")
            values[n, k] = v
    bad = ~np.isfinite(values)
    if bad.any():
        if fill is None:
            rows_bad = [lines[n] for n in np.flatnonzero(bad.any(1))]
            raise ValueError(f"{path}: missing or non-finite values in row(s) {', '.join(map(str, rows_bad[:5]))}"
                             + (f" and {len(rows_bad) - 5} more" if len(rows_bad) > 5 else "")
                             + "; fill them with --fill ffill or --fill interpolate, or clean the file")
        values = _filled(values, fill, path, names, lines)
    dates = [r[date].strip() for r in rows] if date is not None else None
    return values, names, dates


def _filled(values: np.ndarray, how: str, path: str, names, lines) -> np.ndarray:
    out = values.copy()
    for k in range(out.shape[1]):
        col, ok = out[:, k], np.isfinite(out[:, k])
        if not ok.any():
            raise ValueError(f"{path}: column {names[k]!r} has no value at all to fill from")
        if how == "interpolate":
            t = np.arange(len(col))
            col[~ok] = np.interp(t[~ok], t[ok], col[ok])
        else:
            if not ok[0]:
                raise ValueError(f"{path}: row {lines[0]}, column {names[k]!r}: the first value is missing; ffill has "
                                 "nothing before it to carry (use --fill interpolate, or clean the file)")
            last = np.maximum.accumulate(np.where(ok, np.arange(len(col)), 0))
            col[:] = col[last]
    return out


def load_npz(path: str, required=("x", "y")) -> dict[str, np.ndarray]:
    """The arrays x, y[, lengths, mask] of an .npz file, never unpickled; one-line ValueErrors."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: is not a readable .npz file ({type(err).__name__})") from None
    if magic[:4] != b"PK\x03\x04":          # np.load would call anything else "pickled"
        what = "a single .npy array" if magic == b"\x93NUMPY" else "not an .npz archive (np.savez writes one)"
        raise ValueError(f"{path}: is {what}; save the arrays x, y[, lengths, mask] with np.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except ValueError as err:
        why = ("holds pickled objects (ragged or object arrays), which are never loaded" if "pickle" in str(err)
               else f"is not a readable .npz ({err})")
        raise ValueError(f"{path}: {why}; save rectangular numeric arrays x, y[, lengths, mask]") from None
    except (OSError, EOFError, AttributeError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: is not a readable .npz file ({type(err).__name__})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: no array {missing[0]!r}; expected x, y and optionally lengths, mask "
                         f"(found {', '.join(arrays) or 'none'})")
    extra = sorted(set(arrays) - {"x", "y", "lengths", "mask"})
    if extra:
        raise ValueError(f"{path}: unexpected array {extra[0]!r}; expected x, y, lengths, mask")
    return arrays


class _FileTask:
    """What both file tasks share: the Arrays task they wrap, and the test split held out of it."""
    stateful = False
    paper: dict = {}

    def _build(self, data: Data):
        rest, self.test = split(data, TEST_FRACTION)
        train, val = split(rest, VALIDATION_FRACTION)
        classes, tokens = data.y.dtype.kind == "i", data.x.ndim == 2
        # sized by every split, the held-out test split's class ids and token ids included
        self._arrays = Arrays(train, val, name=self.name, num_classes=int(data.y.max()) + 1 if classes else None,
                              vocab_size=int(data.x.max()) + 1 if tokens else None)
        a = self._arrays
        self.input_size, self.output_size, self.loss, self.many_to_one = a.input_size, a.output_size, a.loss, a.many_to_one
        self.scaler, self.target_type = a.scaler, a.target_type
        if hasattr(a, "vocab_size"):
            self.vocab_size = a.vocab_size

    def options(self) -> dict:
        """The options this task was built with: make_task(self.name, **options) rebuilds it."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self) if f.init}

    def batch(self, rng, batch_size):
        return self._arrays.batch(rng, batch_size)

    def test_set(self):
        """The validation split: what the trainer evaluates while training (the test split is kept apart)."""
        return self._arrays.test_set()

    def evaluate(self, out, batch):
        return self._arrays.evaluate(out, batch)

    def test_metrics(self, model) -> dict[str, float]:
        """The model on the held-out test split, in the data's own units."""
        t = self.test
        return model.evaluate(t.x, t.y, t.lengths, mask=None if self.many_to_one else t.mask)


@dataclass
class Series(_FileTask):
    """Windows of a CSV series -> the next value(s) `horizon` steps after each window (many-to-one).

    path: a CSV with a header; column: the input columns (default: every numeric column but the date);
    target: the column to predict (default: every input column); season: a period (e.g. 12 for monthly
    data) for the seasonal-naive baseline; fill: "ffill" or "interpolate" for missing values.
    """
    path: str = ""
    column: tuple[str, ...] = ()
    target: str | None = None
    window: int = 48
    horizon: int = 1
    season: int = 0
    fill: str | None = None
    name: str = field(default="series", init=False)

    def __post_init__(self):
        if not self.path:
            raise ValueError("series: say which file with --path FILE.csv")
        self.column = tuple(self.column)
        check_int(self.name, "window", self.window, 1)
        check_int(self.name, "horizon", self.horizon, 1)
        check_int(self.name, "season", self.season, 0)
        if self.fill is not None:
            check_choice(self.name, "fill", self.fill, FILLS)
        values, self.columns, dates = load_series(self.path, self.column, self.fill)
        if self.target is not None and self.target not in self.columns:
            raise ValueError(f"series: --target {self.target!r} is not one of the input columns {self.columns}")
        out = [self.columns.index(self.target)] if self.target else list(range(len(self.columns)))
        need = self.window + self.horizon
        if len(values) < need + 9:                # enough windows for a test, a validation and a training split
            raise ValueError(f"{self.path}: {len(values)} rows; windows of {self.window} plus a horizon of "
                             f"{self.horizon} need at least {need + 9} rows for training, validation and test splits")
        if self.season and not self.horizon <= self.season <= self.window + self.horizon - 1:
            raise ValueError(f"series: season {self.season} must be between the horizon ({self.horizon}) and "
                             f"window + horizon - 1 ({need - 1}) for the seasonal-naive forecast to see it")
        x, y_all = windows(values, self.window, self.horizon)
        self.output_columns = [self.columns[j] for j in out]
        self.dates = None if dates is None else dates[self.window + self.horizon - 1:]   # each target's date
        self._out = out
        self._build(prepare(x, y_all[:, out], many_to_one=True))

    def options(self) -> dict:
        """As _FileTask's, with the columns read written out: `nplstm predict` then reads the same columns of
        another file (or names the one it lacks), never whichever numeric columns that file happens to have."""
        return {**super().options(), "column": list(self.columns)}

    def baselines(self) -> dict[str, dict[str, float]]:
        """Persistence (the window's last value) and, with a season, seasonal-naive on the test split."""
        t, out = self.test, self._out
        found = {"persistence": regression_metrics(t.x[:, -1, out], t.y)}
        if self.season:       # the value one season before the target: index window + horizon - 1 - season
            found["seasonal-naive"] = regression_metrics(t.x[:, self.window + self.horizon - 1 - self.season, out], t.y)
        return found

    def report(self, model) -> list[str]:
        """The verdict of a trained model on the held-out test split, beside the baselines."""
        m, base = self.test_metrics(model), self.baselines()
        n = len(self.test.x)
        lines = [f"  test ({n} windows, the last {TEST_FRACTION:.0%} by time): MSE {m['mse']:.4g}, MAE {m['mae']:.4g}"]
        for name, b in base.items():
            lines.append(f"  {name}: MSE {b['mse']:.4g}, MAE {b['mae']:.4g}")
        best = min(base.values(), key=lambda b: b["mse"])
        gain = 1 - m["mse"] / best["mse"] if best["mse"] > 0 else float("-inf")
        which = min(base, key=lambda k: base[k]["mse"])
        lines.insert(0, f"{self.name}: beats {which} by {gain:.1%} (test MSE)" if gain > 0
                     else f"{self.name}: does not beat {which} (test MSE {m['mse']:.4g} against {best['mse']:.4g})")
        return lines


@dataclass
class Sequences(_FileTask):
    """Labelled sequences from an .npz file: arrays x (B, T, I) or token ids (B, T), y (class ids or
    values, one per sequence or per step), optional lengths (B,) and mask (B, T)."""
    path: str = ""
    name: str = field(default="sequences", init=False)

    def __post_init__(self):
        if not self.path:
            raise ValueError("sequences: say which file with --path FILE.npz")
        arrays = load_npz(self.path)
        try:
            data = prepare(arrays["x"], arrays["y"], arrays.get("lengths"), arrays.get("mask"))
        except ValueError as err:
            raise ValueError(f"{self.path}: {err}") from None
        if len(data.x) < 10:
            raise ValueError(f"{self.path}: {len(data.x)} sequences; at least 10 are needed for training, "
                             "validation and test splits")
        self._build(data)

    def report(self, model) -> list[str]:
        m = self.test_metrics(model)
        return [f"{self.name}: test ({len(self.test.x)} sequences, the last {TEST_FRACTION:.0%}): "
                + ", ".join(f"{k} {v:.4g}" for k, v in m.items())]
