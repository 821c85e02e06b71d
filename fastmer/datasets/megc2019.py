"""The MEGC 2019 composite database (See et al., FG 2019): SMIC-HS + CASME II + SAMM, 3 classes.

Layout: ROOT holds the three corpora, each in its own documented layout
(:mod:`~fastmer.datasets.smic`, :mod:`~fastmer.datasets.casme2`,
:mod:`~fastmer.datasets.samm`), as sub-folders found by these names, tried in this order,
each name matched case-insensitively (so ``SMIC``, ``Casme2``... match too)::

    smic:   smic, SMIC-HS, HS             (smic's loader also detects a nested HS/)
    casme2: casme2, CASME_II, CASME2_RAW_selected, CASME2_RAW, CASME2-RAW
    samm:   samm, SAMM

or given explicitly (``smic_root=``, ``casme2_root=``, ``samm_root=``; then ROOT may be
None). Each
corpus's spreadsheet is searched as its loader does, in the corpus folder and its parent
(so ``ROOT/CASME2-coding-*.xlsx`` and ``ROOT/SAMM_Micro_FACS_Codes_v2.xlsx`` are found), or
given with ``casme2_spreadsheet=`` / ``samm_spreadsheet=``.

Membership is the official list, not a rule. The 442 clips (164 SMIC-HS, 145 CASME II,
133 SAMM; 16 + 24 + 28 = 68 subjects, namespaced per corpus: ``smic/s1``,
``casme2/sub01``, ``samm/006``) are listed in ``fastmer/datasets/data/megc2019_composite.csv``
(:func:`official_members`). A clip is returned when its labels map under the
``megc2019-3class`` protocol (negative = repression, anger, contempt, disgust, fear,
sadness; positive = happiness; surprise; the default protocol of ``load("megc2019", ...)``)
*and* it is in the official list. The rest is counted in ``report.excluded``:

* ``label_not_in_megc2019-3class``: the labels do not map (CASME II's and SAMM's ``others``).
* ``not_in_official_composite``: the labels map but the challenge left the clip out. This is
  where CASME II's ``sub04/EP12_01f`` (apex not annotated) and ``sub05/EP09_05f`` (onset ==
  apex) go, and CASME II's fear and sadness clips.
* ``official_clip_missing``: official clips not returned because the user's copy has no
  row for them or their annotated emotion does not map (then they are also under
  ``label_not_in_megc2019-3class``). This is exactly the official list minus the clips
  returned.
* ``duplicate_clip``: a second clip with the uid of one already returned (a safety net:
  the corpus loaders already return each clip once, noting a repeated spreadsheet row as
  ``duplicate_row`` on the clip kept).
* the corpus loaders' own exclusions (``row_unusable``, ``frame_number_invalid``: rows of
  a spreadsheet that make no clip), under their names.

``report.details`` gathers the corpus loaders' row-level findings (file, row, column).

Official clips whose frames are absent are still members (noted ``folder_missing`` /
``frames_missing``, like any defect). ``report.defects`` holds the defects of the returned
clips only. :func:`membership_matches_official` tells whether the returned membership
equals the official one (from the clips, or from the report) and says how it differs::

    clips = fastmer.datasets.load("megc2019", root)
    ok, message = membership_matches_official(clips)
    assert ok, message

Clips are returned in the official list's order and keep their corpus as ``dataset``
(``smic``, ``casme2``, ``samm``), their own fps and their annotated emotion words (the
protocol maps them to classes at training time).
"""

from __future__ import annotations

import csv
import importlib.resources
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from fastmer.datasets import casme2, samm, smic
from fastmer.datasets.clip import Clip
from fastmer.datasets.common import find_child
from fastmer.datasets.labels import get_protocol
from fastmer.datasets.report import ClipList, LoadReport

