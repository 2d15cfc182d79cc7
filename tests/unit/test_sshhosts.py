"""Agentless host registration: every bad input is refused naming its field, before anything is made;
the key files are private; the libvirt URI keeps host key checking strict."""

from __future__ import annotations

import stat
from urllib.parse import parse_qs, urlsplit

import asyncssh
import pytest

from flint.contracts.common import ServiceError
from flint.sshhosts import (
    HostFiles,
    SshTarget,
    check_name,
    display_uri,
    host_key_lines,
    load_private_key,
    parse_uri,
    ssh_params,
)


def _refused(fn, *args, field: str, code: int = 422) -> str:
    with pytest.raises(ServiceError) as info:
        fn(*args)
    assert (info.value.code, info.value.field) == (code, field), info.value.message
    assert info.value.message.startswith(f"{field}: ")
    return info.value.message


@pytest.mark.parametrize("name", ["", "A", "has_underscore", "-lead", "a" * 64, "dot.ted", "sp ace", "../x"])
def test_bad_names(name):
    _refused(check_name, name, field="name")


def test_good_name_and_the_local_one():
    assert check_name("hv-2") == "hv-2"
    assert "own host" in _refused(check_name, "local", field="name", code=409)


@pytest.mark.parametrize(("uri", "words"), [
    ("", "give a libvirt URI"),
    ("qemu:///system", "only qemu+ssh"),
    ("qemu+tcp://root@h/system", "only qemu+ssh"),
    ("qemu+ssh://h/system", "name the SSH user"),
    ("qemu+ssh://Root@h/system", "name the SSH user"),
    ("qemu+ssh://root:pw@h/system", "no password"),
    ("qemu+ssh://root@h/session", "/system"),
    ("qemu+ssh://root@h/system?keyfile=/etc/shadow", "leave out ?parameters"),
    ("qemu+ssh://root@h/system#x", "leave out ?parameters"),
    ("qemu+ssh://root@h:99999/system", "not a valid URI"),
    ("qemu+ssh://root@bad_host!/system", "not a host name"),
    ("qemu+ssh://root@h /system", "give a libvirt URI"),
    ("test:///nonexistent/file.xml", "is not a libvirt test driver file"),
    ("test:///etc/shadow", "names an .xml file"),
    ("qemu+ssh://root@[fe80::1%eth0]/system", "zone id"),
    ("test:///etc/../etc/passwd", "test driver"),
    ("test://host/x.xml", "test driver URI"),
])
def test_bad_uris(uri, words):
    assert words in _refused(parse_uri, uri, field="uri")


def test_good_uris(tmp_path):
    assert parse_uri("qemu+ssh://root@hv2.example/system") == SshTarget("root", "hv2.example", 22)
    assert parse_uri("qemu+ssh://flint@10.0.0.5:2222/system") == SshTarget("flint", "10.0.0.5", 2222)
    t = parse_uri("qemu+ssh://root@[::1]:2200/system")
    assert t == SshTarget("root", "::1", 2200) and t.known_hosts_name == "[::1]:2200"
    assert t.uri == "qemu+ssh://root@[::1]:2200/system"
    xml = tmp_path / "host.xml"
    xml.write_text("<node/>")
    assert parse_uri(f"test://{xml}") == f"test://{xml}"


def test_a_test_driver_uri_never_tells_what_a_foreign_file_holds(tmp_path):
    """Any XML file but a test driver's is refused with the same words, whatever it holds."""
    for name, text in (("secret.xml", "root:$6$hash:19000::::::\n"), ("other.xml", "<domain/>")):
        path = tmp_path / name
        path.write_text(text)
        reason = _refused(parse_uri, f"test://{path}", field="uri")
        assert "is not a libvirt test driver file" in reason and "hash" not in reason and "domain" not in reason


def test_keys():
    key = asyncssh.generate_private_key("ssh-ed25519")
    for fmt in ("openssh", "pkcs8-pem"):
        text = key.export_private_key(fmt).decode()
        assert load_private_key(text).get_fingerprint() == key.get_fingerprint()
    assert "is required" in _refused(load_private_key, "  ", field="ssh_private_key")
    assert "not a private key" in _refused(load_private_key, "hello", field="ssh_private_key")
    public = key.export_public_key().decode()
    assert "not a private key" in _refused(load_private_key, public, field="ssh_private_key")
    encrypted = key.export_private_key("openssh", passphrase="secret").decode()
    assert "is encrypted" in _refused(load_private_key, encrypted, field="ssh_private_key")
    # a mangled RSA blob makes asyncssh raise OverflowError, not a key error: still a 422 at the field
    mangled = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAFwAAAAdzc2gtcn\nNhAAAAA/kAAQ==\n-----END OPENSSH PRIVATE KEY-----\n"
    assert "not a private key" in _refused(load_private_key, mangled, field="ssh_private_key")
    assert _refused(host_key_lines, "h ssh-rsa AAAAB3NzaC1yc2EAAAAD+QABAAAAAQ==\n", SshTarget("root", "h", 22),
                    field="known_hosts")


def test_known_hosts_lines_are_canonical_for_the_port():
    target = SshTarget("root", "10.0.0.5", 2222)
    hk = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    text = f"# comment\n[10.0.0.5]:2222 {hk[0]} {hk[1]}\nelsewhere {other[0]} {other[1]}\n"
    assert host_key_lines(text, target) == [f"[10.0.0.5]:2222 {hk[0]} {hk[1]}"]
    # an entry without the port: OpenSSH would use it for any port; it is kept with the port for libvirt
    assert host_key_lines(f"10.0.0.5 {hk[0]} {hk[1]}\n", target) == [f"[10.0.0.5]:2222 {hk[0]} {hk[1]}"]
    assert "has no key for [10.0.0.5]:2222" in _refused(host_key_lines, f"other {hk[0]} {hk[1]}\n", target,
                                                         field="known_hosts")
    assert "is required" in _refused(host_key_lines, "", target, field="known_hosts")
    # a line asyncssh cannot read gives no key: still refused at the field
    assert "has no key" in _refused(host_key_lines, "10.0.0.5 ssh-ed25519 !!!notbase64\n", target,
                                    field="known_hosts")


def test_files_are_private_and_the_uri_checks_host_keys(tmp_path):
    files = HostFiles(tmp_path, "hv2")
    files.write("KEY\n", ["[h]:22 ssh-ed25519 AAAA"])
    assert stat.S_IMODE(files.dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.known_hosts.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.ssh.stat().st_mode) == 0o700
    wrapper = files.ssh.read_text()
    assert f"UserKnownHostsFile={files.known_hosts}" in wrapper and "StrictHostKeyChecking=yes" in wrapper
    assert "GlobalKnownHostsFile=/dev/null" in wrapper and "-F none" in wrapper
    uri = files.libvirt_uri(SshTarget("root", "h", 2222))
    parts = urlsplit(uri)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "qemu+ssh" and parts.netloc == "root@h:2222" and parts.path == "/system"
    assert query == {"keyfile": str(files.key), "known_hosts": str(files.known_hosts), "command": str(files.ssh),
                     "no_verify": "0", "no_tty": "1"}
    params = ssh_params(uri)
    assert (params.user, params.host, params.port, params.keyfile, params.known_hosts) == (
        "root", "h", 2222, str(files.key), str(files.known_hosts))
    assert display_uri(uri) == "qemu+ssh://root@h:2222/system"
    assert ssh_params("qemu:///system") is None and display_uri("qemu:///system") == "qemu:///system"
    files.remove()
    assert not files.dir.exists()
    with pytest.raises(ValueError):
        HostFiles(tmp_path, "../etc")
