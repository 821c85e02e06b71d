"""Resuming a feature store: which clips of a run it already holds, and which changed.

:func:`plan_resume` matches a run's clips with a store opened by
:class:`~fastmer.store.writer.StoreWriter` (by uid; each row records its clip's
fingerprint) and releases the stored clips whose annotation or source files changed
(:meth:`StoreWriter.supersede`). ``fastmer extract`` (:func:`fastmer.extract.extract`) and
``fastmer import`` (:func:`fastmer.store.importer.import_features`) resume by the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastmer.datasets.clip import VIEWS, Clip
from fastmer.store.writer import StoreWriter


@dataclass
class ResumePlan:
    """What a run does with the store it resumes (:func:`plan_resume`).

    Attributes:
        todo: corpus index -> clip to process, in corpus order.
        fingerprints: corpus index -> fingerprint of each clip to process (recorded in its rows).
        redone: why stored clips are processed again -> how many.
        removed: uids (one per clip, without ``@view``) of stored clips the run does not list.
        n_unverified: stored clips without a fingerprint, skipped without being checked.
    """

    todo: dict[int, Clip] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    redone: Counter[str] = field(default_factory=Counter)
    removed: list[str] = field(default_factory=list)
    n_unverified: int = 0

    def describe(self, store: str, n_clips: int, n_retried: int) -> list[str]:
        """The log lines of a resumed run."""
        stored = n_clips - len(self.todo)
        lines = [f"resuming {store}: {stored} of {n_clips} clips already stored"
                 + (f", {n_retried} failed clip(s) retried" if n_retried else "")]
        if self.redone:
            reasons = ", ".join(f"{why} ({n})" for why, n in sorted(self.redone.items(), key=lambda item: -item[1]))
            lines.append(f"{_clips(sum(self.redone.values()))} re-extracted: {reasons}")
        if self.removed:
            shown = ", ".join(self.removed[:20]) + (f" and {len(self.removed) - 20} more" if len(self.removed) > 20 else "")
            verb = "is" if len(self.removed) == 1 else "are"
            lines.append(f"{_clips(len(self.removed))} in the store {verb} no longer in the corpus: {shown} (kept; "
                         "--overwrite rebuilds the store from the corpus alone)")
        if self.n_unverified:
            lines.append(f"note: {_clips(self.n_unverified)} in the store have no fingerprint (written before fastmer "
                         "recorded them): kept without checking their annotation and files; --overwrite re-extracts them")
        return lines


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _what_changed(stored: str, now: str) -> str:
    """Why a clip's fingerprint changed (both ``"<annotation>:<source>"``)."""
    old, new = stored.split(":"), now.split(":")
    if len(old) != 2:
        return "fingerprint changed"
    annotation, source = old[0] != new[0], old[1] != new[1]
    return ("annotation and source files changed" if annotation and source
            else "annotation changed" if annotation else "source files changed")


def plan_resume(clips: Sequence[Clip], writer: StoreWriter) -> ResumePlan:
    """Match the run's clips with what the store holds; release the clips that changed.

    Clips are matched by uid (a clip's rows: its uid, or ``uid@view`` for split views).
    A stored clip whose fingerprint (:meth:`Clip.fingerprint`, taken here, before any frame
    is read) differs from the run's is released (:meth:`StoreWriter.supersede`) and
    processed again under its stored corpus index, so its new rows replace the old ones
    in place in the corpus order. Failed clips are retried the same way, and clips a
    killed run had released and not written yet (``writer.pending``) are processed under
    their recorded index. Rows without a fingerprint (stores written before fastmer
    recorded it) are taken as unchanged, and counted.

    Stored clips the run does not list (a row deleted from the coding sheet, or a run
    over a narrower protocol) are kept and reported in :attr:`ResumePlan.removed`, not
    deleted: a narrower or mistaken clip list then costs nothing, and ``--overwrite``
    gives a store of exactly the corpus. Clips new to the store are appended after the
    stored ones, which keeps the rows in corpus order only when they come after every
    stored clip of the run (a prefix was stored: an interrupted first run); a new clip
    listed before a stored one, or stored clips listed in another order, would break that
    order, and such a store is refused, as is a store none of whose clips the run lists.

    Returns:
        The plan; ``todo`` holds the clips to process by corpus index, in corpus order.

    Raises:
        FileExistsError: the store was extracted from other clips, or in another order.
    """
    def refuse(why: str) -> FileExistsError:
        return FileExistsError(f"store {writer.path} was extracted from other clips ({why}), so it cannot be resumed: "
                               "use --overwrite to replace it, or another --out")

    plan = ResumePlan()
    known: dict[str, int] = {uid: index for index, clip in writer.stored.items() for uid in clip.uids}
    for index, uids in writer.pending.items():
        known.update(dict.fromkeys(uids, index))
    next_index = max([*writer.stored, *writer.pending], default=-1) + 1
    matched: set[int] = set()
    last: Clip | None = None  # the last clip of the run found in the store
    first_new: Clip | None = None  # the first clip of the run not in it
    for clip in clips:
        fingerprint = clip.fingerprint()
        index = next((known[uid] for uid in (clip.uid, *(f"{clip.uid}@{view}" for view in VIEWS[1:])) if uid in known),
                     None)
        if index is None:
            first_new = first_new or clip
            plan.todo[next_index], plan.fingerprints[next_index] = clip, fingerprint
            next_index += 1
            continue
        stored = writer.stored.get(index)
        uids = stored.uids if stored else writer.pending[index]
        if index in matched or not all(uid == clip.uid or uid.startswith(clip.uid + "@") for uid in uids):
            raise refuse(f"it holds {', '.join(uids)} as clip {index}; the run lists {clip.uid}")
        if first_new is not None:
            raise refuse(f"{first_new.uid} is not in it but comes before {clip.uid}, which is; new clips can only "
                         "follow the stored ones, to keep the rows in corpus order")
        if last is not None and index < max(matched):
            raise refuse(f"in another order: the run lists {clip.uid} after {last.uid}, the store before it")
        matched.add(index)
        last = clip
        if stored is None:  # released by a killed run, not written again yet
            plan.redone["re-extraction interrupted"] += 1
        elif index not in writer.committed:  # a failed clip, retried
            pass
        elif stored.fingerprint is None:
            plan.n_unverified += 1
            continue
        elif stored.fingerprint != fingerprint:
            plan.redone[_what_changed(stored.fingerprint, fingerprint)] += 1
            writer.supersede(index)
        else:
            continue
        plan.todo[index], plan.fingerprints[index] = clip, fingerprint
    if writer.stored and clips and not matched:
        some = next(iter(writer.stored.values())).uids[0]
        raise refuse(f"none of its {len(writer.stored)} clips, e.g. {some}, is among the run's {len(clips)}")
    for index, stored in sorted(writer.stored.items()):
        if index not in matched:
            if stored.failed and index not in writer.committed:
                writer.retain(index)  # kept like the others: not retried, its error row stays
            plan.removed.append(stored.uids[0] if len(stored.uids) == 1 else stored.uids[0].split("@")[0])
    return plan
