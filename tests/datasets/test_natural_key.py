"""One natural sort key (fastmer.datasets.common.natural_key) for the long-video loaders,
SMIC's clip folders (case-sensitive) and image-sequence frames (fastmer.decode.engines): the
order of the three keys it replaced, on random names; column letters from openpyxl."""

import os
import re

import numpy as np

from fastmer.datasets.common import natural_key
from fastmer.datasets.long_common import column_letter


def _long_common_key(name):  # fastmer.datasets.long_common before
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", name) if part)


def _smic_key(name):  # fastmer.datasets.smic before (case-sensitive)
    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", name)]


def _engines_key(path):  # fastmer.decode.engines before (a path: its file name)
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", os.path.basename(path).lower())]


def _names(rng, n):
    alphabet = list("aAbBsS_-.0123456789") + ["ne", "NE", "img", "Image", "spNO.", "reg_s", "00", "10"]
    return ["".join(rng.choice(alphabet, size=int(rng.integers(0, 8)))) for _ in range(n)]


def test_the_order_of_the_keys_it_replaced():
    rng = np.random.default_rng(0)
    for _ in range(1500):
        names = _names(rng, int(rng.integers(1, 12)))
        assert sorted(names, key=natural_key) == sorted(names, key=_long_common_key)
        assert (sorted(names, key=lambda n: natural_key(n, case_sensitive=True)) == sorted(names, key=_smic_key))
        paths = [os.path.join("frames", name + ".jpg") for name in names]
        assert (sorted(paths, key=lambda p: natural_key(os.path.basename(p))) == sorted(paths, key=_engines_key))


def test_natural_order_and_case():
    assert sorted(["img10.jpg", "img9.jpg", "Img11.jpg"], key=natural_key) == ["img9.jpg", "img10.jpg", "Img11.jpg"]
    assert sorted(["s1_ne_10", "s1_ne_2", "s1_po_1"], key=natural_key) == ["s1_ne_2", "s1_ne_10", "s1_po_1"]
    assert sorted(["b1", "A1"], key=lambda n: natural_key(n, case_sensitive=True)) == ["A1", "b1"]
    assert sorted(["B1", "a1"], key=lambda n: natural_key(n, case_sensitive=True)) == ["B1", "a1"]
    assert sorted(["B1", "a1"], key=natural_key) == ["a1", "B1"]
    assert natural_key("") == ()


def test_column_letters():
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702, 16383)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA", "XFD"]
