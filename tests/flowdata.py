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
