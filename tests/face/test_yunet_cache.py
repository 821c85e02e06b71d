"""The cached YuNet model is checked against its pinned sha256 each time it is loaded (issue 17)."""

import re
import shutil

import pytest

from fastmer import hub
from fastmer.face import YuNetFaceDetector, make_detector


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMER_CACHE", str(tmp_path / "cache"))
    target = hub.model_path("yunet")
    target.parent.mkdir(parents=True)
    return target


def _refusal(path):
    digest = hub.sha256_of(path)
    return (f"{re.escape(str(path))} is corrupt or was replaced: sha256 {digest}, expected "
            f"{hub.MODEL_FILES['yunet'].sha256} .*fastmer models fetch yunet")


def test_a_corrupted_cached_model_is_refused_not_replaced_by_haar(cache):
    cache.write_bytes(b"not the model")
    for load in (lambda: make_detector("auto"), lambda: make_detector("yunet"), lambda: YuNetFaceDetector(cache),
                 lambda: make_detector("auto", cache)):
        with pytest.raises(ValueError, match=_refusal(cache)):
            load()


def test_a_flipped_byte_of_the_real_cached_model_is_refused(shared_dir, cache, tmp_path):
    """OpenCV loads a YuNet with one weight byte flipped without complaint: only the hash sees it."""
    real = shared_dir / "models" / "face_detection_yunet_2023mar.onnx"
    shutil.copy(real, cache)
    detector, why = make_detector("auto")
    assert isinstance(detector, YuNetFaceDetector) and str(cache) in why
    import onnx

    blob = bytearray(cache.read_bytes())
    raw = max(onnx.load_model_from_string(bytes(blob)).graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    at = bytes(blob).find(raw)
    assert len(raw) > 64 and at > 0
    blob[at + len(raw) // 2] ^= 0x01  # inside a weight tensor: still a loadable model
    cache.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=_refusal(cache)):
        make_detector("auto")
    # the same bytes given as the user's own file (not the cache's) are the user's choice: loaded
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(bytes(blob))
    assert isinstance(YuNetFaceDetector(mine), YuNetFaceDetector)
