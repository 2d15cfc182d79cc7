"""`flint doctor`: each check against temp dirs and fake environments, and the whole command's output.

libvirt is reached through its test driver (test:///default, in-process: no daemon needed), so these
tests do not depend on the machine's libvirtd.
"""

from __future__ import annotations

import json
import os
import socket
from types import SimpleNamespace

import pytest

from flint.cli import doctor
from flint.cli.doctor import FAIL, OK, WARN, Probe, Result


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A healthy-looking environment: test driver, a fresh data dir, a NATS port that accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    values = {
        "FLINT_LIBVIRT_URI": "test:///default",
        "FLINT_DATA_DIR": str(tmp_path / "data"),
        "FLINT_NATS_URL": f"nats://127.0.0.1:{port}",
        "FLINT_VIRT_TYPE": "qemu",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    yield values
    listener.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- data dir


def test_data_dir_is_created_with_0700(tmp_path):
    path = tmp_path / "a" / "b"
    result = doctor.check_data_dir({"FLINT_DATA_DIR": str(path)})
    assert result.status == OK, result
    assert path.is_dir()
    assert oct(path.stat().st_mode & 0o777) == oct(0o700)


def test_data_dir_that_cannot_be_created_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    result = doctor.check_data_dir({"FLINT_DATA_DIR": str(blocker / "data")})
    assert result.status == FAIL
    assert "cannot be created" in result.finding
    assert result.fix


def test_data_dir_that_is_a_file_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = doctor.check_data_dir({"FLINT_DATA_DIR": str(blocker)})
    assert result.status == FAIL
    assert "not a directory" in result.finding


def test_data_dir_not_writable_fails(tmp_path, monkeypatch):
    # Root writes through permission bits, so simulate what a read-only mount or a foreign owner does.
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor.tempfile, "mkstemp", refuse)
    result = doctor.check_data_dir({"FLINT_DATA_DIR": str(tmp_path)})
    assert result.status == FAIL
    assert "not writable" in result.finding
    assert "chmod 700" in result.fix


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_data_dir_without_write_permission_fails_for_a_user(tmp_path):
    path = tmp_path / "ro"
    path.mkdir(mode=0o500)
    try:
        assert doctor.check_data_dir({"FLINT_DATA_DIR": str(path)}).status == FAIL
    finally:
        path.chmod(0o700)


def test_data_dir_readable_by_others_warns(tmp_path):
    path = tmp_path / "open"
    path.mkdir()
    path.chmod(0o755)
    result = doctor.check_data_dir({"FLINT_DATA_DIR": str(path)})
    assert result.status == WARN
    assert "0755" in result.finding
    assert result.fix == f"chmod 700 {path}"


def test_default_data_dir():
    assert str(doctor.default_data_dir({}, euid=0)) == "/var/lib/flint"
    assert str(doctor.default_data_dir({"HOME": "/home/u"}, euid=1000)) == "/home/u/.local/share/flint"
    assert str(doctor.default_data_dir({"FLINT_DATA_DIR": "/srv/f"}, euid=0)) == "/srv/f"


# ---------------------------------------------------------------- nats


def test_nats_url_reachable(env):
    result = doctor.check_nats({"FLINT_NATS_URL": env["FLINT_NATS_URL"]})
    assert result.status == OK, result


def test_nats_url_unreachable_fails():
    port = _closed_port()
    result = doctor.check_nats({"FLINT_NATS_URL": f"nats://127.0.0.1:{port}"}, timeout=1)
    assert result.status == FAIL
    assert str(port) in result.finding


def test_nats_second_server_in_list_counts(env):
    url = f"nats://127.0.0.1:{_closed_port()}, {env['FLINT_NATS_URL']}"
    assert doctor.check_nats({"FLINT_NATS_URL": url}, timeout=1).status == OK


def test_nats_unset_needs_the_binary(monkeypatch):
    monkeypatch.setattr(doctor, "find_binary", lambda name: None)
    result = doctor.check_nats({})
    assert result.status == FAIL
    assert "nats-server" in result.fix
    monkeypatch.setattr(doctor, "find_binary", lambda name: f"/usr/sbin/{name}")
    assert doctor.check_nats({}).status == OK


# ---------------------------------------------------------------- the rest


