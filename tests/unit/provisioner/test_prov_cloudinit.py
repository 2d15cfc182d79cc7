"""Cloud-init: field checks, the three YAML documents read back with yaml.safe_load, and the seed ISO
read back with pycdlib."""

from __future__ import annotations

import base64
import io

import pycdlib
import pytest
import yaml
from passlib.hash import sha512_crypt

from services.provisioner import cloudinit
from services.provisioner.cloudinit import FieldError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example"


def _wire(*fields: bytes) -> str:
    return base64.b64encode(b"".join(len(f).to_bytes(4, "big") + f for f in fields)).decode()


RSA = f"ssh-rsa {_wire(b'ssh-rsa', bytes([1, 0, 1]), bytes([0]) + bytes(range(256)))} bob"
MACS = ["52:54:00:12:34:56"]


def settings(**overrides) -> dict:
    """Checked settings; with a password only where a test asks (hashing takes ~0.3 s on purpose)."""
    ci = {"hostname": "web-01.lab.example", "user": "alice", "ssh_authorized_keys": [KEY],
          "network": {"address": "192.0.2.10/24", "gateway": "192.0.2.1", "dns": ["192.0.2.53", "2001:db8::53"]},
          "packages": ["nginx", "qemu-guest-agent"], "runcmd": ["systemctl enable --now nginx", ["touch", "/x"]],
          "user_data": {"write_files": [{"path": "/etc/motd", "content": "hi"}], "runcmd": ["echo raw"]}}
    ci.update(overrides)
    return cloudinit.normalise(ci, "web01", "source.cloud_init")


def test_the_password_is_hashed_with_sha512_crypt_and_kept_nowhere_in_clear():
    ci = settings(password="s3cret!")
    assert "password" not in ci and ci["password_hash"].startswith("$6$rounds=100000$")
    assert sha512_crypt.verify("s3cret!", ci["password_hash"])
    files = cloudinit.seed_files(ci, "iid-1", MACS)
    assert all("s3cret!" not in text for text in files.values())


def test_sha512_crypt_known_answer():
    # Test vector from Ulrich Drepper's SHA-crypt specification (what glibc's crypt(3) and cloud-init's
    # guests check logins against).
    expected = ("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOf"
                "aS35inz1")
    assert sha512_crypt.using(salt="saltstring", rounds=5000).hash("Hello world!") == expected


def test_user_data_document():
    text = cloudinit.user_data_text(settings(password="s3cret!"))
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["hostname"] == "web-01" and doc["fqdn"] == "web-01.lab.example" and doc["manage_etc_hosts"] is True
    assert doc["users"][0] == "default"
    user = doc["users"][1]
    assert user["name"] == "alice" and user["lock_passwd"] is False and sha512_crypt.verify("s3cret!", user["passwd"])
    assert user["ssh_authorized_keys"] == [KEY] and user["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert doc["ssh_pwauth"] is True
    assert doc["package_update"] is True and doc["packages"] == ["nginx", "qemu-guest-agent"]
    # raw user-data merged: its lists appended to ours, its new keys added
    assert doc["runcmd"] == ["systemctl enable --now nginx", ["touch", "/x"], "echo raw"]
    assert doc["write_files"] == [{"path": "/etc/motd", "content": "hi"}]


def test_raw_user_data_as_yaml_text_and_overrides():
    ci = settings(user_data="#cloud-config\nmanage_etc_hosts: false\nusers: [{name: bob}]\n")
    doc = cloudinit.user_data(ci)
    assert doc["manage_etc_hosts"] is False
    assert [u if isinstance(u, str) else u["name"] for u in doc["users"]] == ["default", "alice", "bob"]


def test_keys_without_a_user_go_to_the_default_user():
    doc = cloudinit.user_data(cloudinit.normalise({"ssh_authorized_keys": [RSA]}, "vm1", "ci"))
    assert doc["hostname"] == "vm1" and doc["ssh_authorized_keys"] == [RSA]
    assert "users" not in doc and "ssh_pwauth" not in doc and "fqdn" not in doc


def test_meta_data_document():
    meta = yaml.safe_load(cloudinit.meta_data_text("iid-abc", "web-01"))
    assert meta == {"instance-id": "iid-abc", "local-hostname": "web-01"}


def test_static_network_config_matches_the_first_nic_by_mac():
    net = cloudinit.network_config(settings()["network"], MACS)
    assert net == {"version": 2, "ethernets": {"primary": {
        "match": {"macaddress": "52:54:00:12:34:56"},
        "addresses": ["192.0.2.10/24"],
        "routes": [{"to": "0.0.0.0/0", "via": "192.0.2.1"}],
        "nameservers": {"addresses": ["192.0.2.53", "2001:db8::53"]},
    }}}
    assert yaml.safe_load(cloudinit.network_config_text(settings()["network"], MACS)) == net


def test_ipv6_static_network_config():
    ci = settings(network={"address": "2001:db8::10", "prefix": 64, "gateway": "2001:db8::1"})
    eth = cloudinit.network_config(ci["network"], MACS)["ethernets"]["primary"]
    assert eth["addresses"] == ["2001:db8::10/64"] and eth["routes"] == [{"to": "::/0", "via": "2001:db8::1"}]


def test_dhcp_network_config_on_every_ethernet():
    ci = settings(network=None)
    assert cloudinit.network_config(ci["network"], MACS) == {
        "version": 2, "ethernets": {"all": {"match": {"name": "e*"}, "dhcp4": True}}}


def test_seed_iso_reads_back_under_rock_ridge_and_joliet_names():
    files = cloudinit.seed_files(settings(), "iid-1234", MACS)
    data = cloudinit.seed_iso(files)
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_rock_ridge() and iso.has_joliet()
        for name in ("user-data", "meta-data", "network-config"):
            for kind in ("rr_path", "joliet_path"):
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, **{kind: f"/{name}"})
                assert out.getvalue().decode() == files[name]
        names = {rec.rock_ridge.name().decode() for rec in iso.list_children(rr_path="/") if rec.rock_ridge
                 and not rec.is_dot() and not rec.is_dotdot()}
        assert names == {"user-data", "meta-data", "network-config"}
    finally:
        iso.close()
    assert yaml.safe_load(files["meta-data"])["instance-id"] == "iid-1234"
    assert yaml.safe_load(files["user-data"])["users"][1]["name"] == "alice"


