"""fastmer.store.importer: features computed elsewhere (images, .npy) as an ordinary feature store.

Every stored tensor is compared with the arrays the test itself wrote (read back with
pyarrow, not only with fastmer's reader): stored == source * scale + offset, exactly.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

import fastmer.store as fstore
from fastmer.outputs import OutputRefused
from fastmer.store import schema
from fastmer.store.importer import RowError, import_features, load_import_manifest, models_reading, read_source

H, W = 6, 5


def write_manifest(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    header = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def raw_rows(store: Path, name: str) -> dict[str, np.ndarray]:
    """uid -> stored tensor, read with pyarrow alone."""
    out = {}
    for shard in sorted((store / schema.CLIPS_DIR).glob("part-*.parquet")):
        table = pq.read_table(shard)
        shape = json.loads((store / schema.META_FILE).read_text())["representations"][name]["shape"]
        for uid, values in zip(table.column("uid").to_pylist(), table.column(name).combine_chunks().storage.to_pylist(),
                               strict=True):
            out[uid] = np.asarray(values).reshape(shape)
    return out


@pytest.fixture
def sources(tmp_path):
    """Known arrays written as a colour PNG, a (3, H, W) .npy, and a grey PNG + (H, W) .npy +
    16-bit PNG stacked as three channels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "features"
    (root / "s1").mkdir(parents=True)
    (root / "s2").mkdir()
    bgr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "s1" / "colour.png"), bgr)
    cube = rng.standard_normal((3, H, W))  # float64
    np.save(root / "s1" / "cube.npy", cube)
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    plane = rng.integers(-500, 500, (H, W), dtype=np.int16)
    deep = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    deep[0, 0] = 65535  # 16-bit values are kept, not scaled to 8 bits
    cv2.imwrite(str(root / "s2" / "grey.png"), grey)
    np.save(root / "s2" / "plane.npy", plane)
    cv2.imwrite(str(root / "s2" / "deep.png"), deep)
    expected = {"imported/s1/colour": bgr[:, :, ::-1].transpose(2, 0, 1).astype(np.float64),
                "imported/s1/cube": cube,
                "imported/s2/stack": np.stack([grey, plane, deep]).astype(np.float64)}
    manifest = write_manifest(root / "manifest.csv", [
        {"subject": "s1", "clip": "colour", "labels": "happiness", "file": "s1/colour.png", "onset": "1", "apex": "3",
         "offset": "9", "action_units": "12"},
        {"subject": "s1", "clip": "cube", "labels": "Surprise+Positive", "file": "s1/cube.npy"},
        {"subject": "s2", "clip": "stack", "labels": "sad", "file": "s2/grey.png; s2/plane.npy ;s2/deep.png"},
    ])
    return manifest, expected


def test_round_trip_exact_with_scale_offset_and_stacking_order(sources, tmp_path):
    manifest, expected = sources
    summary = import_features(manifest, tmp_path / "store", name="uvs", channels="a,b,c", scale=0.25, offset=-3.0)
    assert (summary.n_ok, summary.n_failed, summary.shape) == (3, 0, (3, H, W))
    stored = raw_rows(tmp_path / "store", "uvs")
    assert list(stored) == list(expected)
    for uid, source in expected.items():
        want = (source * 0.25 - 3.0).astype(np.float32)
        np.testing.assert_array_equal(stored[uid].astype(np.float32), want, err_msg=uid)
    store = fstore.open(tmp_path / "store")
    np.testing.assert_array_equal(store.numpy("uvs")[2], (expected["imported/s2/stack"] * 0.25 - 3).astype(np.float32))
    assert store.channels("uvs") == ("a", "b", "c") and store.complete
    assert store.column("labels") == [["happiness"], ["surprise", "positive"], ["sadness"]]
    assert store.column("subject") == ["imported/s1", "imported/s1", "imported/s2"]
    assert store.column("onset")[0] == 1 and store.column("apex")[0] == 3 and store.column("offset")[1] is None
    assert store.column("action_units")[0] == "12"
    assert store.column("source")[2].split(";")[2].endswith("deep.png")
    # the stacked clip's channels in the manifest's order: grey, plane, deep (65535 kept)
    assert stored["imported/s2/stack"][2, 0, 0] * 4 == pytest.approx(65535 - 12)


