"""Builders of fixture trees for the dataset adapters' tests (no real data: tiny files only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest


def write_xlsx(path: Path, header: Sequence[object], rows: Iterable[Sequence[object]], *, sheet: str | None = None,
               preamble: int = 0, other_sheets: Sequence[str] = ()) -> Path:
    """An .xlsx workbook: ``other_sheets`` (empty-ish) first, then ``sheet`` holding
    ``preamble`` rows of text, the header row and ``rows``."""
    from openpyxl import Workbook

    workbook = Workbook()
    first = workbook.active
    for name in other_sheets:
        ws = workbook.create_sheet(name)
        ws.append(["not", "this", "sheet"])
    ws = first
    if sheet is not None:
        ws.title = sheet
    if other_sheets:
        workbook.move_sheet(ws, offset=len(other_sheets))
    for i in range(preamble):
        ws.append([f"text above the table, line {i + 1}"] if i % 3 else [None])
    ws.append(list(header))
    for row in rows:
        ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def write_sheets(path: Path, sheets: dict[str, Iterable[Sequence[object]]]) -> Path:
    """An .xlsx workbook of several sheets, in order, each holding its rows as given (no
    header row unless a row is one; ``[]`` writes a blank row)."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        ws = workbook.create_sheet(name)
        for row in rows:
            ws.append(list(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def make_frames(folder: Path, numbers: Iterable[int], name: str | Callable[[int], str] = "{}.jpg", *,
                image: bool = False) -> Path:
    """Frame files ``name.format(n)`` in ``folder`` (empty files; 8x8 images if ``image``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        path = folder / (name(n) if callable(name) else name.format(n))
        if image:
            import cv2
            import numpy as np

            assert cv2.imwrite(str(path), np.full((8, 8, 3), n % 256, np.uint8)), path
        else:
            path.write_bytes(b"")
    return folder


@pytest.fixture(scope="session")
def xlsx() -> Callable[..., Path]:
    """:func:`write_xlsx`."""
    return write_xlsx


@pytest.fixture(scope="session")
def xlsx_sheets() -> Callable[..., Path]:
    """:func:`write_sheets`."""
    return write_sheets


@pytest.fixture(scope="session")
def frames() -> Callable[..., Path]:
    """:func:`make_frames`."""
    return make_frames
