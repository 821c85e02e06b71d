"""Micro-expression corpora as uniform lists of :class:`~fastmer.datasets.clip.Clip`.

``load(name, root)`` reads a corpus in its documented layout and returns a
:class:`~fastmer.datasets.report.ClipList` whose ``.report`` counts the annotation defects
found (kept, noted on the clips) and the clips excluded; its ``details`` name the file,
row and column of each annotation row skipped (a blank or unreadable subject, an
unreadable frame number) or repeating another (the clip is returned once, noted
``duplicate_row``). A bad row never stops a load. The corpora (:data:`DATASETS`;
each module's docstring documents its layout):

==========  ================================================  ===  ==========================
name        corpus                                            fps  root
==========  ================================================  ===  ==========================
casme2      CASME II                                          200  ``subNN/EPxx_yy/imgN.jpg``
samm        SAMM                                              200  ``sss/sss_i_j/sss_fffff.jpg``
smic        SMIC-HS (no apex annotated)                       100  ``sN/micro/<emotion>/<clip>``
mmew        MMEW, micro-expressions                            90  ``Micro_Expression/<emotion>``
casme3      CAS(ME)³ Part A                                    30  ``spNO.n/<letter>/color``
4dme        4DME (multi-label; two views per frame)            60  ``<sub_ID>/<fold_name>``
megc2019    MEGC 2019 composite: SMIC-HS + CASME II + SAMM      -  ``{smic,casme2,samm}/``
manifest    any corpus listed in a CSV / Parquet table          -  the manifest file
videos      unannotated videos, one clip each (scoring)         -  a video, folder or list
==========  ================================================  ===  ==========================

A module may name a ``DEFAULT_PROTOCOL`` (``megc2019``: ``megc2019-3class``), applied when
``protocol`` is not given. The synthetic corpus generator (:mod:`fastmer.datasets.synth`)
writes the CASME II layout.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fastmer.datasets.clip import Clip
from fastmer.datasets.labels import LABEL_PROTOCOLS, LabelProtocol, get_protocol
from fastmer.datasets.report import ClipList, Defect, LoadReport

# name -> module with load(root, **options) -> ClipList
DATASETS = {
    "casme2": "fastmer.datasets.casme2",
    "samm": "fastmer.datasets.samm",
    "smic": "fastmer.datasets.smic",
    "mmew": "fastmer.datasets.mmew",
    "casme3": "fastmer.datasets.casme3",
    "4dme": "fastmer.datasets.fourdme",
    "megc2019": "fastmer.datasets.megc2019",
    "manifest": "fastmer.datasets.manifest",
    "videos": "fastmer.datasets.videos",
}


def load(name: str, root: str | Path, protocol: str | None = None, **options: object) -> ClipList:
    """Clips of corpus ``name`` stored under ``root``.

    Args:
        name: one of :data:`DATASETS`.
        root: the corpus folder (for ``manifest``, the manifest file).
        protocol: a label protocol (:data:`LABEL_PROTOCOLS`); clips whose labels it
            excludes are dropped and counted in ``report.excluded["label_not_in_<protocol>"]``.
            Labels stay the annotated words; the protocol maps them at training time.
            Default: the corpus's ``DEFAULT_PROTOCOL`` if it has one, else none.
        options: adapter options (e.g. ``spreadsheet=``).

    Raises:
        ValueError: unknown dataset or protocol; FileNotFoundError: missing root or annotations.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    module = importlib.import_module(DATASETS[name])
    protocol = protocol if protocol is not None else getattr(module, "DEFAULT_PROTOCOL", None)
    label_protocol = get_protocol(protocol) if protocol is not None else None
    clips = module.load(root, **options)
    if label_protocol is None:
        return clips
    kept = ClipList([], clips.report)
    for clip in clips:
        if label_protocol.classes_of(clip.labels) is None:
            clips.report.exclude(f"label_not_in_{label_protocol.name}", clip.uid)
        else:
            kept.append(clip)
    return kept


__all__ = ["DATASETS", "LABEL_PROTOCOLS", "Clip", "ClipList", "Defect", "LabelProtocol", "LoadReport", "get_protocol",
           "load"]
