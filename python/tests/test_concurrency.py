"""asyncio, threads and fork: the service is shared, the loop never blocks,
the GIL is released during transfers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import wharf

from conftest import local_config


def test_async_many_concurrent_saves_and_loads(config: dict[str, Any]) -> None:
    async def main() -> None:
        svc = wharf.AsyncStorageService(config)
        blobs = [os.urandom(10_000 + i) for i in range(64)]
        infos = await asyncio.gather(*(svc.save(b, model="many", version=str(i)) for i, b in enumerate(blobs)))
        assert [i.checksum for i in infos] == [hashlib.sha256(b).hexdigest() for b in blobs]
        loaded = await asyncio.gather(*(svc.load(i) for i in infos))
        assert loaded == blobs
        assert len(await svc.list_objects("models/many/")) == 128
        assert all(await asyncio.gather(*(svc.exists(i) for i in infos)))
        assert (await svc.get_metadata(infos[0]))["size_bytes"] == 10_000
        assert (await svc.health())["ok"]
        assert [p async for p in svc.iter_objects("models/many/1/")] == await svc.list_objects("models/many/1/")
        assert await svc.delete(infos[0]) and not await svc.exists(infos[0])
        with pytest.raises(wharf.NotFound):
            await svc.load(infos[0])
        with pytest.raises(wharf.AlreadyExists):
            await svc.save(b"x", model="many", version="1")
        f = await svc.open(infos[1])
        assert f.read() == blobs[1]

    asyncio.run(main())


def test_async_does_not_block_the_loop(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)

    async def main() -> tuple[int, float]:
        svc = wharf.AsyncStorageService(local_config(tmp_path / "store"))
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        start = time.monotonic()
        await svc.save(big, model="big", version="1")
        took = time.monotonic() - start
        stop = True
        await t
        return ticks, took

    ticks, took = asyncio.run(main())
    # The loop kept ticking through the save (at most every 5 ms).
    assert ticks >= took / 0.005 * 0.3, (ticks, took)


def test_async_cancel_stops_the_save(tmp_path: Path) -> None:
    class Endless:
        def read(self, n: int) -> bytes:
            time.sleep(0.001)
            return b"x" * n

    async def main() -> None:
        svc = wharf.AsyncStorageService(local_config(tmp_path / "store"))
        task = asyncio.create_task(svc.save(Endless(), model="endless", version="1"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        assert not await svc.exists("models/endless/1")
        assert await svc.list_objects("models/endless/") == []

    asyncio.run(main())


def test_threads_share_one_service_and_run_in_parallel(svc: wharf.StorageService) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            data = os.urandom(50_000) + bytes([i])
            info = svc.save(data, model="threads", version=str(i))
            assert svc.load(info) == data
            assert svc.exists(info)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(svc.list_objects("models/threads/")) == 32


def test_the_gil_is_released_during_a_transfer(local: wharf.StorageService, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)
    counted = 0
    done = threading.Event()

    def count() -> None:
        nonlocal counted
        while not done.is_set():
            counted += 1

    t = threading.Thread(target=count)
    t.start()
    start = time.monotonic()
    local.save(big, model="gil", version="1")
    took = time.monotonic() - start
    done.set()
    t.join()
    # A pure-Python loop got to run all along (with the GIL held it could
    # only run between switch intervals, a few hundred times at most).
    assert counted > 10_000 * took, (counted, took)


def test_a_forked_child_keeps_working(svc: wharf.StorageService) -> None:
    info = svc.save(b"before fork", model="fork", version="1")
    pid = os.fork()
    if pid == 0:  # the child: same service object, new process
        code = 1
        try:
            assert svc.load(info) == b"before fork"
            child = svc.save(b"from the child", model="fork", version="2")
            assert svc.load(child) == b"from the child"
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # And the parent still works, and sees what the child saved.
    assert svc.load("models/fork/2") == b"from the child"
