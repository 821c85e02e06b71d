"""What loading a corpus found: annotation defects (kept, noted) and exclusions (dropped).

Real releases have defects (CASME II's '/' apexes, apexes outside [onset, offset], onsets
equal to apexes, spreadsheet rows whose frames are absent, subject ids written as text in
one sheet and integers in another, a row listed twice). A loader never crashes on them:
every clip is kept with a note of its defects (extraction then spots the apex or records an
error row), and the report counts them. Rows that cannot make a clip (no subject, a subject
or frame-number cell that cannot be read) are excluded and counted; the report's
:attr:`LoadReport.details` says which row of which file, and which column, for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from fastmer.datasets.clip import Clip


class Defect(str, Enum):
    """Annotation defects a loader notes on a clip (``Clip.notes`` holds their values)."""

    APEX_MISSING = "apex_missing"  # not annotated ('/', blank, -1)
    APEX_OUTSIDE = "apex_outside"  # not in (onset, offset]
    ONSET_EQUALS_APEX = "onset_equals_apex"
    ONSET_OFFSET_INVALID = "onset_offset_invalid"  # missing, or onset >= offset
    FRAMES_MISSING = "frames_missing"  # frames between onset and offset absent on disk
    FOLDER_MISSING = "folder_missing"  # the clip's frame folder or video is absent
    SUBJECT_ID_TEXT = "subject_id_text"  # a subject id written as text ('01'), normalised
    VIDEO_UNREADABLE = "video_unreadable"  # an unannotated video whose frames could not be counted
    DUPLICATE_ROW = "duplicate_row"  # the clip is listed again by later row(s): kept once, the first row's annotation


@dataclass
class LoadReport:
    """Counts of what a loader read, kept and dropped.

    Attributes:
        dataset: dataset name.
        rows: annotation rows read.
        defects: defect kind -> uids of the (kept) clips that have it.
        excluded: reason -> ids of rows/clips not returned (e.g. a label outside the
            requested protocol; ``"<file name> row <n>"`` for a row that makes no clip).
        details: one line per row-level finding (a row skipped, a row repeating another),
            naming the file, the row as a spreadsheet program or editor shows it, and the
            column, e.g. ``".../CASME2-coding.xlsx, row 7, column Subject: 'x' is not a
            subject number; row skipped"``.
    """

    dataset: str
    rows: int = 0
    defects: dict[str, list[str]] = field(default_factory=dict)
    excluded: dict[str, list[str]] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)

    def note(self, defect: Defect | str, uid: str) -> None:
        self.defects.setdefault(str(defect.value if isinstance(defect, Defect) else defect), []).append(uid)

    def exclude(self, reason: str, uid: str) -> None:
        self.excluded.setdefault(reason, []).append(uid)

    def detail(self, line: str) -> None:
        """Record one line of :attr:`details`."""
        self.details.append(line)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "defects": {k: len(v) for k, v in sorted(self.defects.items())},
            "excluded": {k: len(v) for k, v in sorted(self.excluded.items())},
        }

    def summary(self) -> str:
        """One line, e.g. ``casme2: 255 rows -> 247 clips; defects: apex_missing 21; excluded: ...``."""
        counts = self.counts()
        parts = [f"{self.dataset}: {self.rows} rows"]
        for title in ("defects", "excluded"):
            if counts[title]:
                parts.append(f"{title}: " + ", ".join(f"{k} {n}" for k, n in counts[title].items()))
        return "; ".join(parts)

    def describe(self, limit: int | None = 20) -> str:
        """:meth:`summary` and, below it, the first ``limit`` (None: all) :attr:`details`."""
        shown = self.details if limit is None else self.details[:limit]
        lines = [self.summary(), *(f"  {line}" for line in shown)]
        if len(shown) < len(self.details):
            lines.append(f"  ... and {len(self.details) - len(shown)} more")
        return "\n".join(lines)


class ClipList(list):
    """A list of :class:`Clip` with the :class:`LoadReport` of the load that produced it."""

    def __init__(self, clips: list[Clip] = (), report: LoadReport | None = None) -> None:
        super().__init__(clips)
        self.report = report or LoadReport(dataset="")
