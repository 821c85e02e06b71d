import cv2
import numpy as np
from click.testing import CliRunner
from flowdata import epe, load_flow_pair

from fastmer.cli import main
from fastmer.motion.flo import read_flo


def test_flow_writes_flo_and_visualisation(shared_dir, tmp_path):
    folder = shared_dir / "data" / "flow" / "middlebury"
    out, viz = tmp_path / "rw.flo", tmp_path / "rw.png"
    result = CliRunner().invoke(main, ["flow", str(folder / "RubberWhale1.png"), str(folder / "RubberWhale2.png"),
                                       "-o", str(out), "--viz", str(viz)])
    assert result.exit_code == 0, result.output
    assert "fastmer/opencv" in result.output
    _, _, truth, valid = load_flow_pair(shared_dir, "rubberwhale")
    assert epe(read_flo(out), truth, valid) <= 0.16
    image = cv2.imread(str(viz))
    assert image.shape == (388, 584, 3)


def test_flow_backends_and_bad_images(tmp_path):
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((40, 48)) * 255).astype(np.uint8), (0, 0), 1.2)
    cv2.imwrite(str(tmp_path / "a.png"), base)
    cv2.imwrite(str(tmp_path / "b.png"), np.roll(base, 1, axis=1))
    cv2.imwrite(str(tmp_path / "small.png"), base[:20])
    (tmp_path / "junk.png").write_bytes(b"not a png")
    runner = CliRunner()
    for backend in ("fastmer", "dis", "farneback", "opencv"):
        result = runner.invoke(main, ["flow", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o",
                                      str(tmp_path / f"{backend}.flo"), "-b", backend])
        assert result.exit_code == 0, result.output
        assert read_flo(tmp_path / f"{backend}.flo").shape == (40, 48, 2)
    result = runner.invoke(main, ["flow", str(tmp_path / "a.png"), str(tmp_path / "small.png"), "-o", "x.flo"])
    assert result.exit_code == 2 and "is 48x40 but" in result.output
    result = runner.invoke(main, ["flow", str(tmp_path / "a.png"), str(tmp_path / "junk.png"), "-o", "x.flo"])
    assert result.exit_code == 2 and "cannot read image" in result.output
    result = runner.invoke(main, ["flow", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-o", "x.flo", "-b", "opencv",
                                  "--preset", "ipol"])
    assert result.exit_code == 1 and "no OpenCV equivalent" in result.output
