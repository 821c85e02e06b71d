import numpy as np
import pytest

from fastmer.motion.viz import color_wheel, flow_to_color


def test_wheel_has_the_middlebury_segments():
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    # segment starts: red, yellow, green, cyan, blue, magenta
    assert wheel[[0, 15, 21, 25, 36, 49]].tolist() == [[255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255],
                                                        [0, 0, 255], [255, 0, 255]]


def test_known_colours():
    # Middlebury's angle is atan2(-v, -u) / pi: zero flow is white; rightward flow (v = 0, so
    # -v = -0.0 and the angle is -pi) is wheel index 0, pure red; leftward is index 27
    # (cyan-blue: G = 255 - floor(255 * 2/11) = 209); downward is index 13.5 (between
    # G = floor(255*13/15) = 221 and 238); unknown flow is black.
    flow = np.array([[[0, 0], [1, 0], [-1, 0], [0, 1], [1e10, 0]]], dtype=np.float32)
    image = flow_to_color(flow, max_flow=1.0)
    assert image[0].tolist() == [[255, 255, 255], [255, 0, 0], [0, 209, 255], [255, 229, 0], [0, 0, 0]]


def test_half_magnitude_is_desaturated_and_beyond_max_is_darkened():
    right = flow_to_color(np.array([[[0.5, 0], [2, 0]]]), max_flow=1.0)[0]
    assert right[0].tolist() == [255, 127, 127]  # 1 - 0.5 * (1 - red)
    assert right[1].tolist() == [191, 0, 0]  # 0.75 * red


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        flow_to_color(np.zeros((2, 4, 4)))
