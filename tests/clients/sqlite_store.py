"""The SQLite example adapter's database (adapters/examples/python-sqlite),
as a program without wharf sees it: the host's own Python and its sqlite3.

It opens the file with the `unix-dotfile` VFS, the locking SQLite uses
under WASI (a `<db>.lock` directory); the default `unix` VFS would not see
the adapter's locks.

    sqlite_store.py dump <db>              JSON: the objects, each with the
                                           sha256 of its rows, and what else
                                           the tables hold
    sqlite_store.py hold-lock <db> <s>     takes the write lock, prints
                                           "locked", holds it <s> seconds
    sqlite_store.py kill-mid-commit <db>   what an instance killed inside a
                                           commit leaves: the lock directory
                                           (aged past the adapter's stale
                                           limit) and a hot journal, with
                                           every chunk row zeroed in the file
"""

import hashlib
import json
import os
import sqlite3
import sys
import time


def connect(db: str, mode: str = "rw") -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?vfs=unix-dotfile&mode={mode}", uri=True, isolation_level=None, timeout=30)


def dump(db: str) -> None:
    c = connect(db, "ro")
    objects = []
    for path, version, size, modified in c.execute(
        "SELECT path, version, size, modified_ms FROM objects ORDER BY path"
    ).fetchall():
        h = hashlib.sha256()
        at, rows, largest = 0, 0, 0
        for start, data in c.execute(
            "SELECT start, data FROM chunks WHERE version=? ORDER BY start", (version,)
        ).fetchall():
            if start != at:
                raise SystemExit(f"{path}: a row starts at {start}, expected {at}")
            h.update(data)
            at += len(data)
            rows += 1
            largest = max(largest, len(data))
        objects.append(
            {
                "path": path,
                "etag": f"v{version:x}",
                "size": size,
                "stored": at,
                "sha256": h.hexdigest(),
                "rows": rows,
                "largest_row": largest,
                "modified_ms": modified,
            }
        )
    out = {
        "objects": objects,
        "uploads": c.execute("SELECT count(*) FROM uploads").fetchone()[0],
        "orphan_rows": c.execute(
            "SELECT count(*) FROM chunks WHERE version NOT IN (SELECT version FROM objects)"
        ).fetchone()[0],
        "page_size": c.execute("PRAGMA page_size").fetchone()[0],
        "integrity": c.execute("PRAGMA integrity_check").fetchone()[0],
    }
    print(json.dumps(out))


def hold_lock(db: str, seconds: float) -> None:
    c = connect(db)
    c.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)
    c.execute("COMMIT")


def kill_mid_commit(db: str) -> None:
    c = connect(db)
    # A page cache of one page: the changes spill into the database file
    # before the commit, after the journal of their old content is synced.
    c.execute("PRAGMA cache_size=1")
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE chunks SET data = zeroblob(length(data))")
    c.execute("DELETE FROM objects")
    # A killed instance leaves its lock; make it older than STALE_LOCK_S.
    old = time.time() - 600
    os.utime(db + ".lock", (old, old))
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    cmd, db = sys.argv[1], sys.argv[2]
    if cmd == "dump":
        dump(db)
    elif cmd == "hold-lock":
        hold_lock(db, float(sys.argv[3]))
    elif cmd == "kill-mid-commit":
        kill_mid_commit(db)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
