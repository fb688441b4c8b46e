"""Training: the loop, checkpoints, run directories, per-task recipes and the paper suite.

trainer (TrainConfig, train, build_model) -> checkpoint (atomic, pickle-free .npz) -> runs (a run
directory read back, its verdict); recipes (each task's defaults); reproduce (`nplstm reproduce`);
monitor (what the trainer records about the inside of a run). The tasks are in nplstm.tasks.
"""
from .checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from .runs import Run, load_run, verdict
from .trainer import History, TrainConfig, build_model, train

__all__ = ["TrainConfig", "History", "train", "build_model", "save_checkpoint", "load_checkpoint",
           "save_model", "load_model", "Run", "load_run", "verdict"]
