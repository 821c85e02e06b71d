"""Decoding: frames of a clip into arrays (image sequences now; video readers later)."""

from fastmer.decode.frames import read_gray, read_sequence

__all__ = ["read_gray", "read_sequence"]
