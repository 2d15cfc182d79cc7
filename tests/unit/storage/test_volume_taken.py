"""A volume job's create step (libvirt's test driver, in process): a volume of the job's name made by
someone else meanwhile is refused and left alone; on a retry of the same job it is the job's own."""

from __future__ import annotations

import libvirt
import pytest

from services.provisioner.volume_jobs import VolumeTaken, _create_volume_blocking


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")  # one private test-driver state per connection
    yield c
    c.close()


def test_a_volume_made_meanwhile_is_not_taken_over(conn):
    _create_volume_blocking(conn, "default-pool", "upload.raw", 1 << 20)
    with pytest.raises(VolumeTaken):
        _create_volume_blocking(conn, "default-pool", "upload.raw", 1 << 20)
    assert conn.storagePoolLookupByName("default-pool").storageVolLookupByName("upload.raw").info()[1] == 1 << 20


def test_a_retry_of_the_same_job_reuses_its_volume(conn):
    _create_volume_blocking(conn, "default-pool", "again.raw", 1 << 20)
    _create_volume_blocking(conn, "default-pool", "again.raw", 1 << 20, retry=True)
