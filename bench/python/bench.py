"""The Python package against what the platform's engineers use today, in
one run, against the same s3s-fs server and disk: boto3 and OpenDAL's
Python binding on S3, shutil + hashlib locally. Prints Markdown rows for
BENCHMARKS.md. Run by ``scripts/bench.sh python`` (release build).

wharf's numbers include what it always does: sha256 of every byte on save
and on load (verified before the file appears), a manifest committed with
a create-only write. The baselines do only the transfer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import boto3
import opendal
from botocore.config import Config as BotoConfig
from boto3.s3.transfer import TransferConfig

import wharf

SIZE = int(os.environ.get("WHARF_BENCH_BYTES", str(1 << 30)))
ROUNDS = int(os.environ.get("WHARF_BENCH_ROUNDS", "3"))
SMALL = 4096
SMALL_OPS = int(os.environ.get("WHARF_BENCH_SMALL_OPS", "300"))
MIB = 1 << 20


def env(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        sys.exit(f"${name} is not set: run scripts/bench.sh python, which starts s3s-fs")
    return v


def drop_caches() -> None:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def timed(f: Callable[[], object]) -> float:
    drop_caches()
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def rate(seconds: list[float]) -> float:
    return SIZE / MIB / statistics.median(seconds)


def p50(f: Callable[[int], object]) -> float:
    samples = []
    for i in range(SMALL_OPS):
        t = time.perf_counter()
        f(i)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def main() -> None:
    url, bucket = env("WHARF_TEST_S3S_URL"), env("WHARF_TEST_BUCKET")
    key, secret = env("WHARF_TEST_S3S_ACCESS_KEY"), env("WHARF_TEST_S3S_SECRET_KEY")
    run = f"bench-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="wharf-pybench-", dir=os.environ.get("WHARF_BENCH_DIR")))
    src = work / "model.bin"
    block = os.urandom(MIB)
    with open(src, "wb") as f:
        for _ in range(SIZE // MIB):
            f.write(block)

    s3_cfg = {
        "backends": {
            "s3s": {
                "plugin": "aws_s3",
                "config": {
                    "endpoint": url,
                    "bucket": bucket,
                    "access_key_id": key,
                    "secret_access_key": secret,
                    "prefix": f"{run}/wharf/",
                },
                "grants": {"http": ["http://127.0.0.1:*"]},
            }
        }
    }
    store = work / "store"
    store.mkdir()
    local_cfg = {
        "backends": {
            "disk": {
                "plugin": "local_filesystem",
                "config": {"root": "/data"},
                "grants": {"dirs": [{"host": str(store), "guest": "/data", "create": True}]},
            }
        }
    }
    s3 = wharf.StorageService(s3_cfg, backend="s3s")
    disk = wharf.StorageService(local_cfg, backend="disk")
    boto = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}),
    )
    # boto3's defaults for upload_file/download_file (8 MiB parts, 10 threads).
    transfer = TransferConfig()
    op = opendal.Operator(
        "s3",
        bucket=bucket,
        endpoint=url,
        region="us-east-1",
        access_key_id=key,
        secret_access_key=secret,
        root=f"/{run}/opendal/",
        disable_config_load="true",
        disable_ec2_metadata="true",
    )

    rows: list[tuple[str, str, float, str, float]] = []

    # --- large, S3 -------------------------------------------------------------
    up = {"wharf": [], "boto3": [], "opendal": []}
    down = {"wharf": [], "boto3": [], "opendal": []}
    for r in range(ROUNDS):
        order = ["wharf", "boto3", "opendal"]
        order = order[r % 3 :] + order[: r % 3]
        for who in order:
            out = work / f"back-{who}.bin"
            if who == "wharf":
                info: wharf.ModelStorageInfo | None = None

                def save() -> None:
                    nonlocal info
                    info = s3.save(src, model="big", version=str(r))

                up[who].append(timed(save))
                down[who].append(timed(lambda: s3.load(info, dest=out)))
            elif who == "boto3":
                k = f"{run}/boto3/big-{r}"
                up[who].append(timed(lambda: boto.upload_file(str(src), bucket, k, Config=transfer)))
                down[who].append(timed(lambda: boto.download_file(bucket, k, str(out), Config=transfer)))
            else:
                p = f"big-{r}"

                def put() -> None:
                    with open(src, "rb") as f, op.open(p, "wb") as w:
                        shutil.copyfileobj(f, w, 8 * MIB)

                def get() -> None:
                    with op.open(p, "rb") as rd, open(out, "wb") as f:
                        shutil.copyfileobj(rd, f, 8 * MIB)

                up[who].append(timed(put))
                down[who].append(timed(get))
            assert out.stat().st_size == SIZE, who
            out.unlink()
    for what, d in (("upload", up), ("download", down)):
        w = rate(d["wharf"])
        rows.append((f"{SIZE // MIB} MiB {what} to s3s-fs (MiB/s, median of {ROUNDS})", "boto3", w, "%.0f" % rate(d["boto3"]), w / rate(d["boto3"])))
        rows.append((f"{SIZE // MIB} MiB {what} to s3s-fs (MiB/s, median of {ROUNDS})", "OpenDAL", w, "%.0f" % rate(d["opendal"]), w / rate(d["opendal"])))

    # --- large, local ----------------------------------------------------------
    lsave, lload, csave, cload = [], [], [], []
    for r in range(ROUNDS):
        out = work / "back-local.bin"
        info = None

        def lsave_f() -> None:
            nonlocal info
            info = disk.save(src, model="big", version=str(r))

        lsave.append(timed(lsave_f))
        lload.append(timed(lambda: disk.load(info, dest=out)))
        out.unlink()

        def copy_hash(a: Path, b: Path) -> Callable[[], None]:
            def f() -> None:
                shutil.copyfile(a, b)
                h = hashlib.sha256()
                with open(b, "rb") as fh:
                    for chunk in iter(lambda: fh.read(8 * MIB), b""):
                        h.update(chunk)
                os.fsync(os.open(b, os.O_RDONLY))

            return f

        csave.append(timed(copy_hash(src, work / "copy.bin")))
        cload.append(timed(copy_hash(work / "copy.bin", out)))
        (work / "copy.bin").unlink()
        out.unlink()
    base = "shutil.copyfile + hashlib.sha256"
    rows.append((f"{SIZE // MIB} MiB save, local (MiB/s, median of {ROUNDS})", base, rate(lsave), "%.0f" % rate(csave), rate(lsave) / rate(csave)))
    rows.append((f"{SIZE // MIB} MiB load to a file, local (MiB/s, median of {ROUNDS})", base, rate(lload), "%.0f" % rate(cload), rate(lload) / rate(cload)))

    # --- small objects, S3 -------------------------------------------------------
    small = os.urandom(SMALL)
    infos: list[wharf.ModelStorageInfo] = []
    fs_paths = [f"{run}/obj/{i}" for i in range(SMALL_OPS)]
    lat = {
        "wharf save (model: data + manifest)": p50(lambda i: infos.append(s3.save(small, model="small", version=str(i)))),
        "wharf load (model, sha256 verified)": p50(lambda i: s3.load(infos[i])),
        "wharf object put": p50(lambda i: s3._native.put_bytes(fs_paths[i], small, True, "s3s")),
        "wharf object get": p50(lambda i: s3._native.read_range(fs_paths[i], 0, None, "s3s")),
        "boto3 put_object": p50(lambda i: boto.put_object(Bucket=bucket, Key=f"{run}/b/{i}", Body=small)),
        "boto3 get_object": p50(lambda i: boto.get_object(Bucket=bucket, Key=f"{run}/b/{i}")["Body"].read()),
        "opendal write": p50(lambda i: op.write(f"o/{i}", small)),
        "opendal read": p50(lambda i: op.read(f"o/{i}")),
    }

    print(f"| measurement | wharf | baseline | baseline value | ratio wharf/baseline |")
    print("|---|---|---|---|---|")
    for what, who, w, b, ratio in rows:
        print(f"| {what} | {w:.0f} | {who} | {b} | {ratio:.2f} |")
    print()
    print(f"| 4 KiB, s3s-fs, p50 of {SMALL_OPS} sequential ops | µs |")
    print("|---|---|")
    for k, v in lat.items():
        print(f"| {k} | {v:.0f} |")
    print()
    for a, b in (
        ("wharf save (model: data + manifest)", "opendal write"),
        ("wharf load (model, sha256 verified)", "opendal read"),
        ("wharf object put", "opendal write"),
        ("wharf object get", "opendal read"),
        ("wharf object put", "boto3 put_object"),
        ("wharf object get", "boto3 get_object"),
    ):
        print(f"- {a} / {b}: {lat[a] / lat[b]:.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
