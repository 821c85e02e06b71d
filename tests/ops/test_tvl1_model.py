"""bench/tvl1_model.py: the paper model of the CUDA TV-L1 solver, checked against hand counts."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # bench/ is not a package

import pytest
import tvl1_model as tm

from fastmer.ops.tvl1 import TVL1Params, pyramid_sizes

# 32x32, one level, one warp, one outer iteration of two inner iterations, no median.
TINY = TVL1Params(nscales=1, warps=1, outer_iterations=1, inner_iterations=2, median_size=1)
PX = 32 * 32


def test_tiny_case_launches():
    assert tm.launches(TINY, 32, 32) == {
        "gaussian_x": 0, "gaussian_y": 0, "downscale": 0,  # one level, no presmoothing
        "gradient": 1, "warp": 1, "reset_errors": 1, "median": 0, "iteration": 2,
        "upsample": 0, "output": 1,
        "memset": 3 + 6,  # u1, u2, u3 at the coarsest level; p11..p32 at the level
        "memcpy": 2,  # I0, I1 into the pyramid's level 0
    }


def test_tiny_case_bytes_float():
    m = tm.traffic(TINY, 32, 32, 1)
    k = m.by_kernel()
    assert k["memcpy"] == (2 * 4 * PX, 2 * 4 * PX)
    assert k["memset"] == (0, 9 * 4 * PX)
    assert k["gradient"] == (4 * PX, 2 * 4 * PX)  # I1 -> I1x, I1y
    assert k["warp"] == ((4 * 4 + 2 * 4) * PX, 4 * 4 * PX)  # I0, I1, I1x, I1y, u1, u2 -> 4 terms
    assert k["reset_errors"] == (0, 16)  # two doubles for the pair
    # 10 planes read, 6 written per pixel; per pair: previous + atomicAdd read, following + atomicAdd write
    assert k["iteration"] == (2 * (10 * 4 * PX + 16), 2 * (6 * 4 * PX + 16))
    assert k["output"] == (2 * 4 * PX, 2 * 4 * PX)
    assert m.bytes_read == 127_008
    assert m.bytes_written == 127_024
    assert m.total_bytes == 254_032
    assert m.total_launches == 17 and m.kernel_launches == 6
    assert [r.level for r in m.rows] == [0] * len(m.rows)


def test_tiny_case_bytes_half():
    m = tm.traffic(TINY, 32, 32, 1, half_state=True)
    k = m.by_kernel()
    assert k["memcpy"] == (2 * 4 * PX, 2 * 4 * PX)  # the images stay float
    assert k["gradient"] == (4 * PX, 2 * 4 * PX)
    assert k["memset"] == (0, 9 * 2 * PX)
    assert k["warp"] == ((4 * 4 + 2 * 2) * PX, 4 * 2 * PX)
    assert k["iteration"] == (2 * (10 * 2 * PX + 16), 2 * (6 * 2 * PX + 16))
    assert k["output"] == (2 * 2 * PX, 2 * 4 * PX)  # the flow is float
    assert (m.bytes_read, m.bytes_written) == (77_856, 75_824)


def test_half_state_halves_the_state_planes():
    params = TVL1Params(gamma=0.1)  # every S plane kind: median, u3, p31, p32, upsample of u3
    f, h = tm.traffic(params, 64, 64, 8), tm.traffic(params, 64, 64, 8, half_state=True)
    fk, hk = f.by_kernel(), h.by_kernel()
    for name in ("memset", "upsample"):
        assert fk[name] == tuple(2 * x for x in hk[name])
    # iteration and median: the pixel part halves, the per-pair doubles do not
    n_it, n_med = f.launches["iteration"], f.launches["median"]
    per_pair_it = n_it * 8 * tm.ITERATION_PER_PAIR.read
    assert fk["iteration"][0] - per_pair_it == 2 * (hk["iteration"][0] - per_pair_it)
    per_pair_med = n_med * 8 * tm.MEDIAN_PER_PAIR.read
    assert fk["median"][0] - per_pair_med == 2 * (hk["median"][0] - per_pair_med)
    # warp: the four float images are unchanged, the two u planes and the four terms halve
    pix = 8 * sum(hh * ww for hh, ww in f.sizes) * params.warps
    assert fk["warp"][0] - hk["warp"][0] == pix * (2 * 4 - 2 * 2)
    assert fk["warp"][1] == 2 * hk["warp"][1]
    for name in ("memcpy", "downscale", "gradient"):  # float images only
        assert fk[name] == hk[name]


def test_per_pixel_constants():
    assert tm.iteration_bytes(4, False) == tm.Bytes(40, 24)
    assert tm.iteration_bytes(2, False) == tm.Bytes(20, 12)
    assert tm.iteration_bytes(4, True) == tm.Bytes(52, 36)  # + u3, p31, p32 read and written
    assert tm.carry_over_bytes(4, False) == tm.Bytes(24, 24)
    assert tm.carry_over_bytes(2, True) == tm.Bytes(18, 18)
    assert tm.warp_bytes(4) == tm.Bytes(24, 16) and tm.warp_bytes(2) == tm.Bytes(20, 8)
    assert tm.median_bytes(4, False) == tm.Bytes(8, 8) and tm.median_bytes(4, True) == tm.Bytes(12, 12)
    assert tm.output_bytes(2) == tm.Bytes(4, 8)
    assert len(tm.ITERATION_READ) == 10 and len(tm.ITERATION_WRITTEN) == 6


def test_gamma_adds_u3_p31_p32():
    base = TVL1Params(nscales=1, warps=1, outer_iterations=1, inner_iterations=3, median_size=3)
    g = TVL1Params(nscales=1, warps=1, outer_iterations=1, inner_iterations=3, median_size=3, gamma=0.5)
    a, b = tm.traffic(base, 40, 40, 2), tm.traffic(g, 40, 40, 2)
    px = 40 * 40 * 2
    ak, bk = a.by_kernel(), b.by_kernel()
    assert bk["iteration"][0] - ak["iteration"][0] == 3 * px * 3 * 4  # 3 launches x 3 planes read
    assert bk["iteration"][1] - ak["iteration"][1] == 3 * px * 3 * 4  # and written
    assert bk["median"][0] - ak["median"][0] == px * 4  # u3 copied cur -> nxt
    assert tm.launches(base, 40, 40) == tm.launches(g, 40, 40)  # one level: no up-sampling
    # with levels, u3 is up-sampled too: 3 launches per level transition instead of 2
    multi = TVL1Params(nscales=3, gamma=0.5)
    levels = len(pyramid_sizes(64, 64, multi))
    assert levels == 3
    assert tm.launches(multi, 64, 64)["upsample"] == 3 * (levels - 1)
    assert tm.launches(TVL1Params(nscales=3), 64, 64)["upsample"] == 2 * (levels - 1)


@pytest.mark.parametrize("warps, outer, inner, median", [(1, 1, 1, 1), (2, 3, 4, 5), (5, 10, 30, 5), (3, 2, 7, 3)])
def test_launch_counts_follow_the_loops(warps, outer, inner, median):
    params = TVL1Params(warps=warps, outer_iterations=outer, inner_iterations=inner, median_size=median)
    counts = tm.launches(params, 100, 80)
    levels = len(pyramid_sizes(100, 80, params))
    assert counts["iteration"] == levels * warps * outer * inner
    assert counts["median"] == (levels * warps * outer if median > 1 else 0)
    assert counts["warp"] == counts["reset_errors"] == levels * warps
    assert counts["gradient"] == levels
    assert counts["downscale"] == 2 * (levels - 1)
    assert counts["upsample"] == 2 * (levels - 1)
    assert counts["memset"] == 3 + 6 * levels
    assert counts["memcpy"] == 2 and counts["output"] == 1


def test_presets_at_128():
    opencv = tm.launches(TVL1Params(), 128, 128)
    assert [h for h, _ in pyramid_sizes(128, 128, TVL1Params())] == [128, 102, 82, 66, 53]
    assert opencv["iteration"] == 5 * 5 * 10 * 30 and opencv["median"] == 250
    assert tm.kernel_launches(opencv) == 7822 and sum(opencv.values()) == 7857
    ipol = tm.launches(TVL1Params.ipol(), 128, 128)
    assert [h for h, _ in pyramid_sizes(128, 128, TVL1Params.ipol())] == [128, 64, 32, 16]
    # presmoothing blurs both images (2 x + 2 y); each of 3 downscales blurs both images first
    assert ipol["gaussian_x"] == ipol["gaussian_y"] == 2 + 2 * 3
    assert ipol["downscale"] == 6 and ipol["median"] == 0 and ipol["iteration"] == 6000
    assert ipol["memset"] == 3 + 6 * 4


def test_iteration_bytes_of_the_opencv_preset():
    m = tm.traffic(TVL1Params(), 128, 128, 1024)
    pixel_iterations = 1024 * 40_677 * 5 * 300
    assert m.kernel_bytes("iteration") == pixel_iterations * 64 + 7500 * 1024 * 32
    assert m.share("iteration") > 0.98


def test_levels_and_rows_add_up():
    m = tm.traffic(TVL1Params(), 96, 96, 4)
    assert sum(r.launches for r in m.rows) == m.total_launches
    assert sum(r + w for r, w in m.by_level().values()) == pytest.approx(m.total_bytes, rel=1e-12)
    assert set(m.by_level()) == set(range(len(m.sizes)))
    # the coarsest level holds the u memsets; level 0 the input copies and the output
    assert m.level(len(m.sizes) - 1)["memset"].launches == 3 + 6
    assert m.level(0)["memcpy"].launches == 2 and m.level(0)["output"].launches == 1


def test_bytes_scale_with_n_and_launches_do_not():
    a, b = tm.traffic(TVL1Params(), 64, 64, 3), tm.traffic(TVL1Params(), 64, 64, 12)
    assert b.total_bytes == 4 * a.total_bytes
    assert a.launches == b.launches


def test_converged_pairs_copy_iterates_only():
    params = TVL1Params(nscales=1, warps=1, outer_iterations=1, inner_iterations=2, median_size=5)
    done = tm.traffic(params, 32, 32, 1, converged_fraction=1.0)
    k = done.by_kernel()
    assert k["iteration"] == (2 * (6 * 4 * PX + 8), 2 * (6 * 4 * PX + 8))  # carry_over: 6 planes, flag
    live = tm.traffic(params, 32, 32, 1).by_kernel()
    assert k["median"] == live["median"]  # a converged pair's median copies the same planes
    assert done.launches == tm.launches(params, 32, 32)
    half = tm.traffic(params, 32, 32, 1, converged_fraction=0.5).by_kernel()["iteration"]
    assert half[0] == pytest.approx((k["iteration"][0] + live["iteration"][0]) / 2)
    # the proposed skip: a converged pair moves its flags only
    skip = tm.traffic(params, 32, 32, 1, converged_fraction=1.0, converged_skip=True).by_kernel()
    assert skip["iteration"] == (2 * 8, 2 * 8) and skip["median"] == (8, 0)
    with pytest.raises(ValueError):
        tm.traffic(params, 32, 32, 1, converged_fraction=1.5)


def test_pairs_per_second_is_linear_in_bandwidth():
    m = tm.traffic(TVL1Params(), 128, 128, 1024)
    one = tm.predicted_pairs_per_second(m, 1e12)
    assert tm.predicted_pairs_per_second(m, 3e12) == pytest.approx(3 * one)
    assert tm.predicted_pairs_per_second(m, 2e12, efficiency=0.5) == pytest.approx(one)
    assert one == pytest.approx(1024 / (m.total_bytes / 1e12))
    # the headline: ~850 pairs/s with float state at 3.35 TB/s, twice that with half
    assert tm.predicted_pairs_per_second(m, 3.35e12) == pytest.approx(848, abs=1)
    h = tm.traffic(TVL1Params(), 128, 128, 1024, half_state=True)
    assert tm.predicted_pairs_per_second(h, 3.35e12) == pytest.approx(1695, abs=1)


def test_launch_overhead():
    counts = tm.launches(TVL1Params(), 128, 128)
    assert tm.launch_overhead_seconds(counts) == pytest.approx(7857 * 3e-6)
    assert tm.launch_overhead_seconds(100, per_launch_s=1e-6) == pytest.approx(1e-4)
    m = tm.traffic(TVL1Params(), 128, 128, 1)
    assert tm.launch_overhead_seconds(m) == tm.launch_overhead_seconds(counts)
    # at N=1 the launches bound the batch, at N=1024 the bytes do
    n_star = tm.launch_bound_below(TVL1Params(), 128, 128, 3.35e12)
    assert 1 < n_star < 1024
    assert tm.batch_seconds(m, 3.35e12) == tm.launch_overhead_seconds(m)
    big = tm.traffic(TVL1Params(), 128, 128, 1024)
    assert tm.batch_seconds(big, 3.35e12) == tm.memory_seconds(big, 3.35e12)


def test_fusion_helpers():
    # k iterations on 32x32 tiles with a halo of k: (10 (1 + 2k/32)^2 + 6) / k state planes
    assert tm.temporal_blocking_bytes_per_pixel_iteration(4, 32, 1) == pytest.approx(4 * (10 * (34 / 32) ** 2 + 6))
    assert tm.temporal_blocking_bytes_per_pixel_iteration(2, 32, 5) == pytest.approx(2 * (10 * (42 / 32) ** 2 + 6) / 5)
    assert tm.l2_working_set_per_pair(128, 128, False) == 16 * 4 * 128 * 128
    assert tm.iteration_flops_per_pixel(False) == 101
    f = tm.max_active_fraction(1e4, TVL1Params(), 128, 128, False, 3.35e12, 0.4)
    m = tm.traffic(TVL1Params(), 128, 128, 1024, False, 1 - f, converged_skip=True)
    assert tm.predicted_pairs_per_second(m, 3.35e12, 0.4) == pytest.approx(1e4)


def test_the_model_names_the_solver_kernels():
    """A guard against drift: every kernel the model counts is still defined in the CUDA source."""
    source = (REPO / "csrc" / "ops" / "cuda" / "tvl1_kernel.cuh").read_text()
    for name in tm.KERNELS:
        if name == "reset_errors":
            assert "reset_errors_kernel" in source
        else:
            assert f"{name}_kernel" in source, name
    assert "carry_over(" in source and "cudaMemsetAsync" in source and "cudaMemcpyAsync" in source


def test_table_prints(capsys):
    tm.main(["--n", "256", "--kernels"])
    out = capsys.readouterr().out
    assert "| opencv | float | 5 (40,677) | 7,857 (7,822 + 35)" in out
    assert "| ipol | half |" in out and "| iteration | 7,500 |" in out
