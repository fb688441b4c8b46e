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


def load_run(run_dir) -> Run:
    """Read config.json, history.json and checkpoint.npz (if any) of a run; ValueError if it is not one."""
    from ..tasks import make_task

    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"run dir {path}: no such directory")
    found = {}
    for name in ("config.json", "history.json"):
        try:
            found[name] = json.loads((path / name).read_text())
        except FileNotFoundError:
            raise ValueError(f"run dir {path}: no {name} (expected a directory written by `nplstm train`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"run dir {path}: {name} is not valid JSON ({err})") from None
    config, history = found["config.json"], found["history.json"]
    if not isinstance(history, dict) or not isinstance(config, dict) or not isinstance(history.get("records"), list) \
            or not isinstance(config.get("task"), dict):
        raise ValueError(f"run dir {path}: history.json or config.json is not as `nplstm train` writes them")
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
