"""A run directory, read back: its configuration, history, model and verdict, in one place.

`nplstm train` (nplstm.training.trainer.train with run_dir) writes config.json, history.json and
checkpoint.npz; the command line, the plots and the HTML report all read them through here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import load_model

if TYPE_CHECKING:
    from ..layers import Model
    from ..tasks import Task


@dataclass
class Run:
    """What a run directory holds."""
    path: Path
    config: dict                             # config.json: {"train", "model", "task"}
    history: dict                            # history.json: History as a dict
    model: Model | None                      # rebuilt from checkpoint.npz; None without one
    task: Task                               # make_task(config's task name, **its options)


def _read_json(path: Path, name: str) -> dict:
    try:
        value = json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"run dir {path}: no {name} (expected a directory written by `nplstm train`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"run dir {path}: {name} is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"run dir {path}: {name} is not as `nplstm train` writes it (not a JSON object)")
    return value


def read_config(run_dir) -> dict:
    """A run's config.json, {"train", "model", "task"}, each a dict; ValueError if it is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run dir {path}: no such directory")
    config = _read_json(path, "config.json")
    if not all(isinstance(config.get(k), dict) for k in ("train", "model", "task")):
        raise ValueError(f"run dir {path}: config.json is not as `nplstm train` writes it")
    return config


def load_run(run_dir) -> Run:
    """Read config.json, history.json and checkpoint.npz (if any) of a run; ValueError if it is not one."""
    from ..tasks import make_task

    path = Path(run_dir)
    config, history = read_config(path), _read_json(path, "history.json")
    if not isinstance(history.get("records"), list):
        raise ValueError(f"run dir {path}: history.json is not as `nplstm train` writes it")
    checkpoint = path / "checkpoint.npz"
    model = load_model(checkpoint) if checkpoint.exists() else None
    task = make_task(config["task"].get("name"), **(config["task"].get("options") or {}))
    return Run(path, config, history, model, task)


def verdict(history: dict, batch_size: int) -> tuple[bool, str]:
    """(solved, one sentence in the paper's terms) from a history (History as a dict)."""
    h = history
    if h.get("solved"):
        return True, (f"SOLVED by the paper's criterion after {h['step_solved']:,} updates = "
                      f"{h['sequences_to_solve']:,} training sequences ({h['wall_seconds']:.0f} s)")
    stopped = f"; stopped: {h['stopped']}" if h.get("stopped") else ""
    return False, (f"not solved by the paper's criterion in {h['steps_done']:,} updates "
                   f"({h['steps_done'] * batch_size:,} sequences, {h['wall_seconds']:.0f} s){stopped}")
