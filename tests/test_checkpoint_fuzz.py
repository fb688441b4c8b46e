"""The loader survives any file: a damaged or edited checkpoint is one ValueError line naming the file,
never a traceback of another type, and reading it changes nothing on disk."""
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nplstm.tasks import make_task
from nplstm.training.checkpoint import load_checkpoint, load_model, save_checkpoint, write_json
from nplstm.training.trainer import TrainConfig, build_model, train


def fuzz(examples: int):
    """Hypothesis settings for one mutation kind: `examples` files, no per-example deadline."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The bytes of a real training checkpoint (adding, H = 4, three updates), with its arrays and meta."""
    run_dir = tmp_path_factory.mktemp("run")
    task = make_task("adding", T=10, test_size=16)
    train(build_model(task, hidden_size=4), task,
          TrainConfig(steps=3, eval_every=3, batch_size=4, run_dir=run_dir, progress=False, log_every=0))
    path = run_dir / "checkpoint.npz"
    arrays, meta = load_checkpoint(path)
    return path.read_bytes(), arrays, meta


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    """The one path every mutated file is written to, alone in its directory."""
    return tmp_path_factory.mktemp("fuzz") / "checkpoint.npz"


def try_loaders(path: Path):
    """Run load_checkpoint and load_model on path: each may succeed or raise a one-line ValueError that
    starts with "checkpoint {path}"; anything else propagates. Returns (arrays, meta) or None, and checks
    that neither the file's bytes nor its directory changed."""
    before = path.read_bytes(), sorted(os.listdir(path.parent))
    loaded = None
    for load in (load_checkpoint, lambda p: load_checkpoint(p, required=("optim/t",)), load_model):
        try:
            result = load(path)
        except ValueError as err:
            message = str(err)
            assert message.startswith(f"checkpoint {path}") and "\n" not in message, message
        else:
            loaded = result if load is load_checkpoint else loaded
    assert (path.read_bytes(), sorted(os.listdir(path.parent))) == before
    return loaded


def same_as(loaded, pristine) -> bool:
    """Whether a loaded (arrays, meta) is exactly the pristine checkpoint, bit for bit."""
    (arrays, meta), (_, arrays0, meta0) = loaded, pristine
    same_meta = json.dumps(meta, sort_keys=True) == json.dumps(meta0, sort_keys=True)     # NaN-proof
    return same_meta and sorted(arrays) == sorted(arrays0) and all(
        arrays[k].dtype == arrays0[k].dtype and arrays[k].tobytes() == arrays0[k].tobytes() for k in arrays0)


def npz_bytes(arrays: dict, meta=None, raw_meta=None) -> bytes:
    """An .npz as np.savez writes it (valid CRCs): arrays plus meta as JSON, or raw_meta as the meta.json entry."""
    if raw_meta is None:
        raw_meta = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{"meta.json": raw_meta})
    return buffer.getvalue()


# --- byte-level damage: flips, cuts, garbage ------------------------------------------------------------

def zip_header_offsets(raw: bytes) -> list[int]:
    """The offsets of every local header, central directory record and end record: where one flipped
    byte changes how the archive is read (version, flags, sizes, offsets) rather than what it holds."""
    offsets = []
    for signature, size in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46), (b"PK\x05\x06", 22)):
        at = raw.find(signature)
        while at >= 0:
            offsets.extend(range(at, min(at + size, len(raw))))
            at = raw.find(signature, at + 1)
    return offsets


@fuzz(200)
@given(data=st.data())
def test_single_flipped_byte(pristine, spot, data):
    raw = bytearray(pristine[0])
    i = data.draw(st.integers(0, len(raw) - 1) | st.sampled_from(zip_header_offsets(raw)), label="offset")
    raw[i] ^= data.draw(st.integers(1, 255), label="xor")
    spot.write_bytes(raw)
    loaded = try_loaders(spot)
    # CRC-32 catches any one-byte change of an entry, the end record's entry count one of the directory
    assert loaded is None or same_as(loaded, pristine)