@pytest.mark.parametrize("field, value, where, words", [
    ("hostname", "-web", "source.cloud_init.hostname", "RFC 1123"),
    ("hostname", "web_01", "source.cloud_init.hostname", "RFC 1123"),
    ("hostname", "a" * 64, "source.cloud_init.hostname", "label"),
    ("user", "Alice", "source.cloud_init.user", "invalid"),
    ("user", "root", "source.cloud_init.user", "root"),
    ("password", "", "source.cloud_init.password", "empty"),
    ("ssh_authorized_keys", ["hello"], "source.cloud_init.ssh_authorized_keys[0]", "not an SSH public key"),
    ("ssh_authorized_keys", [KEY, "ssh-foo AAAA"], "source.cloud_init.ssh_authorized_keys[1]", "not known"),
    ("ssh_authorized_keys", ["ssh-ed25519 !!!!"], "source.cloud_init.ssh_authorized_keys[0]", "base64"),
    ("ssh_authorized_keys", [KEY[:60]], "source.cloud_init.ssh_authorized_keys[0]", "complete"),
    ("ssh_authorized_keys", [KEY.replace("ssh-ed25519", "ssh-rsa", 1)], "source.cloud_init.ssh_authorized_keys[0]",
     "complete"),
    ("ssh_authorized_keys", [KEY + "\n" + KEY], "source.cloud_init.ssh_authorized_keys[0]", "one SSH key"),
    ("network", {"address": "10.0.0.1/33"}, "source.cloud_init.network.address", "CIDR"),
    ("network", {"address": "10.0.0.0/24"}, "source.cloud_init.network.address", "network address"),
    ("network", {"address": "10.0.0.1"}, "source.cloud_init.network.address", "prefix"),
    ("network", {"dhcp": False}, "source.cloud_init.network.address", "static address"),
    ("network", {"address": "10.0.0.5/24", "gateway": "10.0.1.1"}, "source.cloud_init.network.gateway", "inside"),
    ("network", {"address": "10.0.0.5/24", "gateway": "10.0.0.5"}, "source.cloud_init.network.gateway", "own"),
    ("network", {"address": "10.0.0.5/24", "gateway": "gw"}, "source.cloud_init.network.gateway", "not an IP"),
    ("network", {"gateway": "10.0.0.1"}, "source.cloud_init.network.gateway", "static address"),
    ("network", {"dns": ["1.1.1.1", "x"]}, "source.cloud_init.network.dns[1]", "not an IP"),
    ("packages", ["ok", "bad pkg"], "source.cloud_init.packages[1]", "invalid"),
    ("user_data", "[1, 2]", "source.cloud_init.user_data", "mapping"),
    ("user_data", "a: [", "source.cloud_init.user_data", "YAML"),
])
def test_each_invalid_field_is_named(field, value, where, words):
    with pytest.raises(FieldError) as err:
        settings(**{field: value})
    assert err.value.field == where
    assert words in err.value.message


def test_a_password_needs_a_user():
    with pytest.raises(FieldError) as err:
        cloudinit.normalise({"password": "x"}, "vm1", "ci")
    assert err.value.field == "ci.user"


def test_real_keys_of_each_type_pass(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen not installed")
    for kind in ("ed25519", "ecdsa", "rsa"):
        path = tmp_path / kind
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "me@host", "-f", str(path)], check=True)
        line = path.with_suffix(".pub").read_text()
        assert cloudinit.check_ssh_key(line, "k") == line.strip()
