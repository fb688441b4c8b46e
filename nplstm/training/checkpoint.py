"""Checkpoints: named arrays plus JSON metadata in one .npz, written atomically, read without pickle.

A checkpoint is an ordinary .npz (np.savez): every array is numeric, bool or unicode, and the
metadata is the UTF-8 bytes of a JSON object under the key "meta.json" (uint8). A write goes to
a temporary file in the same directory, is fsynced, then os.replace'd onto the path, so a
crash leaves either the old checkpoint or the new one, never half of one; the temporary file a
killed write leaves behind is removed by the next write of the same path. Reading never trusts
the file: whatever is wrong with it (cut, flipped bytes, edited entries) is one ValueError line.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..gru import GRU
from ..data import Scaler
from ..layers import LSTM, Embedding, Linear, Model
from ..variants import VANILLA

META_KEY = "meta.json"

# What reading a damaged zip or .npy raises: BadZipFile (a CRC, a directory that does not add up),
# ValueError (an .npy header, a name that is not UTF-8), EOFError (a cut entry), NotImplementedError
# ("zip file version", flag bits 5 and 6), OSError (a seek before the file's start), zlib.error (a
# garbled deflated entry), and for absurd values struct.error, OverflowError, MemoryError, RuntimeError.
CORRUPT = (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError, OSError, zlib.error,
           struct.error, OverflowError, MemoryError, RuntimeError)


def atomic_write(path, write) -> None:
    """Call write(f) on a temporary binary file beside `path`, then move it onto `path` atomically.

    On any failure the temporary file is removed and `path` is left as it was. After a
    success, the temporary files of earlier writes of `path` that were killed are removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            started = os.fstat(f.fileno()).st_mtime_ns
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _remove_stale_temporaries(path, started)
    with contextlib.suppress(OSError):      # make the rename itself durable; not possible on every OS
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _remove_stale_temporaries(path: Path, before_ns: int) -> None:
    """Remove the regular files `.{path.name}.XXXXXXXX.tmp` beside path last written before before_ns."""
    # mkstemp's names: prefix + 8 characters of [a-z0-9_] + suffix; nothing else matches
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}\.tmp")
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            with contextlib.suppress(OSError):
                if (pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                        and entry.stat(follow_symlinks=False).st_mtime_ns < before_ns):
                    os.unlink(entry.path)


def write_json(path, obj) -> None:
    """Write obj as indented JSON, atomically."""
    text = json.dumps(obj, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `arrays` (name -> ndarray, no object dtype) and `meta` (a JSON-serializable dict) to path atomically."""
    if not isinstance(meta, dict):
        raise ValueError(f"meta: expected a dict (saved as a JSON object), got {type(meta).__name__}")
    for name, a in arrays.items():
        if name == META_KEY:
            raise ValueError(f"arrays: the name {META_KEY!r} is reserved for the metadata")
        if not isinstance(a, np.ndarray) or a.dtype.hasobject:
            raise ValueError(f"arrays[{name!r}]: expected a numeric, bool or unicode ndarray, got "
                             f"{getattr(a, 'dtype', type(a).__name__)}; checkpoints hold no pickled objects")
    meta_bytes = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays, **{META_KEY: meta_bytes}))


class _Pickled(Exception):
    """An .npy entry whose dtype holds Python objects, which only pickle could read."""


class _Malformed(Exception):
    """An archive that zipfile and numpy read but np.savez never writes; the message says how."""


def load_checkpoint(path, required=()) -> tuple[dict[str, np.ndarray], dict]:
    """Read a checkpoint written by save_checkpoint -> (arrays, meta), meta a dict.

    Raises a one-line ValueError naming the file for a missing, unreadable, truncated or corrupt
    file, a file holding pickled data, metadata that is not a UTF-8 JSON object, or one that lacks
    an array named in `required`. The file is only read.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path}: no such file")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(max(0, f.seek(0, os.SEEK_END) - 22))
            end = f.read()
    except OSError as e:
        raise ValueError(f"checkpoint {path} cannot be read ({_brief(e)})") from None
    if magic != b"PK\x03\x04":      # np.load would call anything not zip or .npy "pickled"
        raise ValueError(f"checkpoint {path} is not an .npz archive (corrupt, or not a checkpoint)")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            _check_end_record(end, len(infos))
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy"):
                    raise _Malformed(f"entry {info.filename!r} is not an .npy array")
                if name in arrays:
                    raise _Malformed(f"two entries named {info.filename!r}")
                if info.flag_bits & 1:
                    raise _Malformed(f"entry {info.filename!r} is encrypted")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):   # np.savez(_compressed)'s
                    raise _Malformed(f"entry {info.filename!r} uses compression method {info.compress_type}")
                with z.open(info) as member:
                    arrays[name] = _read_npy(member, info.file_size)
    except _Pickled:
        raise ValueError(f"checkpoint {path} contains pickled data; refusing to load it "
                         "(checkpoints never need pickle)") from None
    except _Malformed as e:
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({e})") from None
    except CORRUPT as e:
        raise ValueError(f"checkpoint {path} is truncated or corrupt ({_brief(e)})") from None
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path}: no {META_KEY!r} entry; not written by nplstm.save_checkpoint")
    raw = arrays.pop(META_KEY)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"checkpoint {path}: metadata should be uint8 bytes, got {raw.dtype.name}{raw.shape}")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:       # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"checkpoint {path}: unreadable metadata ({_brief(e)})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path}: metadata should be a JSON object, got {type(meta).__name__}")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"checkpoint {path}: missing array {missing[0]!r} ({len(missing)} missing in all)")
    return arrays, meta


