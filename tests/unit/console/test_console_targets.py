"""What a console connects to, read from live domain XML, and the refusals a user sees."""

from __future__ import annotations

import pytest

from flint.contracts.common import ServiceError
from services.console.targets import check_console, is_remote_uri, vnc_target


def domain(devices: str) -> str:
    return f"<domain type='qemu'><name>vm1</name><devices>{devices}</devices></domain>"


VNC = "<graphics type='vnc' port='5907' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>"
SERIAL = "<serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>"


def test_vnc_target_is_the_live_port_and_address():
    t = vnc_target(domain(VNC), "vm1")
    assert (t.host, t.port) == ("127.0.0.1", 5907)


@pytest.mark.parametrize("listen,expected", [("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("192.0.2.5", "192.0.2.5")])
def test_a_wildcard_listen_address_is_reached_on_loopback(listen, expected):
    xml = domain(f"<graphics type='vnc' port='5901' listen='{listen}'><listen type='address' address='{listen}'/></graphics>")
    assert vnc_target(xml, "vm1").host == expected


def test_a_vnc_unix_socket_is_a_websockify_unix_target():
    xml = domain("<graphics type='vnc'><listen type='socket' socket='/run/libvirt/qemu/vnc-1.sock'/></graphics>")
    t = vnc_target(xml, "vm1")
    assert (t.host, t.path) == ("unix_socket", "/run/libvirt/qemu/vnc-1.sock")


def test_no_vnc_display_is_refused_with_what_there_is():
    with pytest.raises(ServiceError) as exc:
        vnc_target(domain("<graphics type='spice' port='5930'/>"), "vm1")
    assert exc.value.code == 409
    assert "no VNC display" in exc.value.message and "spice" in exc.value.message


def test_a_vnc_display_without_a_port_yet_is_refused():
    with pytest.raises(ServiceError) as exc:
        vnc_target(domain("<graphics type='vnc' port='-1' autoport='yes'/>"), "vm1")
    assert exc.value.code == 409 and "without a port" in exc.value.message


@pytest.mark.parametrize("state", ["shutoff", "crashed", "nostate"])
def test_only_a_running_vm_has_a_console(state):
    with pytest.raises(ServiceError) as exc:
        check_console(domain(VNC + SERIAL), "serial", "vm1", state)
    assert exc.value.code == 409
    assert exc.value.message == f"VM 'vm1' is not running (it is {state}): start it to open its console"


@pytest.mark.parametrize("state", ["running", "paused"])
def test_running_and_paused_vms_have_both_consoles(state):
    check_console(domain(VNC + SERIAL), "vnc", "vm1", state)
    check_console(domain(VNC + SERIAL), "serial", "vm1", state)


def test_serial_needs_a_serial_or_console_device():
    with pytest.raises(ServiceError) as exc:
        check_console(domain(VNC), "serial", "vm1", "running")
    assert exc.value.code == 409 and "no serial console" in exc.value.message


def test_unknown_console_type_is_422():
    with pytest.raises(ServiceError) as exc:
        check_console(domain(VNC), "spice", "vm1", "running")
    assert exc.value.code == 422 and exc.value.field == "type"


@pytest.mark.parametrize(
    "uri,remote",
    [
        ("qemu:///system", False),
        ("test:///default", False),
        ("qemu+ssh://root@127.0.0.1:2222/system", False),
        ("qemu+ssh://root@hv2.example/system?keyfile=/k", True),
        ("qemu+libssh://hv3/system", True),
    ],
)
def test_remote_uris(uri, remote):
    assert is_remote_uri(uri) is remote
