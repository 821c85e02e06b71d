"""The papers' ablation knobs of each representation, settable at extraction.

``fastmer extract --representation-option cof.theta=0.7,0.3`` (repeatable) reaches the
parameters the papers vary: COF's phase weights θ1/θ2 and direction handling, MM-COF's
modulation and threshold τ, the rank-pooling coefficients of every dynamic image (Bilen's
harmonic form or the linear 2t − T − 1), MI-DI's intensity measure and blur, MESTI's
weighting. :data:`REPRESENTATION_OPTIONS` is the one place that lists them with their
defaults; :func:`resolve_options` validates a request and fills the defaults in.

Only options that differ from the defaults are recorded in a store's parameters (and so
in its hash): a store extracted with the defaults has the parameters it had before the
options existed, and resumes; a knob turned gives another store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastmer.motion.dynamic import MESTI_WEIGHTINGS, RANK_POOL_COEFFICIENTS
from fastmer.motion.representations import COF_DIRECTIONS, COF_THETA, MM_COF_MODULATIONS, MM_COF_TAU

MIDI_INTENSITIES = ("difference", "flow")
"""MI-DI frame intensity (SPEC §7.2 [D]): mean |I_t − I_onset| (default) or the mean TV-L1
flow magnitude onset → t (one flow per frame: slower)."""


@dataclass(frozen=True)
class Option:
    """One knob: its default, how a command-line value is parsed, and what it means."""

    default: Any
    parse: Callable[[str], Any]
    help: str


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text
    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also NaN
        raise ValueError(f"must be a number >= 0, got {text!r}")
    return value


def _theta(text: str) -> tuple[float, float]:
    parts = [p for p in str(text).replace(";", ",").split(",") if p.strip()]
    if len(parts) != 2:
        raise ValueError(f"must be two weights θ1,θ2 (e.g. 0.7,0.3), got {text!r}")
    theta = (_non_negative(parts[0]), _non_negative(parts[1]))
    if theta[0] + theta[1] <= 0:
        raise ValueError(f"θ1 + θ2 must be > 0, got {text!r}")
    return theta


_COEFFICIENTS = Option("harmonic", _choice(RANK_POOL_COEFFICIENTS),
                       "rank-pooling weights: harmonic (Bilen et al.) or linear (2t − T − 1)")
_THETA = Option(COF_THETA, _theta, "phase weights θ1,θ2 of the combined magnitude (SPEC §1.3)")
_DIRECTION = Option("flip", _choice(COF_DIRECTIONS), "phase 2 sign-flipped (flip) or phase 1 only (onset_apex)")

REPRESENTATION_OPTIONS: dict[str, dict[str, Option]] = {
    "cof": {"theta": _THETA, "direction": _DIRECTION},
    "mm_cof": {"theta": _THETA, "direction": _DIRECTION,
               "modulation": Option("hard", _choice(MM_COF_MODULATIONS), "gate 1[Mc ≥ τ] (hard) or Mc (soft)"),
               "tau": Option(MM_COF_TAU, _non_negative, "threshold τ of the hard modulation (SPEC §3.2)")},
    "dynamic_image": {"coefficients": _COEFFICIENTS},
    "dynamic_image_phases": {"coefficients": _COEFFICIENTS},
    "trdi": {"coefficients": _COEFFICIENTS},
    "midi": {"coefficients": _COEFFICIENTS,
             "intensity": Option("difference", _choice(MIDI_INTENSITIES), "frame order by mean |I_t − I_onset| "
                                 "(difference) or by mean flow magnitude onset→t (flow)"),
             "sigma": Option(0.0, _non_negative, "Gaussian blur (px) before the difference intensity")},
    "mesti": {"coefficients": _COEFFICIENTS,
              "weighting": Option("rank_pool", _choice(MESTI_WEIGHTINGS), "apex-centred rank pooling or triangular")},
}
"""Representation → knob → :class:`Option`. Representations not listed have no knobs."""


def parse_option(text: str) -> tuple[str, str, Any]:
    """``"cof.theta=0.7,0.3"`` -> ``("cof", "theta", (0.7, 0.3))``.

    Raises:
        ValueError: not ``NAME.KEY=VALUE``, an unknown representation or knob (the message
            lists the known ones), or a value the knob does not take.
    """
    name_key, sep, value = str(text).partition("=")
    name, dot, key = name_key.strip().partition(".")
    if not sep or not dot or not name or not key:
        raise ValueError(f"representation option {text!r} is not NAME.KEY=VALUE (e.g. cof.theta=0.7,0.3)")
    if name not in REPRESENTATION_OPTIONS:
        raise ValueError(f"representation {name!r} has no options; those with options: {', '.join(REPRESENTATION_OPTIONS)}")
    knobs = REPRESENTATION_OPTIONS[name]
    if key not in knobs:
        raise ValueError(f"{name} has no option {key!r}; it has {', '.join(knobs)}")
    try:
        return name, key, knobs[key].parse(value.strip())
    except ValueError as exc:
        raise ValueError(f"{name}.{key}: {exc}") from exc


def resolve_options(requested: Mapping[str, Mapping[str, Any]] | None,
                    representations: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every knob of ``representations`` with the requested values over the defaults.

    Raises:
        ValueError: an option for a representation not among ``representations`` (it would
            silently do nothing), or an unknown knob or a bad value.
    """
    names = list(representations)
    requested = dict(requested or {})
    unused = [name for name in requested if name not in names]
    if unused:
        raise ValueError(f"options given for {', '.join(unused)}, which this extraction does not compute "
                         f"(representations: {', '.join(names)})")
    resolved: dict[str, dict[str, Any]] = {}
    for name in names:
        knobs = REPRESENTATION_OPTIONS.get(name, {})
        given = dict(requested.get(name) or {})
        unknown = [key for key in given if key not in knobs]
        if unknown:
            raise ValueError(f"{name} has no option(s) {', '.join(unknown)}" +
                             (f"; it has {', '.join(knobs)}" if knobs else ""))
        values = {}
        for key, option in knobs.items():
            value = given.get(key, option.default)
            # values from JSON (a store's parameters) or Python arrive unparsed: parse their text form
            values[key] = option.parse(",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))
        if values:
            resolved[name] = values
    return resolved


def non_default(resolved: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The knobs of ``resolved`` that differ from their defaults, JSON-ready (tuples as lists)."""
    out: dict[str, dict[str, Any]] = {}
    for name, values in resolved.items():
        changed = {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()
                   if value != REPRESENTATION_OPTIONS[name][key].default}
        if changed:
            out[name] = changed
    return out