def _check_end_record(end: bytes, entries: int) -> None:
    """The file's last 22 bytes must be the zip end record (np.savez writes no archive comment), counting
    the entries the central directory lists: zipfile never compares the two, so a damaged directory
    (a record's comment length, say) could hide entries."""
    if len(end) != 22 or end[:4] != b"PK\x05\x06" or end[20:] != b"\0\0":
        raise _Malformed("the file does not end with a zip end record")
    declared = struct.unpack("<H", end[10:12])[0]
    if declared != min(entries, 0xFFFF):            # a zip64 archive of more entries writes 0xFFFF here
        raise _Malformed(f"the directory lists {entries} entries, the end record {declared}")


def _read_npy(f, size: int) -> np.ndarray:
    """The array of one .npy member of `size` bytes, once its header is known to describe exactly those bytes."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):     # np.savez writes 3.0 only for non-ASCII field names
        raise _Malformed(f"an .npy entry of format version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        raise _Pickled
    nbytes = math.prod(shape) * dtype.itemsize       # Python ints: an absurd shape cannot overflow
    if f.tell() + nbytes != size:                    # checked before read_array allocates nbytes
        raise _Malformed(f"an .npy header describes {dtype.name}{shape} ({nbytes} bytes), "
                         f"the entry holds {size - f.tell()} bytes after it")
    f.seek(0)
    a = np.lib.format.read_array(f, allow_pickle=False)
    if f.read(1):                                    # also reaches the end, where zipfile checks the CRC
        raise _Malformed("bytes after an .npy array")
    return a


def _brief(err: BaseException) -> str:
    """An exception as one short line: its type and its message with whitespace collapsed."""
    text = " ".join(str(err).split())
    text = text[:200] + "..." if len(text) > 200 else text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def model_config(model: Model) -> dict:
    """The JSON-serializable description of a Model from which model_from_config rebuilds it.
    Greff's variant flags appear only where they differ from the vanilla LSTM's, and the parts of a model
    for your own data (an embedding's vocab_size, dropout, target) only where it has them, so a vanilla
    model's description is the same as before either existed."""
    c = model.lstm.config
    cfg = {"input_size": c.input_size, "hidden_size": c.hidden_size, "num_layers": c.num_layers,
           "bidirectional": c.bidirectional}
    if model.is_gru:                         # a GRU has none of the LSTM's flags
        cfg = {"cell": "gru", **cfg}
    else:
        cfg.update({"peephole": c.peephole, "forget_gate": c.forget_gate,
                    **{k: getattr(c, k) for k in VARIANT_FIELDS if getattr(c, k) != getattr(VANILLA, k)}})
    cfg.update({"output_size": int(model.head.params["W"].shape[1]), "many_to_one": bool(model.many_to_one),
                "dtype": model.dtype.name})
    if model.embedding is not None:
        cfg["vocab_size"] = model.embedding.num_embeddings
    if model.dropout:
        cfg["dropout"] = model.dropout
    if getattr(model, "target", None) is not None:
        cfg["target"] = model.target
    return cfg


MODEL_FIELDS = {"input_size": int, "hidden_size": int, "num_layers": int, "bidirectional": bool,
                "peephole": (str, type(None)), "forget_gate": bool, "output_size": int, "many_to_one": bool,
                "dtype": str}
VARIANT_FIELDS = {"input_gate": bool, "output_gate": bool, "input_activation": str, "output_activation": str,
                  "coupled": bool, "gate_recurrence": bool}   # optional: vanilla when absent
DATA_FIELDS = {"vocab_size": int, "dropout": (int, float), "target": str}   # optional: absent for the tasks' models
TARGETS = ("classes", "values")


def model_from_config(cfg: dict, *, seed: int = 0, forget_bias: float = 1.0, path=None) -> Model:
    """A freshly initialised LSTM + Linear head of the shape model_config describes: the one factory
    behind build_model, load_model and the run readers. The head's seed is seed + 1.

    A cfg that is not such a dict (a key missing, a value of the wrong type or out of range) raises a
    ValueError naming the key; path only names the file in that message.
    """
    where = f"checkpoint {path}: model configuration" if path is not None else "model configuration"
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(cfg).__name__}")
    if cfg.get("cell", "lstm") not in ("lstm", "gru"):
        raise ValueError(f"{where}: 'cell' expected 'lstm' or 'gru', got {cfg.get('cell')!r}")
    gru = cfg.get("cell") == "gru"
    for key, kind in MODEL_FIELDS.items():
        if gru and key in ("peephole", "forget_gate"):
            continue
        value = cfg.get(key, KeyError)
        if value is KeyError:
            raise ValueError(f"{where}: missing {key!r}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: {key!r} has the wrong type ({value!r})")
    unknown = sorted(set(cfg) - set(MODEL_FIELDS) - set(VARIANT_FIELDS) - set(DATA_FIELDS) - {"cell"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    for key, kind in DATA_FIELDS.items():
        if key in cfg and (not isinstance(cfg[key], kind) or isinstance(cfg[key], bool)):
            raise ValueError(f"{where}: {key!r} has the wrong type ({cfg[key]!r})")
    if cfg.get("target", "values") not in TARGETS:
        raise ValueError(f"{where}: 'target' expected one of {TARGETS}, got {cfg['target']!r}")
    flags = {k: cfg[k] for k in VARIANT_FIELDS if k in cfg}
    for key, value in flags.items():
        if not isinstance(value, VARIANT_FIELDS[key]):
            raise ValueError(f"{where}: {key!r} has the wrong type ({value!r})")
    if gru and (flags or {"peephole", "forget_gate"} & set(cfg)):
        raise ValueError(f"{where}: a GRU has no LSTM variant flags, got {sorted(set(flags) | ({'peephole', 'forget_gate'} & set(cfg)))}")
    try:
        dtype = np.dtype(cfg["dtype"])
        if gru:
            lstm = GRU(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                       bidirectional=cfg["bidirectional"], dtype=dtype, seed=seed)
        else:
            lstm = LSTM(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                        bidirectional=cfg["bidirectional"], peephole=cfg["peephole"], forget_gate=cfg["forget_gate"],
                        **flags, dtype=dtype, seed=seed, forget_bias=forget_bias)
        head = Linear(cfg["hidden_size"] * lstm.config.num_directions, cfg["output_size"], dtype=dtype, seed=seed + 1)
        embedding = None
        if "vocab_size" in cfg:
            embedding = Embedding(cfg["vocab_size"], cfg["input_size"], dtype=dtype, seed=seed + 2)
        model = Model(lstm, head, many_to_one=cfg["many_to_one"], embedding=embedding, dropout=cfg.get("dropout", 0.0))
    except (TypeError, ValueError, MemoryError) as err:    # MemoryError: sizes too large to allocate
        raise ValueError(f"{where}: {err}") from None
    model.target = cfg.get("target")
    return model


def params_from(arrays: dict[str, np.ndarray], model: Model, path) -> dict[str, np.ndarray]:
    """The "params/{key}" arrays of a checkpoint, checked against the model's keys, shapes and dtypes,
    and refused if any value is NaN or Inf (a resumed run would otherwise train on it silently)."""
    params = {}
    for key, p in model.params.items():
        a = arrays.get("params/" + key)
        if a is None:
            raise ValueError(f"checkpoint {path}: missing parameter {key!r}")
        if a.shape != p.shape or a.dtype != p.dtype:
            raise ValueError(f"checkpoint {path}: parameter {key!r} is {a.dtype.name}{a.shape}, "
                             f"the model expects {p.dtype.name}{p.shape}")
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            raise ValueError(f"checkpoint {path}: parameter {key!r} is not finite "
                             f"(first at index {index}: {a[index]})")
        params[key] = a
    return params


def save_model(path, model: Model, extra_meta: dict | None = None) -> None:
    """Save a Model's parameters and shape (meta "model") plus any extra JSON metadata."""
    arrays = {**{"params/" + k: v for k, v in model.params.items()}, **scaler_arrays(model)}
    save_checkpoint(path, arrays, {**(extra_meta or {}), "model": model_config(model)})


def scaler_arrays(model: Model) -> dict[str, np.ndarray]:
    """The model's input and target standardisation as checkpoint arrays ("scaler/..."); {} without one."""
    return {} if model.scaler is None else model.scaler.arrays()


def load_model(path, *, with_meta: bool = False):
    """Rebuild the Model saved by save_model (or found in a training checkpoint); with_meta: return
    (model, meta) so that a caller can read the rest of the metadata (a charlm's vocabulary)."""
    arrays, meta = load_checkpoint(path)
    if "model" not in meta:
        raise ValueError(f"checkpoint {path}: no model configuration in its metadata")
    _check_sizes_fit(meta["model"], arrays, path)
    model = model_from_config(meta["model"], path=path)
    best = {"params/" + k[len("best/"):]: v for k, v in arrays.items() if k.startswith("best/")}
    model.load_params(params_from(best or arrays, model, path))   # a restore_best run: the best parameters
    model.scaler = Scaler.from_arrays(arrays, f"checkpoint {path}")
    _check_scaler(model, path)
    return (model, meta) if with_meta else model


def _check_scaler(model: Model, path) -> None:
    """The saved standardisation must have one entry per input feature and, for values, per output."""
    sc = model.scaler
    if sc is None:
        return
    I = None if model.embedding is not None else model.lstm.config.input_size
    if I is None or sc.x_mean.shape != (I,) or (sc.y_mean is not None and sc.y_mean.shape != (model.head.out_features,)):
        raise ValueError(f"checkpoint {path}: the saved scaler has {sc.x_mean.shape[0]} input and "
                         f"{'no' if sc.y_mean is None else sc.y_mean.shape[0]} output entries; the model takes "
                         f"{I or 'token ids'} inputs and has {model.head.out_features} outputs")


def _check_sizes_fit(cfg, arrays: dict[str, np.ndarray], path) -> None:
    """Refuse, before anything is allocated, a model configuration that no stored parameters could
    match: a valid one has each of input_size, hidden_size and output_size at most the number of stored
    parameter values, and num_layers at most the number of stored parameter arrays. (An edited 10**12
    would otherwise build a model the size of the machine before params_from could refuse it.)"""
    if not isinstance(cfg, dict):
        return                                  # model_from_config names what is wrong with it
    stored = [a for name, a in arrays.items() if name.startswith("params/")]
    values = sum(a.size for a in stored)
    for key, bound, what in (("input_size", values, "values"), ("hidden_size", values, "values"),
                             ("output_size", values, "values"), ("num_layers", len(stored), "arrays")):
        size = cfg.get(key)
        if isinstance(size, int) and size > bound:
            raise ValueError(f"checkpoint {path}: model configuration: {key!r} is {size}, "
                             f"more than the {bound} parameter {what} it holds")
