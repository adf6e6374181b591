"""A large file through the Python API in bounded memory: each run is a
fresh process whose peak RSS (VmHWM) is asserted, so nothing else in the
test session counts. 512 MiB, or 1 GiB in the long mode
(`WHARF_TEST_LONG=1`, by hand): either is well over the bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import local_config, s3s_config, unique

#: MiB written, saved and loaded.
SIZE_MIB = 1024 if os.environ.get("WHARF_TEST_LONG") == "1" else 512
#: The process may hold a few 4 MiB chunks in flight, never the file.
MAX_PEAK_MIB = 200

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys, time
    import wharf

    config, work, mib = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[4])
    svc = wharf.StorageService(config)
    src = os.path.join(work, "big.bin")
    with open(src, "wb") as f:  # 1 MiB of random bytes, repeated
        block = os.urandom(1 << 20)
        for _ in range(mib):
            f.write(block)
    want = hashlib.sha256()
    for _ in range(mib):
        want.update(block)
    times = {}
    t = time.monotonic()
    info = svc.save(src, model="big", version="1")
    times["save_path"] = time.monotonic() - t
    assert info.size_bytes == mib << 20 and info.checksum == want.hexdigest(), info
    t = time.monotonic()
    svc.load(info, dest=os.path.join(work, "back.bin"))
    times["load_dest"] = time.monotonic() - t
    assert os.path.getsize(os.path.join(work, "back.bin")) == mib << 20
    os.remove(os.path.join(work, "back.bin"))
    if sys.argv[3] == "all":
        t = time.monotonic()
        with open(src, "rb") as f:
            streamed = svc.save(f, model="big", version="2")
        times["save_stream"] = time.monotonic() - t
        assert streamed.checksum == info.checksum
        t = time.monotonic()
        h = hashlib.sha256()
        with svc.open(streamed) as f:  # verified at the end by the reader too
            for chunk in iter(lambda: f.read(8 << 20), b""):
                h.update(chunk)
        times["open_read"] = time.monotonic() - t
        assert h.hexdigest() == info.checksum
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    print(json.dumps({"peak_mib": peak / 1024, "seconds": times}))
    """
)


def run(config: dict[str, Any], work: Path, which: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config), str(work), which, str(SIZE_MIB)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{SIZE_MIB} MiB {which}: {result}")
    return result


@pytest.mark.parametrize("backend", ["local", "s3s"])
def test_large_file_streams_in_bounded_memory(backend: str, tmp_path: Path) -> None:
    if backend == "local":
        result = run(local_config(tmp_path / "store"), tmp_path, "all")
    else:
        result = run(s3s_config(unique("big")), tmp_path, "path")
    assert result["peak_mib"] < MAX_PEAK_MIB, result
