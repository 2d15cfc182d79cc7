"""Flint: KVM/QEMU virtual machines across hosts, through libvirt, over NATS."""

__version__ = "0.1.0"