def test_python_version():
    assert doctor.check_python((3, 11, 2), "/x/python").status == OK
    old = doctor.check_python((3, 10, 12), "/x/python")
    assert old.status == FAIL and "3.10.12" in old.finding


def test_virt_type_tcg_is_a_warning_not_a_failure():
    fake = SimpleNamespace(virt_type="qemu", reason="no vmx", source="detected")
    result = doctor.check_virt_type({}, detect=lambda override: fake)
    assert result.status == WARN
    assert "TCG" in result.finding and "no vmx" in result.finding


def test_virt_type_kvm_is_ok():
    fake = SimpleNamespace(virt_type="kvm", reason="vmx", source="detected")
    assert doctor.check_virt_type({}, detect=lambda override: fake).status == OK


def test_bad_virt_type_override_fails():
    result = doctor.check_virt_type({"FLINT_VIRT_TYPE": "xen"})
    assert result.status == FAIL
    assert "FLINT_VIRT_TYPE" in result.finding


def test_firewall_tools_missing_warns(monkeypatch):
    monkeypatch.setattr(
        doctor, "find_binary", lambda name: None if name == "ebtables" else f"/usr/sbin/{name}"
    )
    result = doctor.check_firewall_tools()
    assert result.status == WARN
    assert "ebtables" in result.finding and "iptables" not in result.finding


def test_frontend_missing_warns_and_present_is_ok(tmp_path):
    assert doctor.check_frontend(tmp_path).status == WARN
    (tmp_path / "frontend" / "dist").mkdir(parents=True)
    (tmp_path / "frontend" / "dist" / "index.html").write_text("<!doctype html>")
    assert doctor.check_frontend(tmp_path).status == OK


def test_libvirtd_through_the_test_driver():
    probe = Probe(env={"FLINT_LIBVIRT_URI": "test:///default"})
    try:
        result = doctor.check_libvirtd(probe)
        assert result.status == OK, result
        assert "test:///default" in result.finding
        # the test driver has no nwfilter driver: a warning, not a failure
        assert doctor.check_nwfilter(probe).status == WARN
    finally:
        probe.close()


def test_libvirtd_unreachable_fails_with_a_fix(tmp_path):
    uri = f"qemu:///system?socket={tmp_path}/no-such.sock"
    probe = Probe(env={"FLINT_LIBVIRT_URI": uri}, timeout=5)
    result = doctor.check_libvirtd(probe)
    assert result.status == FAIL
    assert "libvirtd" in result.fix
    assert doctor.check_nwfilter(probe).status == WARN


def test_libvirtd_too_old_fails():
    old = SimpleNamespace(getLibVersion=lambda: 7_000_000, close=lambda: None)
    probe = Probe(env={}, conn=old, _opened=True)
    result = doctor.check_libvirtd(probe)
    assert result.status == FAIL
    assert "7.0.0" in result.finding and "8.0.0" in result.finding


def test_line_format():
    assert Result("x", OK, "fine", "ignored").line() == "ok    x: fine"
    assert Result("x", FAIL, "broken", "mend it").line() == "FAIL  x: broken — fix: mend it"


# ---------------------------------------------------------------- the command


def test_run_exits_1_on_an_unusable_data_dir(env, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("FLINT_DATA_DIR", str(blocker / "data"))
    assert doctor.run([]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    data = [line for line in lines if " data dir: " in line]
    assert data and data[0].startswith("FAIL  data dir: ")
    for line in lines:
        status = line.split()[0]
        assert status in (OK, WARN, FAIL), line
        if status != OK:
            assert " — fix: " in line, line


def test_run_exits_0_when_nothing_fails(env, monkeypatch, capsys):
    monkeypatch.setattr(doctor, "find_binary", lambda name: f"/usr/bin/{name}")
    assert doctor.run([]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert "ok    libvirtd: test:///default answers" in out


def test_run_json(env, capsys):
    doctor.run(["--json"])
    results = json.loads(capsys.readouterr().out)
    assert [r["check"] for r in results] == [
        "python",
        "libvirt-python",
        "libvirtd",
        "virt type",
        "qemu",
        "nats",
        "data dir",
        "firewall tools",
        "nwfilter",
        "frontend",
    ]
    for r in results:
        assert set(r) == {"check", "status", "finding", "fix"}
        assert r["status"] in (OK, WARN, FAIL)
    nats = next(r for r in results if r["check"] == "nats")
    assert nats["status"] == OK
