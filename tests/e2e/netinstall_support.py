"""An install tree on a loopback HTTP server for the network-install tests: python's http.server in a
thread on 127.0.0.1, a .treeinfo whose kernel is Debian's ipxe.lkrn (and a small initrd), with sha256 sums,
and a kickstart file beside it."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
from functools import partial
from pathlib import Path

from tests.e2e.vm_create_support import IPXE_LKRN


class TreeServer:
    """Serves one directory on 127.0.0.1 and notes each path asked."""

    def __init__(self, root: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                server.requests.append(self.path)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_tree(root: Path) -> TreeServer:
    """<url>/tree/ is the install tree, <url>/ks.cfg the kickstart."""
    images = root / "tree" / "images" / "pxeboot"
    images.mkdir(parents=True)
    shutil.copyfile(os.path.realpath(IPXE_LKRN), images / "vmlinuz")
    (images / "initrd.img").write_bytes(b"flint test initrd\n" * 512)
    sums = {p: hashlib.sha256((root / "tree" / p).read_bytes()).hexdigest()
            for p in ("images/pxeboot/vmlinuz", "images/pxeboot/initrd.img")}
    (root / "tree" / ".treeinfo").write_text(
        "[general]\nfamily = FlintTest\nversion = 1\narch = x86_64\n\n"
        "[tree]\narch = x86_64\nplatforms = x86_64\n\n"
        "[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n\n"
        "[checksums]\n" + "".join(f"{p} = sha256:{s}\n" for p, s in sums.items()))
    (root / "ks.cfg").write_text("# kickstart the installer would read\n")
    return TreeServer(root)
