"""A guest's screen as a test sees it: `virsh screenshot` (PNG) decoded without extra libraries."""

from __future__ import annotations

import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.virt import URI


@dataclass
class Screen:
    width: int
    height: int
    pixels: list[tuple[int, ...]]  # row-major RGB(A) tuples

    def background(self) -> tuple[int, ...]:
        return Counter(self.pixels).most_common(1)[0][0]

    def foreground_share(self) -> float:
        """Share of pixels that differ from the most common colour (text on a blank screen is > 0)."""
        bg = self.background()
        return sum(1 for p in self.pixels if p != bg) / max(len(self.pixels), 1)

    def colours(self) -> int:
        return len(set(self.pixels))

    def rows_with_ink(self) -> int:
        """Rows of pixels holding anything but background: lines of text make bands of these."""
        bg = self.background()
        return sum(1 for y in range(self.height)
                   if any(p != bg for p in self.pixels[y * self.width:(y + 1) * self.width]))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Screen:
    """8-bit RGB/RGBA, non-interlaced PNG (what QEMU writes for `virsh screenshot`)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"not a PNG (starts with {data[:8]!r})")
    pos, idat = 8, b""
    width = height = 0
    channels = 3
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif ftype == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 0xFF
        pixels.extend(tuple(line[i:i + 3]) for i in range(0, stride, channels))
        prev = line
    return Screen(width, height, pixels)


def screenshot(domain: str, path: Path) -> Screen:
    proc = subprocess.run(["virsh", "-c", URI, "screenshot", domain, str(path)], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"virsh screenshot {domain} failed: {proc.stderr.strip()}")
    return decode_png(path.read_bytes())
