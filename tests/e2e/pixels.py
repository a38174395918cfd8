"""Reading a browser's screenshot (PNG) without an imaging library: its pixels, to check that a region is drawn.

Chromium's screenshots are 8-bit truecolour PNGs (RGB or RGBA), not interlaced: that is all :func:`decode_png` reads.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Image:
    """Pixels as rows of (r, g, b) tuples."""

    width: int
    height: int
    rows: list[list[tuple[int, int, int]]]

    def region(self, left: int, top: int, width: int, height: int) -> Image:
        """The pixels of a rectangle (clipped to the image)."""
        left, top = max(0, left), max(0, top)
        right, bottom = min(self.width, left + width), min(self.height, top + height)
        rows = [row[left:right] for row in self.rows[top:bottom]]
        return Image(max(0, right - left), max(0, bottom - top), rows)

    def colors(self) -> set[tuple[int, int, int]]:
        """Every colour in the image."""
        return {pixel for row in self.rows for pixel in row}

    def ink(self, background: tuple[int, int, int] = (255, 255, 255)) -> float:
        """The fraction of pixels that differ from ``background`` (0 for a blank image)."""
        total = self.width * self.height
        if total == 0:
            return 0.0
        return sum(1 for row in self.rows for pixel in row if pixel != background) / total


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Image:
    """The pixels of an 8-bit RGB or RGBA, non-interlaced PNG (alpha dropped)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG")
    position, idat = len(SIGNATURE), bytearray()
    width = height = channels = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(idat))
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
        rows.append([(line[x], line[x + 1], line[x + 2]) for x in range(0, stride, channels)])
        previous = line
    return Image(width, height, rows)
