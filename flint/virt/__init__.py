"""libvirt connections: libvirtaio event loop, reconnect, version check, virt type detection."""
