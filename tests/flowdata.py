"""Real optical-flow pairs with ground truth (../shared/data/flow) and the end-point error.

A plain module, not conftest.py: test folders have conftests of their own, so ``from
conftest import ...`` would depend on the order pytest puts folders on sys.path.
"""

from __future__ import annotations

from pathlib import Path


def load_flow_pair(shared: Path, name: str):
    """(I0, I1, ground truth (H, W, 2), valid mask) of 'rubberwhale' or 'sintel'."""
    import cv2

    from fastmer.motion.flo import read_flo

    if name == "rubberwhale":
        folder = shared / "data" / "flow" / "middlebury"
        I0, I1 = cv2.imread(str(folder / "RubberWhale1.png"), 0), cv2.imread(str(folder / "RubberWhale2.png"), 0)
        truth = read_flo(folder / "RubberWhale.flo")
        valid = (abs(truth) < 1e9).all(axis=-1)
    else:
        folder = shared / "data" / "flow" / "sintel_alley_1"
        I0, I1 = cv2.imread(str(folder / "frame_0002.png"), 0), cv2.imread(str(folder / "frame_0003.png"), 0)
        truth = read_flo(folder / "flow_0002.flo")
        valid = cv2.imread(str(folder / "invalid_0002.png"), 0) == 0
    return I0, I1, truth, valid


def epe(flow, truth, valid) -> float:
    """Average end-point error of an (H, W, 2) or (2, H, W) flow over the valid pixels."""
    import numpy as np

    flow = np.asarray(flow)
    if flow.shape[0] == 2 and flow.ndim == 3:
        flow = flow.transpose(1, 2, 0)
    return float(np.linalg.norm(flow - truth, axis=-1)[valid].mean())


# Real-camera-like versions of a pair (the same degradation on both frames): what separates
# TV-L1 implementations is how they behave where gradients are weak and noisy.
DEGRADATIONS = ("clean", "gaussian_blur", "motion_blur", "blur_noise", "fog")


def degrade(I0, I1, kind: str):
    """(I0, I1) uint8 blurred (Gaussian sigma 1.5, or 9-px horizontal motion), blurred and
    noisy (sigma 1 then Gaussian noise of 3 grey levels, seeded), or fogged (contrast 0.6 over
    a grey veil of a sigma-2 blur)."""
    import cv2
    import numpy as np

    def gauss(image, sigma):
        return cv2.GaussianBlur(image, (0, 0), sigma)

    if kind == "clean":
        return I0, I1
    if kind == "gaussian_blur":
        return gauss(I0, 1.5), gauss(I1, 1.5)
    if kind == "motion_blur":
        kernel = np.zeros((9, 9), np.float32)
        kernel[4, :] = 1 / 9
        return cv2.filter2D(I0, -1, kernel), cv2.filter2D(I1, -1, kernel)
    if kind == "blur_noise":
        rng = np.random.default_rng(0)

        def noisy(image):
            return np.clip(gauss(image, 1.0).astype(np.float32) + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)

        return noisy(I0), noisy(I1)
    if kind == "fog":
        def fog(image):
            return (0.6 * gauss(image, 2.0).astype(np.float32) + 0.4 * 180).astype(np.uint8)

        return fog(I0), fog(I1)
    raise ValueError(f"unknown degradation {kind!r}; known: {DEGRADATIONS}")