def test_params_record_the_import(sources, tmp_path):
    manifest, _ = sources
    import_features(manifest, tmp_path / "store", name="uvs", channels="a,b,c", scale=0.5, offset=1.0, dtype="float16")
    meta = json.loads((tmp_path / "store" / schema.META_FILE).read_text())
    params = meta["params"]
    assert params["source"] == "import" and params["scale"] == 0.5 and params["offset"] == 1.0
    assert params["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert params["channels"] == ["a", "b", "c"] and params["source_shape"] == [3, H, W] and params["resize"] is None
    assert meta["params_hash"] == schema.params_hash(params)
    assert meta["representations"]["uvs"] == {"shape": [3, H, W], "dtype": "float16", "channels": ["a", "b", "c"]}
    assert meta["runtime"]["manifest"] == str(manifest.resolve())
    # another scale is another import: its store is not resumed silently
    with pytest.raises(FileExistsError, match="other parameters"):
        import_features(manifest, tmp_path / "store", name="uvs", channels="a,b,c", scale=0.25, dtype="float16")


def test_tsv_manifest_and_aliases(sources, tmp_path):
    manifest, expected = sources
    rows = list(csv.DictReader(manifest.open()))
    tsv = write_manifest(manifest.with_suffix(".tsv"), [
        {"Subject": r["subject"], "Clip_ID": r["clip"], "Label": r["labels"], "File": r["file"], "Dataset": "megc"}
        for r in rows], delimiter="\t")
    summary = import_features(tsv, tmp_path / "store", channels="a,b,c")
    assert summary.n_ok == 3
    store = fstore.open(tmp_path / "store")
    assert store.column("uid") == ["megc/s1/colour", "megc/s1/cube", "megc/s2/stack"]
    np.testing.assert_array_equal(store.numpy("imported")[1], expected["imported/s1/cube"].astype(np.float32))


def test_every_defect_is_an_error_row_naming_row_and_file(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    good = np.arange(H * W, dtype=np.float32).reshape(H, W)
    for i in range(3):
        np.save(root / f"ok{i}.npy", good + i)
    np.save(root / "wide.npy", np.zeros((H, W + 1), np.float32))
    nan = good.copy()
    nan[1, 2] = np.nan
    np.save(root / "nan.npy", nan)
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("x")
    rgba = np.zeros((H, W, 4), np.uint8)
    cv2.imwrite(str(root / "rgba.png"), rgba)
    manifest = write_manifest(root / "m.csv", [
        {"subject": "a", "clip": "ok0", "labels": "happiness", "file": "ok0.npy", "onset": ""},      # line 2
        {"subject": "a", "clip": "missing", "labels": "happiness", "file": "gone.npy"},               # line 3
        {"subject": "a", "clip": "wide", "labels": "happiness", "file": "wide.npy"},                  # line 4
        {"subject": "b", "clip": "nan", "labels": "happiness", "file": "nan.npy"},                    # line 5
        {"subject": "b", "clip": "broken", "labels": "happiness", "file": "broken.png"},              # line 6
        {"subject": "b", "clip": "obj", "labels": "happiness", "file": "objects.npy"},                # line 7
        {"subject": "b", "clip": "txt", "labels": "happiness", "file": "notes.txt"},                  # line 8
        {"subject": "b", "clip": "rgba", "labels": "happiness", "file": "rgba.png"},                  # line 9
        {"subject": "", "clip": "nosubject", "labels": "happiness", "file": "ok1.npy"},               # line 10
        {"subject": "c", "clip": "badonset", "labels": "happiness", "file": "ok1.npy", "onset": "abc"},  # line 11
        {"subject": "c", "clip": "ok1", "labels": "happiness", "file": "ok1.npy"},                    # line 12
        {"subject": "c", "clip": "ok1", "labels": "happiness", "file": "ok1.npy"},                    # line 13: repeat
        {"subject": "c", "clip": "ok1", "labels": "sadness", "file": "ok2.npy;ok0.npy;"},           # line 14: empty name
        {"subject": "c", "clip": "ok1", "labels": "sadness", "file": "ok2.npy"},                      # line 15: id taken
        {"subject": "c", "clip": "pair", "labels": "sadness", "file": "ok2.npy;wide.npy"},            # line 16
    ])
    summary = import_features(manifest, tmp_path / "store")
    assert summary.n_ok == 3 and summary.shape == (1, H, W) and summary.channels == ("c0",)
    store = fstore.open(tmp_path / "store")
    assert store.column("uid") == ["imported/a/ok0", "imported/c/ok1", "imported/c/ok1_2"]
    errors = dict(zip(store.errors.column("uid").to_pylist(), store.errors.column("error").to_pylist(), strict=True))
    assert set(store.errors.column("stage").to_pylist()) == {"import"}
    expect = {"imported/a/missing": (3, "gone.npy", "file not found"),
              "imported/a/wide": (4, "wide.npy", f"shape (1, {H}, {W + 1}); the other clips have shape (1, {H}, {W})"),
              "imported/b/nan": (5, "nan.npy", "1 value(s) are NaN or infinite"),
              "imported/b/broken": (6, "broken.png", "not a readable image"),
              "imported/b/obj": (7, "objects.npy", "not a readable .npy array"),
              "imported/b/txt": (8, "notes.txt", "unsupported file type '.txt'"),
              "imported/b/rgba": (9, "rgba.png", "4 channels"),
              "imported/c/pair": (16, "wide.npy", "differ in height and width")}
    assert set(errors) == set(expect)
    for uid, (line, file, problem) in expect.items():
        assert f"{manifest}, row {line}, column file: " in errors[uid], errors[uid]
        assert file in errors[uid] and problem in errors[uid], errors[uid]
    assert summary.n_failed == len(expect) and summary.n_excluded == 3
    details = "\n".join(summary.report.details)
    assert f"{manifest}, row 10, column subject: blank; row skipped" in details
    assert f"{manifest}, row 11, column onset: 'abc' is not a number" in details
    assert f"{manifest}, rows 12 and 13: both describe imported/c/ok1" in details
    assert f"{manifest}, row 14, column file:" in details and "empty file name" in details
    assert f"{manifest}, row 15, column clip: clip 'ok1' of subject 'c' is listed before" in details
    assert summary.report.defects == {"duplicate_row": ["imported/c/ok1"]}
    np.testing.assert_array_equal(store.numpy("imported")[2, 0], good + 2)


def test_read_source_kinds(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "g.bmp"), grey)
    np.testing.assert_array_equal(read_source(tmp_path / "g.bmp"), grey[None])
    real = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    cv2.imwrite(str(tmp_path / "r.tiff"), real)  # MATLAB's single-precision TIFFs
    np.testing.assert_array_equal(read_source(tmp_path / "r.tiff"), real[None])
    cv2.imwrite(str(tmp_path / "c.jpg"), np.full((8, 8, 3), (10, 120, 240), np.uint8))
    jpeg = read_source(tmp_path / "c.jpg")
    assert jpeg.shape == (3, 8, 8) and abs(int(jpeg[0, 0, 0]) - 240) <= 3 and abs(int(jpeg[2, 0, 0]) - 10) <= 3  # RGB
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(RowError, match=r"shape \(5,\); expected \(H, W\) or \(C, H, W\)"):
        read_source(tmp_path / "v.npy")
    np.save(tmp_path / "z.npy", np.zeros((2, 2), complex))
    with pytest.raises(RowError, match="not real numbers"):
        read_source(tmp_path / "z.npy")


def test_resize_area_and_bilinear(tmp_path):
    rng = np.random.default_rng(3)
    big = rng.standard_normal((2, 8, 8))
    small = rng.standard_normal((2, 3, 3)).astype(np.float32)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "small.npy", small)
    manifest = write_manifest(tmp_path / "m.csv", [
        {"subject": "s", "clip": "big", "labels": "happiness", "file": "big.npy"},
        {"subject": "s", "clip": "small", "labels": "happiness", "file": "small.npy"},
    ])
    summary = import_features(manifest, tmp_path / "store", size=4, scale=2.0, offset=1.0)
    assert summary.shape == (2, 4, 4) and summary.n_ok == 2
    stored = fstore.open(tmp_path / "store").numpy("imported")
    area = big.reshape(2, 4, 2, 4, 2).mean(axis=(2, 4))  # shrinking by 2: the mean of each 2x2 block
    np.testing.assert_allclose(stored[0], area * 2 + 1, rtol=0, atol=1e-5)
    linear = np.stack([cv2.resize(c, (4, 4), interpolation=cv2.INTER_LINEAR) for c in small])  # half-pixel bilinear
    np.testing.assert_allclose(stored[1], linear * 2 + 1, rtol=0, atol=1e-5)
    params = json.loads((tmp_path / "store" / schema.META_FILE).read_text())["params"]
    assert params["resize"]["size"] == 4 and "area when shrinking" in params["resize"]["method"]
    assert params["source_shape"] == [[2, 3, 3], [2, 8, 8]]


