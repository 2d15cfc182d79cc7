"""The smaller domain devices: graphics, serial, console, channel, video, input, rng, controller."""

from __future__ import annotations

from .base import YES_NO, Prop, XmlModel


class Graphics(XmlModel):
    """``<graphics type='vnc'|'spice'>``; ``port`` is -1 (or absent) while autoport has not run."""

    TAG = "graphics"
    type = Prop("./@type")
    port = Prop("./@port", int)
    autoport = Prop("./@autoport", YES_NO)
    websocket = Prop("./@websocket", int)
    passwd = Prop("./@passwd")
    passwd_valid_to = Prop("./@passwdValidTo", doc="ISO 8601 time")
    listen_attr = Prop("./@listen", doc="legacy form; libvirt writes both")
    listen_address = Prop("./listen[@type='address']/@address")
    listen_socket = Prop("./listen[@type='socket']/@socket")

    @property
    def listen(self) -> str | None:
        """The address VNC/SPICE listens on (``<listen type='address'>`` or the legacy attribute)."""
        return self.listen_address or self.listen_attr

    @listen.setter
    def listen(self, address: str | None) -> None:
        self.listen_attr = None  # a stale legacy value would contradict the element
        self.listen_address = address


class Serial(XmlModel):
    """``<serial type='pty'>``: the guest's ttyS port."""

    TAG = "serial"
    type = Prop("./@type")
    source_path = Prop("./source/@path", doc="pty path while running")
    target_type = Prop("./target/@type", doc="isa-serial, pci-serial, ...")
    target_port = Prop("./target/@port", int)


class Console(XmlModel):
    """``<console type='pty'>``: libvirt's console, usually aliasing serial port 0."""

    TAG = "console"
    type = Prop("./@type")
    tty = Prop("./@tty", doc="pty path while running")
    source_path = Prop("./source/@path")
    target_type = Prop("./target/@type", doc="serial, virtio")
    target_port = Prop("./target/@port", int)


class Channel(XmlModel):
    """``<channel>``; the QEMU guest agent is ``Channel.guest_agent()``."""

    TAG = "channel"
    type = Prop("./@type", doc="unix, spicevmc, pty")
    source_mode = Prop("./source/@mode")
    source_path = Prop("./source/@path")
    target_type = Prop("./target/@type", doc="virtio, guestfwd")
    target_name = Prop("./target/@name")
    target_state = Prop("./target/@state", doc="connected / disconnected (live XML)")

    @classmethod
    def guest_agent(cls) -> Channel:
        return cls(type="unix", target_type="virtio", target_name="org.qemu.guest_agent.0")


class Video(XmlModel):
    TAG = "video"
    model = Prop("./model/@type", doc="virtio, qxl, vga, bochs, ramfb, none")
    vram = Prop("./model/@vram", int)
    heads = Prop("./model/@heads", int)
    primary = Prop("./model/@primary", YES_NO)


class Input(XmlModel):
    TAG = "input"
    type = Prop("./@type", doc="tablet, mouse, keyboard")
    bus = Prop("./@bus", doc="usb, virtio, ps2")


class Rng(XmlModel):
    """``<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>``."""

    TAG = "rng"
    model = Prop("./@model")
    backend_model = Prop("./backend/@model")
    backend = Prop("./backend", doc="entropy source, e.g. /dev/urandom")

    @classmethod
    def virtio(cls, source: str = "/dev/urandom") -> Rng:
        return cls(model="virtio", backend_model="random", backend=source)


class Controller(XmlModel):
    TAG = "controller"
    type = Prop("./@type", doc="usb, pci, sata, scsi, virtio-serial, ide")
    index = Prop("./@index", int)
    model = Prop("./@model", doc="qemu-xhci, pcie-root, pcie-root-port, virtio-scsi, ...")
    ports = Prop("./@ports", int)
