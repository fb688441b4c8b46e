"""Checkpoints: round trips, no pickle, atomic writes that survive a crash, clear errors."""
import os

import numpy as np
import pytest

import nplstm
from nplstm.training import checkpoint
from nplstm.training.checkpoint import load_checkpoint, load_model, save_checkpoint, save_model

ARRAYS = {"params/lstm.l0.W": np.arange(12, dtype=np.float32).reshape(3, 4), "optim/t": np.array(7, np.int64),
          "x64": np.linspace(0, 1, 5), "mask": np.array([True, False]), "names": np.array(["a", "bc"])}
META = {"step": 7, "rng": {"state": {"state": 2 ** 100 + 1}}, "history": [{"loss": 0.5}], "text": "ü"}


def test_round_trip(tmp_path):
    save_checkpoint(tmp_path / "c.npz", ARRAYS, META)
    arrays, meta = load_checkpoint(tmp_path / "c.npz")
    assert meta == META and sorted(arrays) == sorted(ARRAYS)
    for k, a in ARRAYS.items():
        assert arrays[k].dtype == a.dtype and np.array_equal(arrays[k], a), k


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object), **{"meta.json": np.frombuffer(b"{}", np.uint8)})
    with pytest.raises(ValueError, match=r"checkpoint .*evil.npz contains pickled data; refusing to load it "
                                         r"\(checkpoints never need pickle\)"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="checkpoints hold no pickled objects"):
        save_checkpoint(tmp_path / "c.npz", {"a": np.array([None], dtype=object)}, {})


def _fail_replace(src, dst):
    raise OSError("disk full")


def _fail_mid_write(f, **arrays):
    f.write(b"PK\x03\x04 partial zip")
    raise OSError("killed mid-write")


@pytest.mark.parametrize("where", ["replace", "writer"])
def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch, where):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, ARRAYS, META)
    before = path.read_bytes()
    if where == "replace":
        monkeypatch.setattr(os, "replace", _fail_replace)
    else:
        monkeypatch.setattr(np, "savez", _fail_mid_write)
    with pytest.raises(OSError):
        save_checkpoint(path, {"params/lstm.l0.W": np.zeros((3, 4), np.float32)}, {"step": 8})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]           # no stray temporary file
    arrays, meta = load_checkpoint(path)
    assert meta["step"] == 7 and np.array_equal(arrays["params/lstm.l0.W"], ARRAYS["params/lstm.l0.W"])


def test_truncated_missing_and_foreign_files_give_clear_errors(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, ARRAYS, META)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"c.npz is truncated or corrupt \(") as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="nope.npz: no such file"):
        load_checkpoint(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        load_checkpoint(tmp_path / "text.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="no 'meta.json' entry"):
        load_checkpoint(tmp_path / "plain.npz")
    save_checkpoint(path, ARRAYS, META)
    with pytest.raises(ValueError, match="missing array 'params/head.W'"):
        load_checkpoint(path, required=["optim/t", "params/head.W"])


def test_reserved_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "c.npz", {"meta.json": np.zeros(1)}, {})


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True, peephole="full",
                                                 forget_gate=False, dtype=np.float64)])
def test_save_and_load_model(tmp_path, kwargs):
    lstm = nplstm.LSTM(3, 5, seed=11, **kwargs)
    model = nplstm.Model(lstm, nplstm.Linear(5 * lstm.config.num_directions, 2, seed=12, dtype=lstm.dtype),
                         many_to_one=True)
    save_model(tmp_path / "m.npz", model, {"note": "hello"})
    loaded = load_model(tmp_path / "m.npz")
    assert checkpoint.model_config(loaded) == checkpoint.model_config(model)
    x = np.random.default_rng(0).standard_normal((4, 6, 3)).astype(lstm.dtype)
    np.testing.assert_array_equal(loaded.forward(x, lengths=[6, 2, 3, 1]), model.forward(x, lengths=[6, 2, 3, 1]))
    assert load_checkpoint(tmp_path / "m.npz")[1]["note"] == "hello"


def test_load_model_checks_shapes(tmp_path):
    model = nplstm.Model(nplstm.LSTM(3, 5), nplstm.Linear(5, 2))
    save_model(tmp_path / "m.npz", model)
    arrays, meta = load_checkpoint(tmp_path / "m.npz")
    arrays["params/head.W"] = np.zeros((5, 3), np.float32)
    save_checkpoint(tmp_path / "m.npz", arrays, meta)
    with pytest.raises(ValueError, match=r"parameter 'head.W' is float32\(5, 3\), the model expects float32\(5, 2\)"):
        load_model(tmp_path / "m.npz")