def test_names_channels_and_models(sources, tmp_path):
    manifest, _ = sources
    assert models_reading("flow_onset_apex", ("u", "v", "strain")) == ["ststnet", "offapexnet"]
    assert models_reading("flow_onset_apex", ("u", "v")) == ["offapexnet"]
    assert models_reading("imported", ("u", "v", "strain")) == []
    with pytest.raises(ValueError, match=r"channels u,v name 2 channel\(s\), but the clips have 3 \(e.g. imported/s1/colour, row 2"):
        import_features(manifest, tmp_path / "a", channels="u,v")
    with pytest.raises(ValueError, match="channel\\(s\\) x are not among them"):
        import_features(manifest, tmp_path / "a", name="flow_onset_apex", channels="u,v,x")
    with pytest.raises(ValueError, match="no model reads flow_onset_apex channels u,magnitude,strain"):
        import_features(manifest, tmp_path / "a", name="flow_onset_apex", channels="u,magnitude,strain")
    with pytest.raises(ValueError, match="reserved"):
        import_features(manifest, tmp_path / "a", name="keyframes")
    with pytest.raises(ValueError, match="repeated"):
        import_features(manifest, tmp_path / "a", channels="a,a,b")
    for bad in ({"scale": float("nan")}, {"scale": 0}, {"size": 0}, {"dtype": "uint8"}, {"name": "9x"}):
        with pytest.raises(ValueError):
            import_features(manifest, tmp_path / "a", **bad)
    assert not (tmp_path / "a").exists()  # nothing written on a bad argument
    summary = import_features(manifest, tmp_path / "flow", name="flow_onset_apex", channels="u,v,strain")
    assert summary.models == ["ststnet", "offapexnet"]


