"""volume.upload survives its provisioner dying before the bytes flow: killed right after making the
volume, the job is redelivered while the gateway still holds the client's body, takes the stream and
succeeds; one volume, nothing in the (no longer used) upload bucket. Dying while receiving: see
test_storage_upload.py (the job fails and deletes the volume; the client uploads again)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e import virt
from tests.e2e.conftest import start_stack, stop_stack
from tests.e2e.storage_support import (
    SCRATCH,
    remove_pool,
    token_client,
    upload_objects,
    vol_download,
    wait_job,
)
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_upload_job_finishes_after_the_provisioner_dies(tmp_path_factory, tmp_path):
    stack = start_stack(tmp_path_factory.mktemp("crash-upload"),
                        FLINT_TEST_CRASH_AFTER_STEP="volume.upload:create volume")
    name = virt.unique_name("e2e-stg-crash")
    target = SCRATCH / name
    try:
        api = token_client(stack, "admin", "crash-upload")
        assert api.post("/hosts/local/pools", json={"name": name, "type": "dir", "target": str(target)}
                        ).status_code == 201
        data = os.urandom(5 * 2**20 + 3)
        resp = api.put(f"/hosts/local/pools/{name}/volumes/survivor.raw/content", content=data)
        assert resp.status_code == 202, resp.text
        job = wait_job(api, resp.json()["id"], timeout=90)
        assert job["state"] == "succeeded", job
        assert "restarting" in stack.proc.output(), "the provisioner really died"
        assert vol_download(name, "survivor.raw", tmp_path / "back") == data
        listed = [line.split()[0] for line in virt.virsh("vol-list", name).splitlines()[2:] if line.strip()]
        assert listed == ["survivor.raw"], "one volume, no duplicate from the retry"
        eventually(lambda: upload_objects(stack) == [], timeout=15, what="the upload bucket emptied")
    finally:
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)
        stop_stack(stack)
