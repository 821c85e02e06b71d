"""`fastmer synth --long` through click's CliRunner."""

import csv
import json

import cv2
from click.testing import CliRunner

from fastmer.cli import main


def test_synth_long_writes_videos_and_their_truth(tmp_path):
    out = tmp_path / "long"
    result = CliRunner().invoke(main, ["synth", "-o", str(out), "--long", "--subjects", "2", "--seconds", "4",
                                       "--fps", "25", "--no-cut", "--seed", "4", "--workers", "1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "synth_long.json").read_text())
    assert meta["config"]["cut"] is False and meta["config"]["fps"] == 25.0
    assert sorted(meta["videos"]) == ["s01_01", "s02_01"]
    for info in meta["videos"].values():
        capture = cv2.VideoCapture(str(out / info["path"]))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 100 and info["cut"] is None
        assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (640, 480)
        capture.release()
    with (out / "distractors.csv").open() as fh:
        assert all(row["kind"] == "blink" for row in csv.DictReader(fh))  # --no-cut: no cut row
    assert f"to {out}" in result.output


def test_synth_refuses_options_of_the_other_kind(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["synth", "-o", str(tmp_path / "a"), "--long", "--clips-per-subject", "3"])
    assert result.exit_code == 2 and "--clips-per-subject: not an option of --long videos" in result.output
    result = runner.invoke(main, ["synth", "-o", str(tmp_path / "b"), "--seconds", "3"])
    assert result.exit_code == 2 and "--seconds: only with --long" in result.output
    result = runner.invoke(main, ["synth", "-o", str(tmp_path / "c"), "--long", "--fps", "10"])
    assert result.exit_code == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
