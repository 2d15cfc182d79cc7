"""An sshd of the test's own on 127.0.0.1 (its own config, host key, authorized_keys, all in a temp dir;
never the system's sshd), and a client key for it — so `qemu+ssh://root@127.0.0.1:PORT/system` reaches
this machine's libvirtd as a separate, agentless host."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, wait_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class Sshd:
    port: int
    dir: Path
    proc: subprocess.Popen
    client_key: Path
    host_key: Path

    @property
    def uri(self) -> str:
        return f"qemu+ssh://root@127.0.0.1:{self.port}/system"

    def known_hosts(self, key: Path | None = None) -> str:
        """A known_hosts line for this sshd (or, given another public key, a wrong one)."""
        algorithm, blob = (key or self.host_key.with_suffix(".pub")).read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {algorithm} {blob}\n"

    def private_key(self) -> str:
        return self.client_key.read_text()

    def log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text() if path.exists() else ""

    def kill_all(self) -> None:
        """The listener and every session it forked (they call setsid and outlive the listener otherwise):
        the machine is gone. Only this sshd's own descendants, found by parent pid in /proc."""
        import os
        import signal

        os.kill(self.proc.pid, signal.SIGSTOP)  # no new sessions while the old ones are found and killed
        for pid in _descendants(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "flint-e2e", "-f", str(path)], check=True)
    return path


def start_sshd(tmp: Path) -> Sshd:
    tmp.mkdir(parents=True, exist_ok=True)
    host_key = keygen(tmp / "host_ed25519")
    client_key = keygen(tmp / "client_ed25519")
    (tmp / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    port = free_port()
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
        f"PidFile {tmp / 'sshd.pid'}",
        "StrictModes no",  # the temp dir's owners and modes are the test's
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        # root's own shell start-up files stay out: on this machine root's .bashrc runs `pyenv rehash`,
        # which takes a lock; a login killed mid-rehash (services stopped by a test) left the lock
        # behind and every later login waited 60 s for it.
        f"SetEnv HOME={tmp / 'home'}",
        "",
    ]))
    (tmp / "home").mkdir(exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = (tmp / "sshd.log").open("w")
    proc = subprocess.Popen([SSHD, "-f", str(config), "-D", "-e"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=10)
    except Exception:
        proc.kill()
        raise AssertionError(f"sshd did not start:\n{(tmp / 'sshd.log').read_text()}") from None
    time.sleep(0.1)
    return Sshd(port=port, dir=tmp, proc=proc, client_key=client_key, host_key=host_key)
