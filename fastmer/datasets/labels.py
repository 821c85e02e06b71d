"""Named label protocols: which annotated emotions form which classes. One table, here.

A protocol maps the (lower-case) emotion words of the annotations to class names; words
it does not list are excluded from that protocol (and counted as such in reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class LabelProtocol:
    """Classes of a task and the emotion words mapped onto them."""

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, str]
    description: str

    def map(self, emotion: str) -> str | None:
        """Class of an annotated emotion word, or None if the protocol excludes it."""
        return self.mapping.get(emotion.strip().lower())

    def index(self, emotion: str) -> int | None:
        cls = self.map(emotion)
        return None if cls is None else self.classes.index(cls)


def _protocol(name: str, classes: tuple[str, ...], groups: dict[str, tuple[str, ...]], description: str) -> LabelProtocol:
    mapping = {word: cls for cls, words in groups.items() for word in words}
    assert set(mapping.values()) == set(classes), name
    return LabelProtocol(name, classes, MappingProxyType(mapping), description)


LABEL_PROTOCOLS: Mapping[str, LabelProtocol] = MappingProxyType(
    {
        p.name: p
        for p in (
            _protocol(
                "megc2019-3class",
                ("negative", "positive", "surprise"),
                {
                    "negative": ("repression", "anger", "contempt", "disgust", "fear", "sadness", "negative"),
                    "positive": ("happiness", "positive"),
                    "surprise": ("surprise",),
                },
                "MEGC 2019 composite classes; other emotions (e.g. 'others') are excluded",
            ),
            _protocol(
                "casme2-5class",
                ("happiness", "disgust", "repression", "surprise", "others"),
                {
                    "happiness": ("happiness",),
                    "disgust": ("disgust",),
                    "repression": ("repression",),
                    "surprise": ("surprise",),
                    "others": ("others",),
                },
                "CASME II 5 classes; fear and sadness (9 clips) are excluded",
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