NAME = "megc2019"
DEFAULT_PROTOCOL = "megc2019-3class"
CORPORA = ("smic", "casme2", "samm")
FOLDER_NAMES = {
    "smic": ("smic", "SMIC-HS", "HS"),
    "casme2": ("casme2", "CASME_II", "CASME2_RAW_selected", "CASME2_RAW", "CASME2-RAW"),
    "samm": ("samm", "SAMM"),
}
OFFICIAL_COUNTS = {"smic": 164, "casme2": 145, "samm": 133}
_LOADERS = {"smic": smic, "casme2": casme2, "samm": samm}


@lru_cache(maxsize=1)
def _official() -> tuple[str, ...]:
    text = importlib.resources.files("fastmer.datasets").joinpath("data", "megc2019_composite.csv").read_text("utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    members = tuple(f"{r['dataset']}/{r['subject']}/{r['clip_id']}" for r in csv.DictReader(lines))
    counts = {c: sum(u.startswith(f"{c}/") for u in members) for c in CORPORA}
    if counts != OFFICIAL_COUNTS or len(set(members)) != len(members):  # a damaged installation
        raise RuntimeError(f"megc2019_composite.csv is damaged: {counts}, expected {OFFICIAL_COUNTS}")
    return members


def official_members() -> tuple[str, ...]:
    """The uids (``"casme2/sub01/EP02_01f"``) of the 442 official clips, in the list's order."""
    return _official()


class Membership(NamedTuple):
    """What :func:`membership_matches_official` found: an ``(ok, message)`` pair whose truth
    is ``ok`` (a plain tuple would always be true, so ``assert check`` would never fail).

    Attributes:
        ok: the membership equals the official list.
        message: one line: the counts when it matches, else what differs (official clips
            missing, clips not in the list, duplicates; the first few of each).
    """

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok


def _shown(uids: list[str], limit: int = 5) -> str:
    return ", ".join(uids[:limit]) + (f" (+{len(uids) - limit} more)" if len(uids) > limit else "")


def membership_matches_official(report_or_clips: LoadReport | Iterable[Clip]) -> Membership:
    """Whether a composite's membership equals the official MEGC 2019 list, and why not.

    Given clips (e.g. what :func:`load` returned, possibly filtered since), whether their
    uids are exactly the official ones, each once. Given a :class:`LoadReport` of
    :func:`load`, whether no official clip was reported missing (:func:`load` never returns
    a non-official clip).

    Returns:
        A :class:`Membership`: truthy when it matches, unpacking as ``(ok, message)``.

    Example:
        >>> ok, message = membership_matches_official([])
        >>> ok, message.split(";")[0]
        (False, 'not the official MEGC 2019 composite: 0 clips, 442 official')
    """
    official = _official()
    expected = f"{len(official)} official"
    if isinstance(report_or_clips, LoadReport):
        report = report_or_clips
        if report.dataset != NAME:
            return Membership(False, f"not a {NAME} load report (dataset {report.dataset!r})")
        missing = report.excluded.get("official_clip_missing", [])
        if missing:
            return Membership(False, f"{len(missing)} official clip(s) missing: {_shown(missing)}")
        return Membership(True, f"all {expected} clips loaded")
    clips = list(report_or_clips)
    uids = [clip.uid for clip in clips]
    missing, extra = membership_diff(clips)
    duplicates = sorted(uid for uid, n in Counter(uids).items() if n > 1)
    if not (missing or extra or duplicates):
        subjects = len({u.rsplit("/", 1)[0] for u in uids})
        counts = ", ".join(f"{sum(u.startswith(f'{c}/') for u in uids)} {c}" for c in CORPORA)
        return Membership(True, f"{len(uids)} clips ({counts}) from {subjects} subjects = the official list")
    parts = [f"not the official MEGC 2019 composite: {len(uids)} clips, {expected}"]
    if missing:
        parts.append(f"{len(missing)} official clip(s) missing: {_shown(missing)}")
    if extra:
        parts.append(f"{len(extra)} clip(s) not in the official list: {_shown(extra)}")
    if duplicates:
        parts.append(f"{len(duplicates)} clip(s) listed twice: {_shown(duplicates)}")
    return Membership(False, "; ".join(parts))


def membership_diff(clips: Iterable[Clip]) -> tuple[list[str], list[str]]:
    """(official uids absent from ``clips``, uids of ``clips`` not in the official list)."""
    uids = {clip.uid for clip in clips}
    official = _official()
    return [u for u in official if u not in uids], sorted(uids - set(official))


def find_corpus(root: Path, corpus: str) -> Path:
    """The sub-folder of ROOT holding ``corpus`` (FileNotFoundError naming the names searched)."""
    found = find_child(root, *FOLDER_NAMES[corpus])
    if found is None or not found.is_dir():
        raise FileNotFoundError(
            f"no {corpus} folder in {root} (searched, case-insensitively: {', '.join(FOLDER_NAMES[corpus])}); "
            f"pass {corpus}_root= explicitly"
        )
    return found


def load(
    root: str | Path | None,
    *,
    smic_root: str | Path | None = None,
    casme2_root: str | Path | None = None,
    samm_root: str | Path | None = None,
    casme2_spreadsheet: str | Path | None = None,
    samm_spreadsheet: str | Path | None = None,
) -> ClipList:
    """The MEGC 2019 composite: official members of SMIC-HS, CASME II and SAMM.

    Args:
        root: folder holding the three corpora (see the module docstring for the names
            searched); may be None when all three are given.
        smic_root, casme2_root, samm_root: a corpus's folder, overriding the search in
            ``root``.
        casme2_spreadsheet, samm_spreadsheet: the corpora's spreadsheets, if not found
            beside them.

    Returns:
        The member clips in the official list's order; ``.report`` (dataset
        ``"megc2019"``) counts the rows read, the defects of the returned clips and the
        exclusions (see the module docstring), and holds the corpus reports' details.
        The per-corpus reports are not kept.

    Raises:
        FileNotFoundError: a corpus folder or spreadsheet is missing; ValueError: a
        spreadsheet cannot be read.
    """
    given = {"smic": smic_root, "casme2": casme2_root, "samm": samm_root}
    if root is None and any(v is None for v in given.values()):
        raise ValueError("megc2019: give root, or all of smic_root=, casme2_root= and samm_root=")
    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a directory")
    options = {"smic": {}, "casme2": {"spreadsheet": casme2_spreadsheet}, "samm": {"spreadsheet": samm_spreadsheet}}
    protocol = get_protocol(DEFAULT_PROTOCOL)
    order = {uid: i for i, uid in enumerate(_official())}
    report = LoadReport(NAME)
    kept: dict[str, Clip] = {}
    corpus_defects: dict[str, set[str]] = {}  # defect -> uids, as the corpus loaders noted them
    folders = {c: Path(given[c]) if given[c] is not None else find_corpus(Path(root), c) for c in CORPORA}
    for corpus in CORPORA:  # every folder is found before any corpus is read
        opts = {k: v for k, v in options[corpus].items() if v is not None}
        clips = _LOADERS[corpus].load(folders[corpus], **opts)
        report.rows += clips.report.rows
        report.details.extend(clips.report.details)
        for reason, ids in clips.report.excluded.items():
            for uid in ids:
                report.exclude(reason, uid)
        for defect, uids in clips.report.defects.items():
            corpus_defects.setdefault(defect, set()).update(uids)
        for clip in clips:
            if protocol.classes_of(clip.labels) is None:
                report.exclude(f"label_not_in_{DEFAULT_PROTOCOL}", clip.uid)
            elif clip.uid not in order:
                report.exclude("not_in_official_composite", clip.uid)
            elif clip.uid in kept:
                report.exclude("duplicate_clip", clip.uid)
            else:
                kept[clip.uid] = clip
    members = sorted(kept.values(), key=lambda c: order[c.uid])
    for clip in members:  # the defects of the returned clips (a loader may note some only in its report)
        for defect in dict.fromkeys([*clip.notes, *(d for d, uids in corpus_defects.items() if clip.uid in uids)]):
            report.note(defect, clip.uid)
    for uid in _official():
        if uid not in kept:
            report.exclude("official_clip_missing", uid)
    return ClipList(members, report)
