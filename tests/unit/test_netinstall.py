"""Network install and PXE, the pure parts: .treeinfo, the kernel command line, the install domain made
from the final one, and the PXE boot order."""

from __future__ import annotations

import pytest

from flint.contracts.common import ServiceError
from flint.xml import Disk, Domain, Interface
from services.provisioner.netinstall import install_cmdline, install_domain_xml, parse_treeinfo, pxe_first

FEDORA = """\
[header]
type = productmd.treeinfo
version = 1.2

[release]
name = Fedora
short = Fedora
version = 39

[tree]
arch = x86_64
platforms = x86_64,xen

[images-x86_64]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img
boot.iso = images/boot.iso

[images-xen]
kernel = images/pxeboot/vmlinuz
initrd = images/pxeboot/initrd.img

[checksums]
images/pxeboot/vmlinuz = sha256:0f4b2c6b8b6d7e0c2f0b4c1a7a0e5f9a6d3b1c2e4f5a6b7c8d9e0f1a2b3c4d5e
images/pxeboot/initrd.img = md5:00112233445566778899aabbccddeeff
"""


def test_treeinfo_gives_the_arch_images_family_and_sha256():
    info = parse_treeinfo(FEDORA, "x86_64")
    assert (info["kernel"], info["initrd"], info["family"]) == (
        "images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "Fedora")
    assert info["sha256"] == {"kernel": "0f4b2c6b8b6d7e0c2f0b4c1a7a0e5f9a6d3b1c2e4f5a6b7c8d9e0f1a2b3c4d5e",
                              "initrd": None}


def test_treeinfo_without_the_arch_or_not_treeinfo_at_all():
    with pytest.raises(ValueError, match=r"no images for aarch64 \(only for x86_64, xen\)"):
        parse_treeinfo(FEDORA, "aarch64")
    with pytest.raises(ValueError, match="not a valid treeinfo"):
        parse_treeinfo("<html>404</html>", "x86_64")
    old_style = "[general]\nfamily = CentOS\narch = x86_64\n[images-x86_64]\nkernel = isolinux/vmlinuz\n"
    info = parse_treeinfo(old_style, "x86_64")
    assert (info["kernel"], info["initrd"], info["family"]) == ("isolinux/vmlinuz", None, "CentOS")


def test_cmdline_adds_inst_repo_only_for_red_hat_trees_and_only_once():
    url = "http://127.0.0.1:8000/tree/"
    assert install_cmdline("inst.ks=http://x/ks.cfg", url, "Fedora") == f"inst.ks=http://x/ks.cfg inst.repo={url}"
    assert install_cmdline("inst.repo=http://mirror/ inst.text", url, "Fedora") == "inst.repo=http://mirror/ inst.text"
    assert install_cmdline("auto=true", url, "Debian") == "auto=true"
    with pytest.raises(ServiceError) as exc:
        install_cmdline("a\nb", url, "")
    assert exc.value.field == "source.kernel_args"


def _final() -> Domain:
    dom = Domain(type="qemu", name="vm1", uuid="6f3c1a2b-0000-4000-8000-000000000001", memory_mib=256, vcpus=1,
                 os_type="hvm", arch="x86_64", machine="q35", on_poweroff="destroy", on_reboot="restart")
    dom.boot_devices = ["hd"]
    dom.disks.append(Disk(device="disk", target_dev="vda", target_bus="virtio").set_source(pool="p", volume="d0"))
    dom.disks.append(Disk(device="cdrom", target_dev="sda", target_bus="sata").set_source(pool="p", volume="s"))
    dom.interfaces.append(Interface(type="network", mac="52:54:00:00:00:01", source_network="a", model="virtio"))
    dom.interfaces.append(Interface(type="network", mac="52:54:00:00:00:02", source_network="b", model="virtio"))
    return dom


def test_install_domain_boots_the_kernel_once_and_keeps_everything_else():
    final = _final().to_xml()
    install = Domain.parse(install_domain_xml(final, "/pool/vmlinuz", "/pool/initrd", "inst.ks=http://x/ks"))
    assert (install.kernel, install.initrd, install.cmdline) == ("/pool/vmlinuz", "/pool/initrd", "inst.ks=http://x/ks")
    assert install.on_reboot == "destroy" and install.boot_devices == []
    assert install.uuid == "6f3c1a2b-0000-4000-8000-000000000001" and len(install.disks) == 2
    bare = Domain.parse(install_domain_xml(final, "/pool/lkrn", None, ""))
    assert bare.initrd is None and bare.cmdline is None


def test_pxe_puts_the_chosen_nic_first_then_disks_then_cdroms():
    dom = Domain.parse(pxe_first(_final().to_xml(), "52:54:00:00:00:02"))
    assert dom.boot_devices == []
    assert [i.boot_order for i in dom.interfaces] == [None, 1]
    assert [(d.device, d.boot_order) for d in dom.disks] == [("disk", 2), ("cdrom", 3)]
