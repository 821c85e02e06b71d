"""Engine choice rules, decode_engines() for `fastmer info`, and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fastmer.decode import choose_engine, decode_engines, engines
from fastmer.decode import dali as dali_engine
from fastmer.decode import pyav as pyav_engine

WITH_DALI = (True, "DALI 9.9")
NO_DALI = (False, f"DALI not installed: {dali_engine.INSTALL_HINT}")


@pytest.fixture
def dali_present(monkeypatch):
    monkeypatch.setattr(dali_engine, "available", lambda: WITH_DALI)


@pytest.fixture
def dali_absent(monkeypatch):
    monkeypatch.setattr(dali_engine, "available", lambda: NO_DALI)


@pytest.mark.parametrize("gpu", [False, True])
def test_images_with_dali(dali_present, gpu):
    name, reason = choose_engine("images", gpu=gpu)
    assert name == ("dali-gpu" if gpu else "dali-cpu")
    assert ("nvJPEG" if gpu else "CPU image decoder") in reason


@pytest.mark.parametrize("gpu", [False, True])
def test_images_without_dali(dali_absent, gpu):
    name, reason = choose_engine("images", gpu=gpu)
    assert name == "opencv" and "pip install nvidia-dali-cuda120" in reason
    assert ("decodes on the CPU" in reason) == gpu
    with pytest.raises(ValueError, match="not installed"):
        choose_engine("images", engine="dali", gpu=gpu)


@pytest.mark.parametrize("codec, cpu, gpu", [
    ("vp8", "dali-cpu", "dali-gpu"), ("vp9", "dali-cpu", "dali-gpu"), ("mjpeg", "dali-cpu", "dali-gpu"),
    ("h264", "pyav", "dali-gpu"), ("hevc", "pyav", "dali-gpu"), ("av1", "pyav", "dali-gpu"),
    ("mpeg4", "pyav", "dali-gpu"), ("prores", "pyav", "pyav"),
])
def test_video_rules_with_dali(dali_present, codec, cpu, gpu):
    assert choose_engine("video", codec=codec)[0] == cpu
    assert choose_engine("video", codec=codec, gpu=True)[0] == gpu


def test_video_reasons(dali_present):
    name, reason = choose_engine("video", codec="h264", subject="x.mp4")
    assert reason == "DALI's CPU video decoder handles only VP8, VP9 and MJPEG; x.mp4 is h264 -> PyAV"
    name, reason = choose_engine("video", codec="vp9", subject="x.webm")
    assert name == "dali-cpu" and "vp9" in reason
    name, reason = choose_engine("video", codec="prores", gpu=True)
    assert name == "pyav" and "NVDEC" in reason and "(decodes on the CPU)" in reason
    with pytest.raises(ValueError, match="only VP8, VP9 and MJPEG; x.mp4 is h264 .*device='cuda' or engine='pyav'"):
        choose_engine("video", codec="h264", engine="dali", subject="x.mp4")
    assert choose_engine("video", codec="h264", engine="dali", gpu=True)[0] == "dali-gpu"
    assert choose_engine("video", codec="vp9", engine="pyav")[0] == "pyav"
    assert choose_engine("video", codec="vp9", engine="opencv")[0] == "opencv"


def test_video_without_dali_or_pyav(dali_absent, monkeypatch):
    assert choose_engine("video", codec="vp9") == ("pyav", f"{NO_DALI[1]} -> PyAV")
    monkeypatch.setattr(pyav_engine, "available", lambda: (False, "PyAV not importable; pip install av"))
    name, reason = choose_engine("video", codec="vp9")
    assert name == "opencv" and "pip install av" in reason and "VideoCapture" in reason


def test_bad_kind():
    with pytest.raises(ValueError, match="kind must be"):
        choose_engine("audio")


def test_decode_engines_is_json_ready_and_complete():
    info = decode_engines()
    json.dumps(info)
    assert set(info["engines"]) == {"dali", "pyav", "opencv"}
    assert info["engines"]["opencv"]["available"] is True
    assert set(info["auto"]) == {"cpu", "cuda"}
    for choices in info["auto"].values():
        assert set(choices) == {"images", "video"}
        assert set(choices["video"]) == set(engines.REPORTED_CODECS)
        for choice in [choices["images"], *choices["video"].values()]:
            assert choice["reason"]
            assert choice["engine"] in (None, "dali-cpu", "dali-gpu", "pyav", "opencv")
    cpu = info["auto"]["cpu"]
    assert cpu["video"]["h264"]["engine"] == "pyav"
    if info["engines"]["dali"]["available"]:
        assert cpu["video"]["vp9"]["engine"] == "dali-cpu" and cpu["images"]["engine"] == "dali-cpu"
    else:
        assert "DALI" in info["engines"]["dali"]["detail"] and cpu["images"]["engine"] == "opencv"
    if not info["devices"]["cuda"]["available"]:
        assert info["auto"]["cuda"]["images"]["engine"] is None
        assert "device='cuda' unavailable" in info["auto"]["cuda"]["images"]["reason"]


def test_decode_engines_without_dali(dali_absent):
    info = decode_engines()
    assert info["engines"]["dali"]["available"] is False
    assert info["auto"]["cpu"]["images"] == {"engine": "opencv", "reason": f"{NO_DALI[1]} -> OpenCV (cv2.imread)"}
    assert info["auto"]["cpu"]["video"]["vp9"]["engine"] == "pyav"


def test_fastmer_no_dali_env(monkeypatch):
    monkeypatch.setenv("FASTMER_NO_DALI", "1")
    dali_engine.available.cache_clear()
    try:
        assert dali_engine.available() == (False, "DALI disabled by FASTMER_NO_DALI")
        assert choose_engine("images")[0] == "opencv"
    finally:
        monkeypatch.delenv("FASTMER_NO_DALI")
        dali_engine.available.cache_clear()


def test_importing_decode_imports_neither_dali_nor_pyav_nor_torch():
    code = ("import sys, fastmer.decode; "
            "print([m for m in ('nvidia.dali', 'av', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_extensions_match_the_clip_model():
    from fastmer.datasets import clip

    assert engines.VIDEO_EXTENSIONS == clip.VIDEO_EXTENSIONS
    assert engines.IMAGE_EXTENSIONS == clip.IMAGE_EXTENSIONS
