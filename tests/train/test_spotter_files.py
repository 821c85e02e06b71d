"""The learned spotter's files (a video's flow maps, a trained spotter's weights) are written
through fastmer.store.writer.atomic_write_bytes: the bytes safetensors.save_file writes, the
usual permissions (not safetensors' 0600), no temporary file left, the old file kept when a
write fails."""

import json
import os
import stat

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy_file
from safetensors.torch import save_file as save_torch_file

from fastmer.models.softnet import META_FILE, WEIGHTS_FILE, SoftNet, SpotterModel
from fastmer.phases.intervals import Interval
from fastmer.train.spotting import load_maps, save_maps


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _maps_args(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    maps = {"micro": rng.normal(size=(6, 3, 4, 4)).astype(np.float16), "macro": rng.normal(size=(2, 3, 4, 4)).astype(np.float16)}
    near = {kind: rng.normal(size=(len(m), 3, 4)).astype(np.float32) for kind, m in maps.items()}
    return dict(uid="synth-long/s1/v1", dataset="synth-long", subject="s1", fps=30.0, n_frames=6,
                scales={"micro": (5, 1), "macro": (18, 3)}, maps=maps, near=near,
                truth=[Interval(1, 3, "micro", apex=2)], numbers=[10, 11, 12, 13, 14, 15])


def _spotter(seed: int) -> SpotterModel:
    torch.manual_seed(seed)
    return SpotterModel({"micro": SoftNet(), "macro": SoftNet()}, {"method": "softnet"}, {"micro": 0.5, "macro": 2.0},
                        {"videos": 1})


def test_maps_file_is_what_save_file_writes(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    path = folder / "video-0.safetensors"
    args = _maps_args(0)
    save_maps(path, **args)
    assert os.listdir(folder) == [path.name]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    # save_file's bytes, from the same tensors and metadata
    tensors = {f"{what}.{kind}": np.ascontiguousarray(args[what][kind]) for kind in args["maps"] for what in ("maps", "near")}
    with safe_open(path, "np") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(tensors)
        for key, value in tensors.items():
            got = f.get_tensor(key)
            assert got.dtype == value.dtype and np.array_equal(got, value)
    assert json.loads(meta["fastmer"])["numbers"] == args["numbers"]
    reference = tmp_path / "reference.safetensors"
    save_numpy_file(tensors, str(reference), metadata=meta)
    assert path.read_bytes() == reference.read_bytes()
    (loaded,) = load_maps(tmp_path)
    assert loaded.truth == args["truth"] and loaded.numbers == args["numbers"]


def test_spotter_weights_are_what_save_file_writes(tmp_path):
    model = _spotter(0)
    model.save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([WEIGHTS_FILE, META_FILE])
    weights = tmp_path / WEIGHTS_FILE
    assert stat.S_IMODE(weights.stat().st_mode) == 0o666 & ~_umask()  # safetensors alone: 0600
    tensors = {f"{kind}.{name}": value.detach().cpu().contiguous()
               for kind, net in model.nets.items() for name, value in net.state_dict().items()}
    reference = tmp_path.parent / "reference.safetensors"
    save_torch_file(tensors, str(reference))
    assert weights.read_bytes() == reference.read_bytes()
    assert SpotterModel.load(tmp_path).digest() == model.digest()


@pytest.mark.parametrize("what", ["maps", "spotter"])
def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, what):
    if what == "maps":
        path = tmp_path / "video-0.safetensors"
        save_maps(path, **_maps_args(0))
        again = lambda: save_maps(path, **_maps_args(1))  # noqa: E731
    else:
        path = tmp_path / WEIGHTS_FILE
        _spotter(0).save(tmp_path)
        again = lambda: _spotter(1).save(tmp_path)  # noqa: E731
    before = sorted(os.listdir(tmp_path))
    old = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        again()
    assert path.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == before  # the temporary file removed
    monkeypatch.undo()
    again()
    assert path.read_bytes() != old
