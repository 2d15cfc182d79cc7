"""flint.objects on a real nats-server: streamed put and get of a large object, in the Object Store format
nats-py itself reads, with limits, damage detection and clean removal."""

from __future__ import annotations

import hashlib
import os

import nats
import pytest

from flint import objects

pytestmark = pytest.mark.integration
BUCKET = "flint-test-objects"


@pytest.fixture
async def js(nats_server):
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def _chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def test_a_streamed_object_comes_back_whole_and_nats_py_agrees(js):
    data = os.urandom(5 * objects.CHUNK_SIZE + 12345)  # several chunks and a partial one
    await objects.open_bucket(js, BUCKET)
    size, sha = await objects.put_stream(js, "big", _chunks(data, 64 * 1024 + 7), bucket=BUCKET)
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    got = b"".join([c async for c in objects.read_stream(js, "big", BUCKET)])
    assert got == data
    store = await js.object_store(BUCKET)
    result = await store.get("big")  # nats-py checks the digest we wrote
    assert result.data == data and result.info.chunks == 6
    assert await objects.delete(js, "big", BUCKET)
    assert await objects.info(js, "big", BUCKET) is None
    assert not await objects.delete(js, "big", BUCKET)


async def test_more_than_the_limit_is_refused_and_nothing_stays(js):
    await objects.open_bucket(js, BUCKET)
    with pytest.raises(objects.TooLarge):
        await objects.put_stream(js, "over", _chunks(os.urandom(3 * objects.CHUNK_SIZE), 100_000),
                                 limit=objects.CHUNK_SIZE, bucket=BUCKET)
    assert await objects.info(js, "over", BUCKET) is None
    info = await js.stream_info(f"OBJ_{BUCKET}", subjects_filter=f"$O.{BUCKET}.C.>")
    assert not info.state.subjects, "the chunks already sent were purged"


async def test_an_empty_object_and_a_missing_one(js):
    await objects.open_bucket(js, BUCKET)
    assert await objects.put_stream(js, "empty", _chunks(b"", 1), bucket=BUCKET) == (0, hashlib.sha256().hexdigest())
    assert [c async for c in objects.read_stream(js, "empty", BUCKET)] == []
    with pytest.raises(FileNotFoundError):
        [c async for c in objects.read_stream(js, "absent", BUCKET)]
