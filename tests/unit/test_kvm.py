"""KVM-or-TCG detection: kvm_usable on texts, detect_virt_type on temp files standing in for /proc and /dev."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flint.virt.kvm import VirtTypeReport, detect_virt_type, kvm_usable, parse_override

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr pae vmx ept sse2\n\n"
AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse svm npt sse2\n\n"
# What this project's dev/CI machines show: a hypervisor flag, no vmx/svm.
NO_VIRT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc hypervisor sse2 vmxnet\n\n"
MODULES = "kvm_intel 409600 0 - Live 0x0000000000000000\nkvm 1368064 1 kvm_intel, Live 0x0000000000000000\n"
MODULES_PVM = "kvm_pvm 65536 0 - Live 0x0000000000000000\nkvm 1368064 1 kvm_pvm, Live 0x0000000000000000\n"


def test_intel_with_vmx_is_usable():
    usable, reason = kvm_usable(INTEL, MODULES, True)
    assert usable is True
    assert "vmx" in reason


def test_amd_with_svm_is_usable():
    usable, reason = kvm_usable(AMD, MODULES, True)
    assert usable is True
    assert "svm" in reason


def test_no_vmx_or_svm_is_not_usable():
    # "vmxnet" must not count as vmx: flags are whole words.
    usable, reason = kvm_usable(NO_VIRT, MODULES, True)
    assert usable is False
    assert "neither vmx nor svm" in reason
    assert "TCG" in reason


def test_kvm_pvm_module_wins_over_cpu_flags():
    usable, reason = kvm_usable(INTEL, MODULES_PVM, True)
    assert usable is False
    assert "kvm_pvm" in reason and "TCG" in reason


def test_module_name_must_match_exactly():
    usable, _ = kvm_usable(INTEL, "kvm_pvmx 1 0 - Live 0x0\n", True)
    assert usable is True


def test_dev_kvm_not_ok_is_not_usable_and_says_why():
    usable, reason = kvm_usable(INTEL, MODULES, False)
    assert usable is False
    assert "/dev/kvm" in reason
    usable, reason = kvm_usable(INTEL, MODULES, False, "/dev/kvm does not exist")
    assert reason.startswith("/dev/kvm does not exist")


def test_empty_cpuinfo_is_not_usable():
    usable, _ = kvm_usable("", MODULES, True)
    assert usable is False


def _fake_host(tmp_path: Path, cpuinfo: str, modules: str | None, dev_kvm: bool = True) -> dict[str, str]:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    if modules is not None:
        (tmp_path / "modules").write_text(modules)
    sys_module = tmp_path / "sys-module"
    sys_module.mkdir()
    dev = tmp_path / "kvm"
    if dev_kvm:
        dev.write_bytes(b"")  # a regular file opens read-write like a usable /dev/kvm
    return {
        "cpuinfo_path": str(tmp_path / "cpuinfo"),
        "modules_path": str(tmp_path / "modules"),
        "dev_kvm": str(dev),
        "sys_module_dir": str(sys_module),
    }


def test_detect_kvm_on_a_real_looking_host(tmp_path):
    report = detect_virt_type(**_fake_host(tmp_path, INTEL, MODULES))
    assert report == VirtTypeReport("kvm", report.reason, "detected")
    assert "vmx" in report.reason


def test_detect_falls_back_to_tcg_without_dev_kvm(tmp_path):
    report = detect_virt_type(**_fake_host(tmp_path, INTEL, MODULES, dev_kvm=False))
    assert (report.virt_type, report.source) == ("qemu", "detected")
    assert "does not exist" in report.reason


def test_detect_reads_kvm_pvm_from_sys_module_when_proc_modules_is_missing(tmp_path):
    # Some containers have /sys/module but no /proc/modules; kvm_pvm must still be seen.
    paths = _fake_host(tmp_path, INTEL, modules=None)
    (Path(paths["sys_module_dir"]) / "kvm_pvm").mkdir()
    report = detect_virt_type(**paths)
    assert report.virt_type == "qemu"
    assert "kvm_pvm" in report.reason


def test_detect_unopenable_dev_kvm(tmp_path):
    paths = _fake_host(tmp_path, INTEL, MODULES, dev_kvm=False)
    Path(paths["dev_kvm"]).mkdir()  # a directory cannot be opened read-write
    report = detect_virt_type(**paths)
    assert report.virt_type == "qemu"
    assert "cannot be opened read-write" in report.reason


@pytest.mark.parametrize("value", ["kvm", "KVM", " kvm "])
def test_override_kvm_even_when_not_usable(tmp_path, value):
    report = detect_virt_type(value, **_fake_host(tmp_path, NO_VIRT, MODULES))
    assert (report.virt_type, report.source) == ("kvm", "override")
    assert "FLINT_VIRT_TYPE" in report.reason and "disagrees" in report.reason


def test_override_qemu_on_a_kvm_host(tmp_path):
    report = detect_virt_type("qemu", **_fake_host(tmp_path, INTEL, MODULES))
    assert (report.virt_type, report.source) == ("qemu", "override")


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO"])
def test_unset_or_auto_means_detect(value):
    assert parse_override(value) is None


@pytest.mark.parametrize("value", ["tcg", "xen", "kvm,qemu", "1"])
def test_bad_override_is_a_clear_value_error(tmp_path, value):
    with pytest.raises(ValueError, match="FLINT_VIRT_TYPE") as info:
        detect_virt_type(value, **_fake_host(tmp_path, INTEL, MODULES))
    assert "'kvm'" in str(info.value) and "'qemu'" in str(info.value)


def test_report_is_frozen():
    report = VirtTypeReport("qemu", "because", "detected")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.virt_type = "kvm"  # type: ignore[misc]
