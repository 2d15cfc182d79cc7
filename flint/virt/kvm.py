"""Is hardware virtualisation (KVM) really usable here, or must guests run under TCG?

libvirt advertises `kvm` as soon as /dev/kvm exists, but that is not enough: on machines whose
/dev/kvm is backed by the nested paravirtual `kvm_pvm` module, guests die with "KVM internal
error" (and host-passthrough CPUs do not start at all). KVM counts as usable only when
- /dev/kvm exists and can be opened read-write,
- the CPU flags show hardware virtualisation (vmx for Intel VT-x, svm for AMD-V), and
- the kvm_pvm module is not loaded.
Otherwise Flint falls back to TCG (`<domain type='qemu'>`). FLINT_VIRT_TYPE=kvm|qemu overrides.

Pure apart from reading the three paths given to detect_virt_type; kvm_usable is fully pure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

VirtType = Literal["kvm", "qemu"]
Source = Literal["override", "detected"]

OVERRIDE_VALUES: tuple[str, ...] = ("kvm", "qemu")
# Values that mean "no override: detect" (API.md documents the default as "auto").
AUTO_VALUES: tuple[str, ...] = ("", "auto")


@dataclass(frozen=True)
class VirtTypeReport:
    virt_type: VirtType
    reason: str
    source: Source


def _cpu_flags(cpuinfo_text: str) -> set[str]:
    flags: set[str] = set()
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags.update(value.split())
    return flags


def _loaded_modules(modules_text: str) -> set[str]:
    return {line.split()[0] for line in modules_text.splitlines() if line.strip()}


def kvm_usable(
    cpuinfo_text: str, modules_text: str, dev_kvm_ok: bool, dev_kvm_detail: str = ""
) -> tuple[bool, str]:
    """Decide from /proc/cpuinfo text, /proc/modules text and whether /dev/kvm opens read-write.

    Returns (usable, reason in plain words). `dev_kvm_detail` optionally says why /dev/kvm is not ok.
    """
    if not dev_kvm_ok:
        detail = dev_kvm_detail or "/dev/kvm is missing or cannot be opened read-write"
        return False, f"{detail}: no KVM, using TCG (software emulation)"
    if "kvm_pvm" in _loaded_modules(modules_text):
        return False, (
            "/dev/kvm exists but the kvm_pvm module is loaded (nested paravirtual KVM): "
            "guests fail under it, using TCG"
        )
    flags = _cpu_flags(cpuinfo_text)
    if not flags:
        return (
            False,
            "/dev/kvm exists but /proc/cpuinfo shows no CPU flags: cannot confirm VT-x/AMD-V, using TCG",
        )
    if "vmx" in flags:
        return True, "/dev/kvm opens read-write and the CPU has VT-x (vmx): using KVM"
    if "svm" in flags:
        return True, "/dev/kvm opens read-write and the CPU has AMD-V (svm): using KVM"
    return False, (
        "/dev/kvm exists but the CPU flags have neither vmx nor svm "
        "(hardware virtualisation is not exposed to this machine): using TCG"
    )


def _read(path: str | os.PathLike[str]) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _probe_dev_kvm(dev_kvm: str) -> tuple[bool, str]:
    if not os.path.exists(dev_kvm):
        return False, f"{dev_kvm} does not exist"
    try:
        fd = os.open(dev_kvm, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"{dev_kvm} exists but cannot be opened read-write ({exc.strerror})"
    os.close(fd)
    return True, ""


def parse_override(value: str | None) -> VirtType | None:
    """FLINT_VIRT_TYPE's value -> "kvm", "qemu", or None for auto-detection."""
    if value is None:
        return None
    normal = value.strip().lower()
    if normal in AUTO_VALUES:
        return None
    if normal in OVERRIDE_VALUES:
        return normal  # type: ignore[return-value]
    raise ValueError(
        f"FLINT_VIRT_TYPE={value!r} is not valid: use 'kvm' (hardware virtualisation), "
        f"'qemu' (TCG software emulation) or leave it unset to detect"
    )


def detect_virt_type(
    override: str | None = None,
    cpuinfo_path: str = "/proc/cpuinfo",
    modules_path: str = "/proc/modules",
    dev_kvm: str = "/dev/kvm",
    sys_module_dir: str | None = "/sys/module",
) -> VirtTypeReport:
    """Which domain type to use here: "kvm" where usable, else "qemu" (TCG).

    `override` is FLINT_VIRT_TYPE's value ("kvm"/"qemu"; None, "" or "auto" detect; anything else
    is a ValueError). Loaded modules are read from `modules_path` and, because some containers
    have no /proc/modules, also from `sys_module_dir` (a module is loaded when its directory exists).
    """
    forced = parse_override(override)
    dev_ok, dev_detail = _probe_dev_kvm(dev_kvm)
    modules_text = _read(modules_path)
    if sys_module_dir is not None and os.path.isdir(os.path.join(sys_module_dir, "kvm_pvm")):
        modules_text += "\nkvm_pvm 0 0 - Live 0x0\n"
    usable, reason = kvm_usable(_read(cpuinfo_path), modules_text, dev_ok, dev_detail)
    if forced is not None:
        verdict = "agrees" if (forced == "kvm") == usable else "disagrees"
        return VirtTypeReport(
            virt_type=forced,
            reason=f"forced by FLINT_VIRT_TYPE={forced} (detection {verdict}: {reason})",
            source="override",
        )
    return VirtTypeReport(virt_type="kvm" if usable else "qemu", reason=reason, source="detected")
