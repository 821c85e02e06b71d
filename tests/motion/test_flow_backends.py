import numpy as np
import pytest
import torch
from flowdata import epe, load_flow_pair

from fastmer.config import FLOW_BACKENDS
from fastmer.motion.flow import compute_flow
from fastmer.ops import TVL1Params


# Figures measured with each library on RubberWhale (../shared/data/README.md lists OpenCV
# TV-L1 0.156 and DIS 0.225); Farneback with the usual (0.5, 3, 15, 3, 5, 1.2) parameters.
@pytest.mark.parametrize("backend, low, high", [("fastmer", 0.14, 0.16), ("opencv", 0.15, 0.16), ("dis", 0.21, 0.24),
                                                ("farneback", 0.33, 0.40)])
def test_backends_on_rubberwhale(shared_dir, backend, low, high):
    I0, I1, truth, valid = load_flow_pair(shared_dir, "rubberwhale")
    flow = compute_flow(I0[None], I1[None], backend=backend)
    assert flow.shape == (1, 2, *I0.shape) and flow.dtype == torch.float32
    assert low <= epe(flow[0].numpy(), truth, valid) <= high


def test_torch_backend_is_the_reference_of_fastmer():
    rng = np.random.default_rng(1)
    import cv2

    base = cv2.normalize(cv2.GaussianBlur(rng.random((40, 40), dtype=np.float32), (0, 0), 1.5), None, 0, 255,
                         cv2.NORM_MINMAX).astype(np.uint8)
    I0 = np.stack([base, base])
    I1 = np.stack([np.roll(base, 1, axis=1), np.roll(base, -1, axis=0)])
    # Whole images with the stopping rule where the flow is well posed everywhere (replicated
    # warp borders); with OpenCV's zero border, border pixels whose match leaves the image are
    # chaotic in float rounding, so: a fixed iteration count, 6 px inside (as tests/ops does).
    replicate = TVL1Params(warp_border="replicate")
    fast = compute_flow(I0, I1, backend="fastmer", params=replicate)
    reference = compute_flow(I0, I1, backend="torch", params=replicate)
    assert (fast - reference).abs().mean().item() < 1e-3
    fixed = TVL1Params(epsilon=1e-9, inner_iterations=10, outer_iterations=3)
    fast = compute_flow(I0, I1, backend="fastmer", params=fixed)
    reference = compute_flow(I0, I1, backend="torch", params=fixed)
    assert (fast - reference)[..., 6:-6, 6:-6].abs().mean().item() < 1e-3


def test_opencv_backends_batch_over_pairs_in_parallel_and_keep_order(shared_dir):
    I0, I1, _, _ = load_flow_pair(shared_dir, "rubberwhale")
    a, b = I0[:128, :160], I1[:128, :160]
    batch = compute_flow(np.stack([a, b, a]), np.stack([b, a, b]), backend="dis", workers=2)
    single = compute_flow(a[None], b[None], backend="dis")
    torch.testing.assert_close(batch[0], single[0])
    torch.testing.assert_close(batch[2], single[0])


def test_backend_parameter_checks():
    x = np.zeros((1, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="unknown flow backend 'raft'"):
        compute_flow(x, x, backend="raft")
    with pytest.raises(ValueError, match="no OpenCV equivalent"):
        compute_flow(x, x, backend="opencv", params=TVL1Params.ipol())
    with pytest.raises(ValueError, match="do not apply to the dis backend"):
        compute_flow(x, x, backend="dis", params=TVL1Params(tau=0.2))
    with pytest.raises(ValueError, match="uint8 images"):
        compute_flow(x.astype(np.float32), x.astype(np.float32), backend="farneback")
    assert set(FLOW_BACKENDS) == {"fastmer", "torch", "opencv", "dis", "farneback"}
