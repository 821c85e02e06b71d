"""The papers' ablation knobs from the command line (issue 18, item 3): parsed and checked,
recorded in the store's parameters and hash when not the default, and really used."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastmer.cli import main
from fastmer.config import ExtractConfig
from fastmer.datasets import load
from fastmer.extract import extract, flow_intensity
from fastmer.motion.dynamic import dynamic_images, mesti, phase_dynamic_images
from fastmer.motion.options import REPRESENTATION_OPTIONS, non_default, parse_option, resolve_options
from fastmer.motion.representations import cof, modulate_cof
from fastmer.store import open as open_store
from fastmer.store.schema import params_hash


def test_parse_option_reads_each_kind_of_knob():
    assert parse_option("cof.theta=0.7,0.3") == ("cof", "theta", (0.7, 0.3))
    assert parse_option(" mm_cof.tau = 0.25") == ("mm_cof", "tau", 0.25)
    assert parse_option("midi.intensity=flow") == ("midi", "intensity", "flow")
    assert parse_option("dynamic_image.coefficients=linear") == ("dynamic_image", "coefficients", "linear")


@pytest.mark.parametrize(("text", "message"), [
    ("cof.theta", "is not NAME.KEY=VALUE"),
    ("theta=0.5,0.5", "is not NAME.KEY=VALUE"),
    ("flow_phases.x=1", "has no options; those with options: cof, mm_cof"),
    ("cof.tau=0.2", "cof has no option 'tau'; it has theta, direction"),
    ("cof.theta=0.7", "cof.theta: must be two weights"),
    ("cof.theta=0,0", r"θ1 \+ θ2 must be > 0"),
    ("mm_cof.tau=-1", "mm_cof.tau: must be a number >= 0"),
    ("mm_cof.tau=nan", "must be a number >= 0"),
    ("mesti.weighting=gaussian", "must be one of rank_pool, triangular"),
])
def test_bad_options_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_option(text)


def test_defaults_are_filled_and_only_changes_are_recorded():
    resolved = resolve_options({"cof": {"theta": (0.7, 0.3)}}, ["cof", "mm_cof", "flow_phases"])
    assert resolved["cof"] == {"theta": (0.7, 0.3), "direction": "flip"}
    assert resolved["mm_cof"] == {name: option.default for name, option in REPRESENTATION_OPTIONS["mm_cof"].items()}
    assert "flow_phases" not in resolved
    assert non_default(resolved) == {"cof": {"theta": [0.7, 0.3]}}
    with pytest.raises(ValueError, match="options given for mesti, which this extraction does not compute"):
        resolve_options({"mesti": {"weighting": "triangular"}}, ["cof"])
    # the default configuration records no knobs: stores extracted before the knobs existed keep their hash
    assert "representation_options" not in ExtractConfig(face_detector="haar").feature_params("opencv-haar:x")


def test_linear_coefficients_against_a_float64_oracle():
    rng = np.random.default_rng(0)
    clips = [torch.from_numpy(rng.random((t, 5, 6))) for t in (2, 5, 9)]  # float64
    for clip, image in zip(clips, dynamic_images(clips, normalize=None, coefficients="linear"), strict=True):
        t = len(clip)
        alpha = np.array([2 * k - t - 1 for k in range(1, t + 1)], np.float64)
        np.testing.assert_allclose(image[0].numpy(), np.einsum("t,thw->hw", alpha, clip.numpy()), rtol=1e-12)
    harmonic = dynamic_images(clips[1:], normalize=None)
    assert not torch.allclose(harmonic, dynamic_images(clips[1:], normalize=None, coefficients="linear"))
    # every rank-pooling representation takes the choice: phases, MESTI
    clip = clips[2]
    oa, ao = phase_dynamic_images([clip], [4], normalize=None, coefficients="linear")[0]
    alpha5 = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(oa, torch.einsum("t,thw->hw", alpha5, clip[:5]))
    torch.testing.assert_close(ao, torch.einsum("t,thw->hw", alpha5, clip[4:]))
    m = mesti([clip], [4], normalize=None, coefficients="linear")[0, 0]
    torch.testing.assert_close(m, torch.einsum("t,thw->hw", alpha5, clip[:5]) + torch.einsum("t,thw->hw", alpha5, clip[4:].flip(0)))
    with pytest.raises(ValueError, match="coefficients must be one of"):
        dynamic_images(clips, coefficients="exact")


def test_flow_intensity_is_the_mean_magnitude_from_the_onset():
    clips = [np.zeros((4, 6, 6), np.uint8), np.zeros((3, 6, 6), np.uint8)]
    calls = []

    def flow(first, second):  # a flow of (k, 0) px for the k-th pair
        calls.append(len(first))
        out = torch.zeros(len(first), 2, 6, 6)
        out[:, 0] = torch.arange(1, len(first) + 1, dtype=torch.float32)[:, None, None]
        return out

    curves = flow_intensity(clips, flow)
    assert calls == [5]  # one call for the whole batch: 3 + 2 pairs
    assert [c.tolist() for c in curves] == [[0.0, 1.0, 2.0, 3.0], [0.0, 4.0, 5.0]]


@pytest.fixture(scope="module")
def stores(tiny_corpus, tmp_path_factory):
    """The same six clips with the default knobs and with every kind of knob turned."""
    clips = load("casme2", tiny_corpus)[:6]
    names = ("flow_phases", "cof", "mm_cof", "dynamic_image", "midi", "mesti")
    root = tmp_path_factory.mktemp("knobs")
    base = ExtractConfig(face_detector="haar", size=48, representations=names)
    turned = ExtractConfig(face_detector="haar", size=48, representations=names, representation_options={
        "cof": {"theta": (0.8, 0.2), "direction": "onset_apex"}, "mm_cof": {"modulation": "soft"},
        "dynamic_image": {"coefficients": "linear"}, "midi": {"intensity": "flow"},
        "mesti": {"weighting": "triangular"}})
    for name, config in (("default", base), ("turned", turned)):
        summary = extract(clips, root / name, config, log=lambda line: None)
        assert summary.n_failed == 0, summary.failures
    return open_store(root / "default"), open_store(root / "turned")


def test_knobs_change_the_stored_tensors_as_the_functions_say(stores):
    default, turned = stores
    phases = turned.tensor("flow_phases").double()
    onset_apex, apex_offset = phases[:, [0, 1]], phases[:, [4, 5]]  # u, v of each phase
    assert torch.equal(default.tensor("flow_phases"), phases.float())  # same flows: only the knobs differ
    expected = cof(onset_apex, apex_offset, theta1=0.8, theta2=0.2, direction="onset_apex")
    torch.testing.assert_close(turned.tensor("cof").double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(default.tensor("cof").double(), cof(onset_apex, apex_offset), atol=1e-5, rtol=1e-5)
    # mm_cof keeps COF's default θ and direction here (only its modulation was turned)
    soft = modulate_cof(cof(onset_apex, apex_offset), modulation="soft")
    torch.testing.assert_close(turned.tensor("mm_cof").double(), soft, atol=1e-5, rtol=1e-5)
    for name in ("dynamic_image", "midi", "mesti"):
        assert not torch.allclose(default.tensor(name), turned.tensor(name)), name


def test_knobs_are_recorded_in_the_parameters_and_hash(stores):
    default, turned = stores
    params = {name: json.loads((store.path / "store.json").read_text())["params"] for name, store in
              (("default", default), ("turned", turned))}
    assert "representation_options" not in params["default"]
    assert params["turned"]["representation_options"] == {
        "cof": {"theta": [0.8, 0.2], "direction": "onset_apex"}, "mm_cof": {"modulation": "soft"},
        "dynamic_image": {"coefficients": "linear"}, "midi": {"intensity": "flow"}, "mesti": {"weighting": "triangular"}}
    assert params_hash(params["default"]) != params_hash(params["turned"])
    # an engine trained on the turned store re-extracts raw clips with the same knobs
    config = ExtractConfig.from_params(params["turned"], ("cof", "mesti"))
    assert config.representation_options == {"cof": {"theta": [0.8, 0.2], "direction": "onset_apex"},
                                             "mesti": {"weighting": "triangular"}}
    assert config.resolved_options()["cof"]["theta"] == (0.8, 0.2)


def test_the_cli_takes_records_and_refuses_knobs(tiny_corpus, tmp_path):
    runner = CliRunner()
    base = ["extract", str(tiny_corpus), "--face-detector", "haar", "--size", "32", "--no-progress", "-r", "cof"]
    ok = runner.invoke(main, [*base, "-o", str(tmp_path / "s"), "--representation-option", "cof.theta=0.5,0.5"])
    assert ok.exit_code == 0, ok.output
    params = json.loads((tmp_path / "s" / "store.json").read_text())["params"]
    assert params["representation_options"] == {"cof": {"theta": [0.5, 0.5]}}
    for option, message in (("cof.theta=1", "must be two weights"), ("mesti.weighting=triangular", "does not compute"),
                            ("cof", "is not NAME.KEY=VALUE")):
        bad = runner.invoke(main, [*base, "-o", str(tmp_path / "bad"), "--representation-option", option])
        assert bad.exit_code in (1, 2) and message in bad.output, (option, bad.output)
        assert not (tmp_path / "bad").exists()
    twice = runner.invoke(main, [*base, "-o", str(tmp_path / "bad"), "--representation-option", "cof.theta=1,0",
                                 "--representation-option", "cof.theta=0,1"])
    assert twice.exit_code == 2 and "cof.theta given twice" in twice.output
