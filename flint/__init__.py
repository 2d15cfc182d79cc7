"""Flint: KVM/QEMU virtual machines across hosts, through libvirt, over NATS."""

import sys

__version__ = "0.1.0"

# structlog's console renderer imports `rich` when it is installed (Litestar's CLI brings it); we never
# render with it, and it costs every Flint process about 4 MB. FLINT_ALLOW_RICH=1 keeps it importable.
if "rich" not in sys.modules and not __import__("os").environ.get("FLINT_ALLOW_RICH"):
    sys.modules["rich"] = None  # type: ignore[assignment]