@fuzz(60)
@given(data=st.data())
def test_flipped_byte_in_a_compressed_checkpoint(pristine, spot, data):
    """np.savez_compressed's deflated entries: a flip there is a zlib.error or a CRC mismatch inside zipfile."""
    _, arrays, meta = pristine
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
    raw = bytearray(buffer.getvalue())
    raw[data.draw(st.integers(0, len(raw) - 1), label="offset")] ^= data.draw(st.integers(1, 255), label="xor")
    spot.write_bytes(raw)
    loaded = try_loaders(spot)
    assert loaded is None or same_as(loaded, pristine)


@fuzz(100)
@given(data=st.data())
def test_several_flipped_bytes(pristine, spot, data):
    raw = bytearray(pristine[0])
    offsets = st.integers(0, len(raw) - 1) | st.sampled_from(zip_header_offsets(raw))
    for i, x in data.draw(st.lists(st.tuples(offsets, st.integers(1, 255)), min_size=2, max_size=12), label="flips"):
        raw[i] ^= x
    spot.write_bytes(raw)
    try_loaders(spot)


@fuzz(100)
@given(data=st.data())
def test_truncated_anywhere(pristine, spot, data):
    raw = pristine[0]
    spot.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1), label="length")])
    assert try_loaders(spot) is None                    # a cut always loses the end-of-directory record


@fuzz(60)
@given(garbage=st.binary(min_size=1, max_size=300), where=st.sampled_from(["end", "middle"]))
def test_garbage_appended_or_inserted(pristine, spot, garbage, where):
    raw = pristine[0]
    mid = len(raw) // 2
    spot.write_bytes(raw + garbage if where == "end" else raw[:mid] + garbage + raw[mid:])
    loaded = try_loaders(spot)
    assert loaded is None or same_as(loaded, pristine)


# --- edited entries, each a valid zip --------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=8)
MODEL_KEYS = ["input_size", "hidden_size", "num_layers", "bidirectional", "peephole", "forget_gate",
              "output_size", "many_to_one", "dtype"]


@fuzz(150)
@given(data=st.data())
def test_edited_metadata(pristine, spot, data):
    _, arrays, meta = pristine
    meta = json.loads(json.dumps(meta))                # a deep copy to edit
    top = data.draw(st.sampled_from(sorted(meta)), label="key")
    target, key = (meta["model"], data.draw(st.sampled_from(MODEL_KEYS), label="model key")) \
        if top == "model" and data.draw(st.booleans(), label="inside model") else (meta, top)
    if data.draw(st.booleans(), label="delete"):
        del target[key]
    else:
        target[key] = data.draw(JSON, label="value")
    spot.write_bytes(npz_bytes(arrays, meta))
    try_loaders(spot)


@pytest.mark.parametrize("key, size", [("hidden_size", 10 ** 9), ("input_size", 10 ** 12), ("output_size", 2 ** 62),
                                       ("num_layers", 2 ** 62), ("hidden_size", 2 ** 63)])
def test_absurd_model_sizes_are_refused_before_building(pristine, spot, key, size):
    """Each would allocate terabytes (MemoryError) or, num_layers, build layers until the machine runs out."""
    _, arrays, meta = pristine
    spot.write_bytes(npz_bytes(arrays, {**meta, "model": {**meta["model"], key: size}}))
    with pytest.raises(ValueError, match=rf"model configuration: '{key}' is {size}, more than the \d+ parameter"):
        load_model(spot)


@fuzz(60)
@given(meta=JSON | st.binary(max_size=40), shape=st.sampled_from([None, (2, -1)]),
       dtype=st.sampled_from([np.uint8, np.int8, np.float64]))
def test_metadata_not_a_json_object(pristine, spot, meta, shape, dtype):
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    entry = np.frombuffer(raw, np.uint8).astype(dtype)
    if shape and entry.size % 2 == 0:
        entry = entry.reshape(shape)
    spot.write_bytes(npz_bytes(pristine[1], raw_meta=entry))
    loaded = try_loaders(spot)
    assert loaded is None or isinstance(loaded[1], dict)


BAD_ARRAYS = st.sampled_from(["shape", "dtype", "nan", "inf", "object", "delete", "rename", "scalar"])