def test_refuses_what_is_not_a_store_and_its_inputs(sources, tmp_path):
    manifest, _ = sources
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(OutputRefused if overwrite else FileExistsError, match="not a fastmer feature store"):
            import_features(manifest, other, overwrite=overwrite)
    assert (other / "thesis.tex").read_text() == "keep me"
    with pytest.raises(OutputRefused, match="contains the input"):
        import_features(manifest, manifest.parent, overwrite=True)
    assert manifest.is_file()


def test_resume_skips_stored_clips_and_redoes_changed_files(sources, tmp_path):
    manifest, expected = sources
    first = import_features(manifest, tmp_path / "store", channels="a,b,c")
    again = import_features(manifest, tmp_path / "store", channels="a,b,c")
    assert (first.n_ok, again.n_ok, again.n_skipped) == (3, 0, 3)
    cube = np.full((3, H, W), 7.0)
    np.save(manifest.parent / "s1" / "cube.npy", cube)
    redo = import_features(manifest, tmp_path / "store", channels="a,b,c")
    assert (redo.n_ok, redo.n_skipped) == (1, 2)
    store = fstore.open(tmp_path / "store")
    assert store.column("uid") == list(expected) and len(store) == 3
    np.testing.assert_array_equal(store.numpy("imported")[1], cube.astype(np.float32))


def test_no_readable_clip_and_bad_manifests(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [{"subject": "s", "clip": "x", "labels": "happiness", "file": "no.npy"}])
    with pytest.raises(ValueError, match="no clip could be read.*no.npy: file not found"):
        import_features(manifest, tmp_path / "store")
    lacking = write_manifest(tmp_path / "l.csv", [{"subject": "s", "clip": "x", "labels": "happiness"}])
    with pytest.raises(ValueError, match="missing column\\(s\\) file"):
        load_import_manifest(lacking)
    (tmp_path / "m.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="use .csv or .tsv"):
        load_import_manifest(tmp_path / "m.parquet")
    with pytest.raises(FileNotFoundError):
        load_import_manifest(tmp_path / "absent.csv")
