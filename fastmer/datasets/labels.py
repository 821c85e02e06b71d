"""Emotion words and named label protocols: which annotated emotions form which classes.

Loaders store annotated emotions as canonical words (:func:`normalize_emotion`: lower case,
synonyms folded, e.g. CAS(ME)³'s "happy" and SAMM's "Other"). A protocol maps canonical
words to the classes of a task; words it does not list are excluded from that task and
counted in reports. Every protocol is defined here, in one table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# Spelling variants seen in the releases -> the canonical word.
SYNONYMS: Mapping[str, str] = MappingProxyType({
    "happy": "happiness",
    "sad": "sadness",
    "other": "others",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "angry": "anger",
    "repressed": "repression",
    "ne": "negative",
    "po": "positive",
    "sur": "surprise",
})


def normalize_emotion(word: object) -> str:
    """Canonical lower-case emotion word (``" Happy "`` -> ``"happiness"``); ``""`` if blank."""
    text = re.sub(r"\s+", " ", str(word if word is not None else "")).strip().lower()
    return SYNONYMS.get(text, text)


def split_labels(value: object) -> tuple[str, ...]:
    """Annotated label cell -> canonical words; multi-label cells use ``+``, ``,`` or ``;``
    (4DME's ``"Surprise+Positive"`` -> ``("surprise", "positive")``)."""
    words = (normalize_emotion(part) for part in re.split(r"[+,;/]", str(value if value is not None else "")))
    return tuple(dict.fromkeys(w for w in words if w))  # ordered, without duplicates


@dataclass(frozen=True)
class LabelProtocol:
    """Classes of a task and the emotion words mapped onto them.

    Attributes:
        name: protocol name (``fastmer train --labels``).
        classes: class names, in output order.
        mapping: canonical emotion word -> class.
        description: what the protocol is and what it excludes.
        multilabel: a clip may belong to several classes (one output per class).
    """

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, str]
    description: str
    multilabel: bool = False

    def map(self, emotion: str) -> str | None:
        """Class of an annotated emotion word, or None if the protocol excludes it."""
        return self.mapping.get(normalize_emotion(emotion))

    def index(self, emotion: str) -> int | None:
        cls = self.map(emotion)
        return None if cls is None else self.classes.index(cls)

    def classes_of(self, labels: tuple[str, ...]) -> tuple[str, ...] | None:
        """The classes of a clip's labels, or None if the protocol excludes the clip.

        Single-label protocols need exactly one label that maps; multi-label protocols keep
        the clip when every label maps (an unmapped label would silently change its target).
        """
        mapped = [self.map(label) for label in labels]
        if not mapped or any(m is None for m in mapped):
            return None
        if not self.multilabel and len(mapped) != 1:
            return None
        return tuple(dict.fromkeys(mapped))  # type: ignore[arg-type]


def _protocol(name: str, classes: tuple[str, ...], groups: dict[str, tuple[str, ...]], description: str,
              multilabel: bool = False) -> LabelProtocol:
    mapping = {word: cls for cls, words in groups.items() for word in words}
    assert set(mapping.values()) == set(classes), name
    assert all(normalize_emotion(word) == word for word in mapping), f"{name}: use canonical words"
    return LabelProtocol(name, classes, MappingProxyType(mapping), description, multilabel)


_NEGATIVE = ("repression", "anger", "contempt", "disgust", "fear", "sadness")

