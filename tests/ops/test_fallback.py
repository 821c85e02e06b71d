"""The reference fallback is real, and never silent."""

import subprocess
import sys

import torch

from fastmer.ops import _native, flow_magnitude, optical_strain, rank_pool


def test_extension_is_built_and_cpu_kernels_registered():
    # The README's install builds the extension; a missing build must fail here, loudly.
    assert _native.unavailable_reason() is None, _native.unavailable_reason()
    for op in _native.NATIVE_OPS:
        assert _native.has_kernel(op, "cpu"), op


def test_build_info_matches_the_running_torch():
    info = _native.build_info()
    assert info["torch_version"] == torch.__version__
    assert info["cuda"] == (torch.version.cuda is not None and info["cuda_reason"] == "")
    assert info["cxx_compiler"] and info["build_type"]
    if info["cuda"]:
        assert info["cuda_archs"]
        assert _native.has_kernel("rank_pool", "cuda")
    else:
        assert info["cuda_reason"]


def test_reference_backend_matches_native():
    flow = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    frames = torch.rand(2, 5, 1, 9, 9, dtype=torch.float64)
    for fn, x in ((flow_magnitude, flow), (optical_strain, flow), (rank_pool, frames)):
        torch.testing.assert_close(fn(x, backend="reference"), fn(x, backend="native"))


def test_disabled_extension_falls_back_with_a_warning():
    code = (
        "import warnings, torch\n"
        "from fastmer.ops import rank_pool, NativeFallbackWarning\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    out = rank_pool(torch.stack([torch.zeros(1,1,1), torch.ones(1,1,1)]).unsqueeze(0))\n"
        "assert out.item() == 0.5, out\n"
        "assert any(issubclass(x.category, NativeFallbackWarning) and 'FASTMER_DISABLE_NATIVE' in str(x.message) for x in w), w\n"
        "try:\n"
        "    rank_pool(torch.zeros(1,2,1,1,1), backend='native')\n"
        "except RuntimeError as e:\n"
        "    assert 'no native kernel' in str(e)\n"
        "else:\n"
        "    raise SystemExit('backend=native did not raise')\n"
    )
    env = {"FASTMER_DISABLE_NATIVE": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_bad_backend_name():
    try:
        flow_magnitude(torch.zeros(1, 2, 2, 2), backend="gpu")
    except ValueError as exc:
        assert "backend must be" in str(exc)
    else:
        raise AssertionError("no error for backend='gpu'")