@fuzz(100)
@given(data=st.data(), how=BAD_ARRAYS)
def test_edited_arrays(pristine, spot, data, how):
    _, arrays, meta = pristine
    arrays = dict(arrays)
    key = data.draw(st.sampled_from(sorted(arrays)), label="key")
    a = arrays[key]
    if how == "shape":
        arrays[key] = np.zeros(data.draw(st.lists(st.integers(0, 5), max_size=3).map(tuple)), a.dtype)
    elif how == "dtype":
        arrays[key] = a.astype(data.draw(st.sampled_from([np.float16, np.float64, np.int64, np.bool_, "U3"])))
    elif how in ("nan", "inf") and a.size and a.dtype.kind == "f":
        a = a.copy()
        a.flat[data.draw(st.integers(0, a.size - 1))] = np.nan if how == "nan" else -np.inf
        arrays[key] = a
    elif how == "object":
        arrays[key] = np.array([{"x": 1}, None], dtype=object)   # np.savez pickles it
    elif how == "delete":
        del arrays[key]
    elif how == "rename":
        arrays[key + "x"] = arrays.pop(key)
    elif how == "scalar":
        arrays[key] = np.array(3.5)
    spot.write_bytes(npz_bytes(arrays, meta))
    try_loaders(spot)
    if how in ("nan", "inf", "object") and key.startswith("params/") and a.dtype.kind == "f":
        with pytest.raises(ValueError, match="not finite" if how != "object" else "pickled"):
            load_model(spot)


def test_non_finite_parameter_is_named(pristine, spot):
    _, arrays, meta = pristine
    W = arrays["params/head.W"].copy()
    W[1, 0] = np.nan
    spot.write_bytes(npz_bytes({**arrays, "params/head.W": W}, meta))
    with pytest.raises(ValueError, match=r"parameter 'head.W' is not finite \(first at index \(1, 0\): nan\)"):
        load_model(spot)