LABEL_PROTOCOLS: Mapping[str, LabelProtocol] = MappingProxyType(
    {
        p.name: p
        for p in (
            _protocol(
                "megc2019-3class",
                ("negative", "positive", "surprise"),
                {
                    "negative": (*_NEGATIVE, "negative"),
                    "positive": ("happiness", "positive"),
                    "surprise": ("surprise",),
                },
                "MEGC 2019 composite classes (See et al., FG 2019): negative = repression, anger, contempt, "
                "disgust, fear, sadness; positive = happiness; surprise; other emotions are excluded",
            ),
            _protocol(
                "casme2-5class",
                ("happiness", "disgust", "repression", "surprise", "others"),
                {c: (c,) for c in ("happiness", "disgust", "repression", "surprise", "others")},
                "CASME II 5 classes; fear and sadness (9 clips) are excluded",
            ),
            _protocol(
                "samm-5class",
                ("anger", "contempt", "happiness", "surprise", "others"),
                {c: (c,) for c in ("anger", "contempt", "happiness", "surprise", "others")},
                "SAMM 5 classes; disgust, fear and sadness are excluded",
            ),
            _protocol(
                "mmew-6class",
                ("happiness", "surprise", "disgust", "fear", "sadness", "others"),
                {c: (c,) for c in ("happiness", "surprise", "disgust", "fear", "sadness", "others")},
                "MMEW 6 classes (Ben et al., TPAMI 2021); anger is excluded",
            ),
            _protocol(
                "casme3-7class",
                ("anger", "disgust", "fear", "happiness", "others", "sadness", "surprise"),
                {c: (c,) for c in ("anger", "disgust", "fear", "happiness", "others", "sadness", "surprise")},
                "CAS(ME)³ part A, the 7 annotated emotions",
            ),
            _protocol(
                "4dme-multilabel",
                ("negative", "positive", "surprise", "repression", "others"),
                {c: (c,) for c in ("negative", "positive", "surprise", "repression", "others")},
                "4DME / 4DMR challenge: 5 emotion categories, several per clip",
                multilabel=True,
            ),
        )
    }
)


def get_protocol(name: str) -> LabelProtocol:
    """The protocol called ``name``; ValueError listing the known names otherwise."""
    try:
        return LABEL_PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown label protocol {name!r}; known: {', '.join(LABEL_PROTOCOLS)}") from None


# --- action units (FACS) ------------------------------------------------------------------
AU_RULE = (
    "action-unit cells are split on '+', ',', ';', '/' and whitespace; each part, upper-cased and without "
    "parentheses, reads [AU][side L/R/B/T/U]<number>[intensity A-E] and counts as AU<number> (side and intensity "
    "dropped: 'AU4', '4', 'L4', 'R4B' and '(4)' are all AU4); parts that do not read so (e.g. '?', FACS movement "
    "codes 'M57') are ignored and counted in the report"
)
_AU_PART = re.compile(r"^(?:AU)?(?:[LRBTU])?0*(\d{1,3})[A-E]?$")


def split_action_units(value: object) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """An annotated action-unit cell -> (AU numbers, sorted and unique; parts not understood).

    The one place for the rule (:data:`AU_RULE`): side prefixes (``L``/``R``, FACS's
    ``B``/``T``/``U``), intensity suffixes (``A``-``E``), an ``AU`` prefix and parentheses
    (uncertain codes) are dropped, so a unilateral or weak action counts as the action.

    Example:
        >>> split_action_units("AU4+L10")
        ((4, 10), ())
        >>> split_action_units("R12B + 6, ?")
        ((6, 12), ('?',))
    """
    text = str(value if value is not None else "").upper()
    text = re.sub(r"AU\s+(?=\d)", "AU", text)  # "AU 4" -> "AU4"
    aus, ignored = set(), []
    for part in re.split(r"[+,;/\s]+", text):
        part = part.strip().strip("()[]").strip()
        if not part:
            continue
        match = _AU_PART.match(part)
        if match and int(match.group(1)) > 0:
            aus.add(int(match.group(1)))
        else:
            ignored.append(part)
    return tuple(sorted(aus)), tuple(ignored)


def parse_action_units(value: object) -> tuple[int, ...]:
    """The AU numbers of an annotated cell (:func:`split_action_units`, ignored parts dropped).

    Example:
        >>> parse_action_units("1+2")
        (1, 2)
    """
    return split_action_units(value)[0]


def au_name(number: int) -> str:
    """Class name of an action unit: ``4`` -> ``"AU4"``."""
    return f"AU{int(number)}"
