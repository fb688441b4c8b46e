"""Checkpoints: named arrays plus JSON metadata in one .npz, written atomically, read without pickle.

A checkpoint is an ordinary .npz (np.savez): every array is numeric, bool or unicode, and the
metadata is the UTF-8 bytes of a JSON text under the key "meta.json" (uint8). A write goes to
a temporary file in the same directory, is fsynced, then os.replace'd onto the path, so a
crash leaves either the old checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..layers import LSTM, Linear, Model

META_KEY = "meta.json"


def atomic_write(path, write) -> None:
    """Call write(f) on a temporary binary file beside `path`, then move it onto `path` atomically.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):      # make the rename itself durable; not possible on every OS
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json(path, obj) -> None:
    """Write obj as indented JSON, atomically."""
    text = json.dumps(obj, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `arrays` (name -> ndarray, no object dtype) and `meta` (JSON-serializable) to path atomically."""
    for name, a in arrays.items():
        if name == META_KEY:
            raise ValueError(f"arrays: the name {META_KEY!r} is reserved for the metadata")
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise ValueError(f"arrays[{name!r}]: expected a numeric, bool or unicode ndarray, got "
                             f"{getattr(a, 'dtype', type(a).__name__)}; checkpoints hold no pickled objects")
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays, **{META_KEY: meta_bytes}))


def load_checkpoint(path, required=()) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by save_checkpoint -> (arrays, meta).

    Raises a one-line ValueError for a missing, truncated or corrupt file, a file holding
    pickled data, or one that lacks an array named in `required`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path}: no such file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":      # np.load would call anything not zip or .npy "pickled"
            raise ValueError(f"checkpoint {path} is not an .npz archive (corrupt, or not a checkpoint)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickled" in str(e):
            raise ValueError(f"checkpoint {path} contains pickled data; refusing to load it "
                             "(checkpoints never need pickle)") from None
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e})") from None
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path}: no {META_KEY!r} entry; not written by nplstm.save_checkpoint")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except ValueError as e:
        raise ValueError(f"checkpoint {path}: unreadable metadata ({e})") from None
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"checkpoint {path}: missing array {missing[0]!r} ({len(missing)} missing in all)")
    return arrays, meta


def model_config(model: Model) -> dict:
    """The JSON-serializable description of a Model from which model_from_config rebuilds it."""
    c = model.lstm.config
    return {"input_size": c.input_size, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
            "bidirectional": c.bidirectional, "peephole": c.peephole, "forget_gate": c.forget_gate,
            "output_size": int(model.head.params["W"].shape[1]), "many_to_one": bool(model.many_to_one),
            "dtype": model.dtype.name}


MODEL_FIELDS = {"input_size": int, "hidden_size": int, "num_layers": int, "bidirectional": bool,
                "peephole": (str, type(None)), "forget_gate": bool, "output_size": int, "many_to_one": bool,
                "dtype": str}


def model_from_config(cfg: dict, *, seed: int = 0, forget_bias: float = 1.0, path=None) -> Model:
    """A freshly initialised LSTM + Linear head of the shape model_config describes: the one factory
    behind build_model, load_model and the run readers. The head's seed is seed + 1.

    A cfg that is not such a dict (a key missing, a value of the wrong type or out of range) raises a
    ValueError naming the key; path only names the file in that message.
    """
    where = f"checkpoint {path}: model configuration" if path is not None else "model configuration"
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    for key, kind in MODEL_FIELDS.items():
        value = cfg.get(key, KeyError)
        if value is KeyError:
            raise ValueError(f"{where}: missing {key!r}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {key!r} has the wrong type ({value!r})")
    try:
        dtype = np.dtype(cfg["dtype"])
        lstm = LSTM(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                    bidirectional=cfg["bidirectional"], peephole=cfg["peephole"], forget_gate=cfg["forget_gate"],
                    dtype=dtype, seed=seed, forget_bias=forget_bias)
        head = Linear(cfg["hidden_size"] * lstm.config.num_directions, cfg["output_size"], dtype=dtype, seed=seed + 1)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    return Model(lstm, head, many_to_one=cfg["many_to_one"])


def params_from(arrays: dict[str, np.ndarray], model: Model, path) -> dict[str, np.ndarray]:
    """The "params/{key}" arrays of a checkpoint, checked against the model's keys, shapes and dtypes."""
    params = {}
    for key, p in model.params.items():
        a = arrays.get("params/" + key)
        if a is None:
            raise ValueError(f"checkpoint {path}: missing parameter {key!r}")
        if a.shape != p.shape or a.dtype != p.dtype:
            raise ValueError(f"checkpoint {path}: parameter {key!r} is {a.dtype.name}{a.shape}, "
                             f"the model expects {p.dtype.name}{p.shape}")
        params[key] = a
    return params


def save_model(path, model: Model, extra_meta: dict | None = None) -> None:
    """Save a Model's parameters and shape (meta "model") plus any extra JSON metadata."""
    arrays = {"params/" + k: v for k, v in model.params.items()}
    save_checkpoint(path, arrays, {**(extra_meta or {}), "model": model_config(model)})


def load_model(path, *, with_meta: bool = False):
    """Rebuild the Model saved by save_model (or found in a training checkpoint); with_meta: return
    (model, meta) so that a caller can read the rest of the metadata (a charlm's vocabulary)."""
    arrays, meta = load_checkpoint(path)
    if "model" not in meta:
        raise ValueError(f"checkpoint {path}: no model configuration in its metadata")
    model = model_from_config(meta["model"], path=path)
    model.load_params(params_from(arrays, model, path))
    return (model, meta) if with_meta else model