def _npy(header: dict, body: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + body


def _zip(entries, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, payload in entries:
            z.writestr(name, payload)
    return buffer.getvalue()


def _set_encrypted_flag(raw: bytes) -> bytes:
    raw = bytearray(raw)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):   # local and central headers' flag bits
        at = raw.find(signature)
        while at >= 0:
            raw[at + offset] |= 1
            at = raw.find(signature, at + 1)
    return bytes(raw)


F8 = {"descr": "<f8", "fortran_order": False}
META_ENTRY = ("meta.json.npy", _npy({"descr": "|u1", "fortran_order": False, "shape": (2,)}, b"{}"))
CRAFTED = {  # case -> (the zip's entries, with valid CRCs, that np.savez never writes; what the error says)
    "huge shape": ([META_ENTRY, ("a.npy", _npy({**F8, "shape": (10 ** 12, 10 ** 6)}, b"\0" * 8))],
                   r"corrupt \(an .npy header describes float64\(1000000000000, 1000000\) "
                   r"\(8000000000000000000 bytes\), the entry holds 8 bytes after it\)$"),
    "short shape": ([META_ENTRY, ("a.npy", _npy({**F8, "shape": (1,)}, b"\0" * 80))], "the entry holds 80 bytes"),
    "bad header": ([META_ENTRY, ("a.npy", _npy({**F8, "shape": (1,)}, b"")[:-30] + b"x" * 29 + b"\n")],
                   r"corrupt \(ValueError: Cannot parse header"),
    "not npy": ([META_ENTRY, ("a.txt", b"hello")], r"corrupt \(entry 'a.txt' is not an .npy array\)$"),
    "npy version 9": ([META_ENTRY, ("a.npy", b"\x93NUMPY\x09\x00 not a header")], r"format version \(9, 0\)"),
    "duplicate": ([META_ENTRY, META_ENTRY], "two entries named 'meta.json.npy'"),
    "no entries": ([], r"is not an .npz archive"),
    "pickle": ([META_ENTRY, ("a.npy", _npy({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\x80\x04N."))],
               r"contains pickled data; refusing to load it \(checkpoints never need pickle\)$"),
    "lzma": (None, "entry 'meta.json.npy' uses compression method 14"),
    "encrypted": (None, r"entry '.*' is encrypted"),
    "deep json": (b"[" * 100_000 + b"]" * 100_000, r"unreadable metadata \(RecursionError: maximum recursion depth"),
    "huge int json": (b'{"step": ' + b"9" * 5000 + b"}", r"unreadable metadata \(ValueError: Exceeds the limit"),
    "not utf-8": (b'{"step": "\xff"}', r"unreadable metadata \(UnicodeDecodeError: 'utf-8' codec can't decode"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")           # zipfile's, writing the "duplicate" case
@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_archives(pristine, spot, case):
    content, message = CRAFTED[case]
    if case == "lzma":
        raw = _zip([META_ENTRY], zipfile.ZIP_LZMA)
    elif case == "encrypted":
        raw = _set_encrypted_flag(pristine[0])
    elif isinstance(content, bytes):                    # the meta.json entry's bytes
        raw = npz_bytes(pristine[1], raw_meta=np.frombuffer(content, np.uint8))
    else:
        raw = _zip(content)
    spot.write_bytes(raw)
    assert try_loaders(spot) is None
    with pytest.raises(ValueError, match=message):
        load_checkpoint(spot)


def test_compressed_npz_loads(pristine, spot):
    """np.savez_compressed writes the same entries deflated: still a checkpoint."""
    _, arrays, meta = pristine
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays, **{"meta.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
    spot.write_bytes(buffer.getvalue())
    assert same_as(try_loaders(spot), pristine)


# --- temporaries left by killed writes -------------------------------------------------------------------

KILLED_WRITER = """
import sys, time
from nplstm.training.checkpoint import atomic_write
def write(f):
    f.write(b"PK\\x03\\x04 half a checkpoint")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def test_temporary_of_a_killed_write_is_removed_by_the_next(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"a": np.zeros(3)}, {"step": 1})
    before = path.read_bytes()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.kill()                                         # SIGKILL: no handler, no cleanup
    proc.wait()
    proc.stdout.close()
    leftover = [n for n in os.listdir(tmp_path) if n != "checkpoint.npz"]
    assert len(leftover) == 1 and leftover[0].startswith(".checkpoint.npz.") and leftover[0].endswith(".tmp")
    assert path.read_bytes() == before                  # the kill left the old checkpoint whole
    time.sleep(0.05)                                    # past the file system's timestamp granularity
    save_checkpoint(path, {"a": np.ones(3)}, {"step": 2})
    assert os.listdir(tmp_path) == ["checkpoint.npz"]
    assert load_checkpoint(path)[1] == {"step": 2}


def test_only_older_temporaries_of_the_same_target_are_removed(tmp_path):
    path = tmp_path / "checkpoint.npz"
    old = time.time() - 100
    names = {".checkpoint.npz.ab_c9xyz.tmp": "removed",
             ".checkpoint.npz.newer123.tmp": "kept (newer than the write)",
             ".history.json.abcdefgh.tmp": "kept (another target)",
             ".checkpoint.npz.abc.tmp": "kept (not mkstemp's name)",
             "checkpoint.npz.abcdefgh.tmp": "kept (no leading dot)",
             ".checkpoint.npz.abcdefgh.tmp.bak": "kept (other suffix)",
             ".checkpoint.npzXabcdefgh.tmp": "kept (other prefix)"}
    for name in names:
        (tmp_path / name).write_bytes(b"x")
        if "newer" not in name:
            os.utime(tmp_path / name, (old, old))
    os.utime(tmp_path / ".checkpoint.npz.newer123.tmp", (old + 1000, old + 1000))
    (tmp_path / ".checkpoint.npz.dir12345.tmp").mkdir()             # matching name, but not a file
    os.utime(tmp_path / ".checkpoint.npz.dir12345.tmp", (old, old))
    save_checkpoint(path, {"a": np.zeros(2)}, {})
    write_json(tmp_path / "config.json", {"a": 1})
    left = set(os.listdir(tmp_path))
    assert left == {"checkpoint.npz", "config.json", ".checkpoint.npz.dir12345.tmp",
                    *(n for n, fate in names.items() if fate.startswith("kept"))}


# --- the CLI: one line on stderr, exit code 1 ------------------------------------------------------------

def run_cli(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "nplstm", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr


def one_line_error(rc, stderr):
    return rc != 0 and "Traceback" not in stderr and len(stderr.splitlines()) == 1


def test_cli_sample_refuses_damaged_checkpoints(pristine, tmp_path):
    raw, arrays, meta = pristine
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0x40
    damaged = {"flipped.npz": bytes(flipped), "cut.npz": raw[:len(raw) // 2], "empty.npz": b"",
               "meta-list.npz": npz_bytes(arrays, raw_meta=np.frombuffer(b"[1, 2]", np.uint8)),
               "model-wrong.npz": npz_bytes(arrays, {**meta, "model": {**meta["model"], "hidden_size": "4"}}),
               "nan.npz": npz_bytes({**arrays, "params/head.b": np.full_like(arrays["params/head.b"], np.nan)}, meta)}
    for name, content in damaged.items():
        (tmp_path / name).write_bytes(content)
        rc, stderr = run_cli("sample", name, cwd=tmp_path)
        assert one_line_error(rc, stderr) and name in stderr, (name, rc, stderr)
        assert (tmp_path / name).read_bytes() == content


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A run dir written by `nplstm train adding --T 10 --steps 3`, to copy and damage."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    rc, stderr = run_cli("train", "adding", "--T", "10", "--steps", "3", "--run-dir", str(run_dir), "--quiet",
                         "--no-progress", cwd=run_dir.parent)
    assert rc == 0, stderr
    return run_dir


def resume_is_refused(cli_run, tmp_path, content: bytes) -> bool:
    """Whether `nplstm train --resume` on a copy of cli_run holding `content` as its checkpoint fails with
    one line on stderr naming the checkpoint, leaving the run dir as it was."""
    run_dir = Path(shutil.copytree(cli_run, tmp_path / "run"))
    (run_dir / "checkpoint.npz").write_bytes(content)
    before = {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)}
    rc, stderr = run_cli("train", "adding", "--T", "10", "--steps", "6", "--run-dir", str(run_dir), "--resume",
                         "--quiet", "--no-progress", cwd=tmp_path)
    after = {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)}
    return one_line_error(rc, stderr) and "checkpoint.npz" in stderr and after == before


def test_cli_resume_refuses_a_damaged_checkpoint(cli_run, tmp_path):
    raw = bytearray((cli_run / "checkpoint.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    assert resume_is_refused(cli_run, tmp_path, bytes(raw))


def test_cli_resume_refuses_a_non_finite_parameter(cli_run, tmp_path):
    arrays, meta = load_checkpoint(cli_run / "checkpoint.npz")
    arrays["params/head.W"] = np.full_like(arrays["params/head.W"], np.inf)
    assert resume_is_refused(cli_run, tmp_path, npz_bytes(arrays, meta))


def _edit(meta, where, value):
    *outer, key = where
    for k in outer:
        meta = meta[k]
    meta[key] = value


# Each of these reaches resume(); before it checked them, each raised the exception named beside it.
UNCHECKED_BY_RESUME = {
    "window.grad_norms=None": (("window", "grad_norms"), None),         # TypeError: 'NoneType' object is not subscriptable
    "task_state on a stateless task": (("task_state",), {"x": 1}),      # AttributeError: no attribute 'set_state'
    "rng.uinteger=-1": (("rng", "uinteger"), -1),                       # OverflowError: negative value to uint32_t
    "history.records=[1]": (("history", "records"), [1]),               # TypeError: 'int' object is not subscriptable
    "history.wall_seconds=None": (("history", "wall_seconds"), None),   # TypeError in train's clock
    "a record without a test loss": (("history", "records"), [{"step": 1, "train_loss": 0.1, "test": {}}]),  # KeyError
    "step disagrees with the history": (("step",), 2),                  # accepted: evaluations out of order
}


@pytest.mark.parametrize("case", UNCHECKED_BY_RESUME)
def test_cli_resume_refuses_edited_metadata(cli_run, tmp_path, case):
    arrays, meta = load_checkpoint(cli_run / "checkpoint.npz")
    _edit(meta, *UNCHECKED_BY_RESUME[case])
    assert resume_is_refused(cli_run, tmp_path, npz_bytes(arrays, meta))
