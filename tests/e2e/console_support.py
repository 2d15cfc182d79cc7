"""What the console tests share: guests with a screen and a talking serial port, a tiny RFB client, and
the console WebSocket opened the way a script would."""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.e2e import virt


class DomainEvents:
    """Domain events seen by `virsh event --loop` in a process of its own.

    Why not a connection in this process: pytest runs the async tiers first, and libvirtaio then owns
    libvirt's event loop for the whole process, so a callback registered here is never dispatched."""

    def __init__(self, name: str, timeout: float = 120):
        self.name = name
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            ["virsh", "-c", virt.URI, "event", "--domain", name, "--all", "--loop", "--timeout", str(int(timeout))],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        threading.Thread(target=self._read, name="virsh-event", daemon=True).start()
        # Only once virsh prints an event we caused do we know it is listening.
        marker = f"flint-test-{time.monotonic_ns()}"
        deadline = time.monotonic() + 30
        while not self.seen("metadata-change"):
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"virsh event never reported a metadata change for {name}")
            virt.virsh("desc", name, "--live", "--title", "--new-desc", marker)
            time.sleep(0.5)

    def _read(self) -> None:
        for line in self._proc.stdout:
            self.lines.append(line.strip())

    def seen(self, kind: str) -> bool:
        return any(f"event '{kind}'" in line for line in list(self.lines))

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> DomainEvents:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def serial_domain_xml(name: str) -> str:
    """The tiny ipxe.iso guest with SeaBIOS's serial console on: SeaBIOS and iPXE print to ttyS0 and read
    keys from it, and rebooting a second after "No bootable device" makes the output come again."""
    return virt.tiny_domain_xml(name).replace(
        '<boot dev="cdrom"/>', '<boot dev="cdrom"/><bios useserial="yes" rebootTimeout="1000"/>'
    )


def define_and_start(name: str, tmp: Path, xml: str | None = None) -> str:
    path = tmp / f"{name}.xml"
    path.write_text(xml or virt.tiny_domain_xml(name))
    virt.virsh("define", str(path))
    virt.virsh("start", name)
    return virt.virsh("domuuid", name).strip()


def ws_base(base: str) -> str:
    return base.replace("http://", "ws://").replace("https://", "wss://")


def ticket(api: httpx.Client, vm_id: str, kind: str = "vnc") -> dict:
    resp = api.post(f"/api/v1/vms/{vm_id}/console", json={"type": kind})
    assert resp.status_code == 201, resp.text
    return resp.json()


def open_ws(base: str, url: str, headers: dict[str, str], **kw):
    return connect(ws_base(base) + url, additional_headers=headers, open_timeout=15, max_size=None, **kw)


class Rfb:
    """Just enough of RFB 3.8 (security type None) to read what the server sends, over a WebSocket."""

    def __init__(self, ws):
        self.ws = ws
        self.buf = b""

    def _read(self, n: int, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self.buf += self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def handshake(self) -> tuple[int, int, str]:
        """Returns (width, height, desktop name) from ServerInit."""
        version = self._read(12)
        assert version.startswith(b"RFB 003."), version
        self.ws.send(b"RFB 003.008\n")
        types = self._read(self._read(1)[0])
        assert 1 in types, f"security types {list(types)} do not include None"
        self.ws.send(b"\x01")
        assert self._read(4) == b"\0\0\0\0", "security handshake failed"
        self.ws.send(b"\x01")  # shared
        width, height = struct.unpack(">HH", self._read(4))
        self._read(16)  # pixel format
        name = self._read(struct.unpack(">I", self._read(4))[0]).decode(errors="replace")
        self.ws.send(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))  # 32bpp xRGB
        self.ws.send(struct.pack(">BxHi", 2, 1, 0))  # raw encoding only
        return width, height, name

    def full_frame(self, width: int, height: int) -> bytes:
        """Ask for the whole screen and return its pixels (4 bytes each), raw."""
        self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        pixels = bytearray(width * height * 4)
        while True:
            kind = self._read(1)[0]
            if kind != 0:  # not a FramebufferUpdate (bell, colour map, cut text): skip what we know
                if kind == 2:
                    continue
                if kind == 3:
                    self._read(3)
                    self._read(struct.unpack(">I", self._read(4))[0])
                    continue
                raise AssertionError(f"unexpected RFB message type {kind}")
            self._read(1)
            (rects,) = struct.unpack(">H", self._read(2))
            got_pixels = False
            for _ in range(rects):
                x, y, w, h, enc = struct.unpack(">HHHHi", self._read(12))
                if enc == 0:
                    data = self._read(w * h * 4, timeout=30)
                    for row in range(h):
                        start = ((y + row) * width + x) * 4
                        pixels[start:start + w * 4] = data[row * w * 4:(row + 1) * w * 4]
                    got_pixels = True
            if got_pixels:
                return bytes(pixels)
