"""`python_dir`: a wharf storage adapter in Python, over a directory the host grants.

Built into a WebAssembly component by componentize-py (see README.md and
build.sh). It keeps the semantics of the Rust `local_filesystem` adapter, so
both can serve the same directory:

- An object `a/b.onnx` is the file `<root>/a/b.onnx`; `root` (config key,
  default `/data`) is the guest path of the directory the host grants.
- Writes go to `<root>/.wharf-tmp/` first and become visible by a rename
  (overwrite, update) or a hard link (create: `link` fails atomically when
  the destination exists), so a reader never sees a half-written object.
- Paths whose first segment starts with `.wharf` are reserved.
- The etag is `<size>-<mtime ns>` in hex: every write makes a new file and
  stamps its modification time from the wall clock in nanoseconds, so any
  content change changes it. `update(etag)` compares, then renames, holding
  the object's lock file, so of updates racing with one etag exactly one
  wins.

The host creates a fresh instance for every operation, so nothing here is
kept between operations: a `Backend` lives for one call (or for one reader or
writer and its calls), and all state is in the directory.
"""

import errno
import functools
import hashlib
import os
import secrets
import stat as stat_mod
import time
import traceback
from typing import List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import adapter
from wit_world.imports.types import (
    ByteRange,
    Capabilities,
    Error,
    Error_AlreadyExists,
    Error_Backend,
    Error_Denied,
    Error_Invalid,
    Error_NotFound,
    Error_PreconditionFailed,
    Error_Transient,
    ObjectMeta,
    Page,
    PutMode,
    PutMode_Create,
    PutMode_Overwrite,
    PutMode_Update,
)

TMP_DIR = ".wharf-tmp"
# Temporary files older than this are left-overs of a write whose instance
# was killed (timeout, host crash) before `abort` could run.
STALE_TMP_NS = 24 * 3600 * 1_000_000_000
LIST_MAX_LIMIT = 1000
# How long an update waits for another update of the same object, and when
# a lock file counts as left behind by a killed instance.
UPDATE_LOCK_WAIT_S = 10
STALE_LOCK_NS = 60 * 1_000_000_000
WRITE_MAX_CHUNK = 16 << 20
COPY_CHUNK = 1 << 20

# errno values after which the same operation may well succeed if retried:
# the contract's `transient`. Nothing has been committed when they occur.
TRANSIENT_ERRNOS = {errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT}


class AdapterError(Exception):
    """Raised inside the adapter; turned into `Err(error)` at the boundary."""

    def __init__(self, error: Error):
        super().__init__(error.value)
        self.error = error


def os_error(op: str, path: str, e: OSError) -> AdapterError:
    """Maps an OSError to the contract's error variant."""
    msg = f"{op} `{path}`: {e.strerror or e}"
    if isinstance(e, FileNotFoundError):
        return AdapterError(Error_NotFound(msg))
    if isinstance(e, FileExistsError):
        return AdapterError(Error_AlreadyExists(msg))
    if isinstance(e, PermissionError) or e.errno == errno.EROFS:
        return AdapterError(Error_Denied(msg))
    if e.errno == errno.ENAMETOOLONG:
        return AdapterError(Error_Invalid(msg))
    if e.errno in TRANSIENT_ERRNOS:
        return AdapterError(Error_Transient(msg))
    return AdapterError(Error_Backend(msg))


def contract(method):
    """Wraps an exported method so that every failure leaves as `Err(error)`.

    componentize-py turns a raised `Err(value)` into the `error` of the WIT
    `result`; any other exception would trap the instance, which the host
    treats as a broken adapter. So: our own errors and OSErrors become their
    variant, anything unexpected becomes `backend` with its traceback.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Err:
            raise
        except AdapterError as e:
            raise Err(e.error)
        except OSError as e:
            raise Err(os_error(method.__name__, "", e).error)
        except Exception:
            raise Err(Error_Backend(f"{method.__name__}: {traceback.format_exc(limit=4)}"))

    return wrapper


def is_control(c: str) -> bool:
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def check_path(path: str) -> None:
    """Rejects what the host already rejects, and the reserved `.wharf*`."""
    segments = path.split("/")
    bad = (
        not path
        or len(path.encode("utf-8")) > 1024
        or path.startswith("/")
        or path.endswith("/")
        or any(is_control(c) for c in path)
        or any(s in ("", ".", "..") for s in segments)
        or segments[0].startswith(".wharf")
    )
    if bad:
        raise AdapterError(Error_Invalid(f"invalid object path `{path}`"))


def meta_of(path: str, st: os.stat_result) -> ObjectMeta:
    mtime_ns = st.st_mtime_ns if st.st_mtime_ns >= 0 else 0
    return ObjectMeta(
        path=path,
        size=st.st_size,
        etag=f"{st.st_size:x}-{mtime_ns:x}",
        modified_ms=st.st_mtime_ns // 1_000_000 if st.st_mtime_ns >= 0 else None,
    )


def utf8_name(name: str) -> bool:
    """Whether a directory entry's name is valid UTF-8 (a WIT string can't
    carry anything else; Python keeps undecodable bytes as surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class Adapter(exports.Adapter):
    """The exported interface `adapter`: only the `open` function."""

    @contract
    def open(self, config: List[Tuple[str, str]]) -> adapter.Backend:
        root = "/data"
        for key, value in config:
            if key == "root":
                root = value
            else:
                raise AdapterError(Error_Invalid(f"unknown config key `{key}` (known: root)"))
        try:
            st = os.stat(root)
        except OSError as e:
            raise AdapterError(
                Error_Invalid(
                    f"root `{root}` is not accessible ({e.strerror or e}); is it granted to this backend?"
                )
            )
        if not stat_mod.S_ISDIR(st.st_mode):
            raise AdapterError(Error_Invalid(f"root `{root}` is not a directory"))
        return Backend(root.rstrip("/") or "/")


class Backend(adapter.Backend):
    """The `backend` resource: one configured directory."""

    def __init__(self, root: str):
        self.root = root

    def file(self, path: str) -> str:
        check_path(path)
        return os.path.join(self.root, path)

    def tmp_dir(self) -> str:
        tmp = os.path.join(self.root, TMP_DIR)
        try:
            os.makedirs(tmp, exist_ok=True)
        except OSError as e:
            raise os_error("write", TMP_DIR, e)
        return tmp

    def capabilities(self) -> Capabilities:
        return Capabilities(
            read_range=True,
            write_create=True,
            write_update=True,
            copy=True,
            list_max_limit=LIST_MAX_LIMIT,
            write_min_chunk=0,
            write_max_chunk=WRITE_MAX_CHUNK,
            max_object_size=None,
        )

    def stat_object(self, path: str) -> ObjectMeta:
        full = self.file(path)
        try:
            st = os.stat(full)
        except NotADirectoryError:
            # A segment of the path is an object: nothing can be below it.
            raise AdapterError(Error_NotFound("no such object"))
        except OSError as e:
            raise os_error("stat", path, e)
        if not stat_mod.S_ISREG(st.st_mode):
            raise AdapterError(Error_NotFound("not an object (a directory)"))
        return meta_of(path, st)

    @contract
    def stat(self, path: str) -> ObjectMeta:
        return self.stat_object(path)

    @contract
    def exists(self, path: str) -> bool:
        try:
            self.stat_object(path)
            return True
        except AdapterError as e:
            if isinstance(e.error, Error_NotFound):
                return False
            raise

    @contract
    def delete(self, path: str) -> None:
        full = self.file(path)
        try:
            os.remove(full)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            # No object there (a directory is a prefix, not an object).
            return
        except OSError as e:
            raise os_error("delete", path, e)
        # Remove directories the delete left empty, so they do not pile up.
        parent = os.path.dirname(full)
        while parent != self.root and len(parent) > len(self.root):
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    @contract
    def list(self, prefix: str, cursor: Optional[str], limit: int) -> Page:
        if "\0" in prefix or prefix.startswith("/") or ".." in prefix.split("/"):
            raise AdapterError(Error_Invalid(f"invalid list prefix `{prefix}`"))
        limit = max(1, min(limit, LIST_MAX_LIMIT))
        # Walk from the deepest directory the prefix names completely.
        base = prefix[: prefix.rfind("/") + 1]
        out: List[ObjectMeta] = []
        more = self.walk(base, prefix, cursor, limit, out)
        return Page(entries=out, next_cursor=out[-1].path if more and out else None)

    def walk(self, dir_key: str, prefix: str, cursor: Optional[str], limit: int, out: List[ObjectMeta]) -> bool:
        """Depth-first walk in byte order of full paths; True when there is more.

        Sorting a directory's entries by `name` for files and `name/` for
        directories gives exactly the byte order of the paths below them
        (Python compares strings by code point, which is UTF-8 byte order).
        """
        try:
            entries = list(os.scandir(os.path.join(self.root, dir_key)))
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as e:
            raise os_error("list", dir_key, e)
        keys = []
        for entry in entries:
            name = entry.name
            if not utf8_name(name) or (not dir_key and name.startswith(".wharf")):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError as e:
                raise os_error("list", dir_key + name, e)
            keys.append((dir_key + name + "/", True) if is_dir else (dir_key + name, False))
        keys.sort()
        for key, is_dir in keys:
            # Skip what cannot match the prefix.
            if not (key.startswith(prefix) or (is_dir and prefix.startswith(key))):
                continue
            # Skip what sorts at or before the cursor.
            if cursor is not None:
                if is_dir:
                    if key < cursor and not cursor.startswith(key):
                        continue
                elif key <= cursor:
                    continue
            if is_dir:
                if self.walk(key, prefix, cursor, limit, out):
                    return True
            else:
                if len(out) == limit:
                    return True
                try:
                    st = os.stat(os.path.join(self.root, key))
                except FileNotFoundError:
                    continue  # deleted while we listed
                except OSError as e:
                    raise os_error("list", key, e)
                if stat_mod.S_ISREG(st.st_mode):
                    out.append(meta_of(key, st))
        return False

    @contract
    def copy(self, source: str, destination: str, mode: PutMode) -> ObjectMeta:
        src = self.file(source)
        try:
            infile = open(src, "rb")
        except IsADirectoryError:
            raise AdapterError(Error_NotFound("not an object (a directory)"))
        except NotADirectoryError:
            raise AdapterError(Error_NotFound("no such object"))
        except OSError as e:
            raise os_error("copy", source, e)
        with infile:
            w = self.start_write(destination, mode)
            try:
                while True:
                    try:
                        chunk = infile.read(COPY_CHUNK)
                    except OSError as e:
                        raise os_error("copy", source, e)
                    if not chunk:
                        break
                    w.write_chunk(chunk)
                return w.commit()
            finally:
                w.discard()

    @contract
    def health(self) -> str:
        probe = os.path.join(self.tmp_dir(), f"health-{secrets.token_hex(16)}")
        try:
            with open(probe, "xb") as f:
                f.write(b"ok")
        except OSError as e:
            raise os_error("health write", TMP_DIR, e)
        try:
            os.remove(probe)
        except OSError as e:
            raise os_error("health remove", TMP_DIR, e)
        return f"directory `{self.root}` is readable and writable (python_dir)"

    @contract
    def read(self, path: str, range: Optional[ByteRange]) -> adapter.Reader:
        full = self.file(path)
        try:
            f = open(full, "rb")
        except (IsADirectoryError, NotADirectoryError):
            raise AdapterError(Error_NotFound("not an object"))
        except OSError as e:
            raise os_error("read", path, e)
        try:
            size = os.fstat(f.fileno()).st_size
            if range is None:
                start, end = 0, size
            else:
                if range.end is not None and range.end < range.start:
                    raise AdapterError(Error_Invalid("range end before start"))
                end = size if range.end is None else min(range.end, size)
                start = min(range.start, end)
            if start > 0:
                f.seek(start)
        except OSError as e:
            f.close()
            raise os_error("read", path, e)
        except BaseException:
            f.close()
            raise
        return Reader(f, end - start, path)

    def start_write(self, path: str, mode: PutMode) -> "Writer":
        dest = self.file(path)
        tmp_dir = self.tmp_dir()
        name = secrets.token_hex(16)
        # A cheap, occasional sweep of temporaries left by killed writes.
        if name.endswith("00"):
            sweep_stale(tmp_dir)
        tmp = os.path.join(tmp_dir, name)
        try:
            f = open(tmp, "xb")
        except OSError as e:
            raise os_error("write", path, e)
        return Writer(f, tmp, dest, path, mode)

    @contract
    def write(self, path: str, mode: PutMode, size_hint: Optional[int]) -> adapter.Writer:
        return self.start_write(path, mode)


def sweep_stale(tmp_dir: str) -> None:
    now = time.time_ns()
    try:
        entries = list(os.scandir(tmp_dir))
    except OSError:
        return
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime_ns > STALE_TMP_NS:
                os.remove(entry.path)
        except OSError:
            pass


class UpdateLock:
    """A lock file per object path in the temporary folder, created with
    O_EXCL (atomic in every file system WASI reaches), held by an update
    from its etag check to its rename. A lock older than STALE_LOCK_NS was
    left by an instance killed in between, and is broken."""

    def __init__(self, tmp_dir: str, path: str):
        name = hashlib.sha256(path.encode()).hexdigest()[:32] + ".lock"
        self.lock = os.path.join(tmp_dir, name)
        self.path = path

    def __enter__(self) -> "UpdateLock":
        deadline = time.monotonic() + UPDATE_LOCK_WAIT_S
        while True:
            try:
                os.close(os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return self
            except FileExistsError:
                pass
            except OSError as e:
                raise os_error("write", self.path, e)
            try:
                if time.time_ns() - os.stat(self.lock).st_mtime_ns > STALE_LOCK_NS:
                    remove_quietly(self.lock)
                    continue
            except FileNotFoundError:
                continue
            except OSError as e:
                raise os_error("write", self.path, e)
            if time.monotonic() > deadline:
                raise AdapterError(
                    Error_Transient(f"another update of this object held its lock for {UPDATE_LOCK_WAIT_S} s")
                )
            time.sleep(0.005)

    def __exit__(self, *exc) -> bool:
        remove_quietly(self.lock)
        return False


class Reader(adapter.Reader):
    """The `reader` resource: an open file and how much of it is left."""

    def __init__(self, f, remaining: int, path: str):
        self.f = f
        self.remaining = remaining
        self.path = path

    @contract
    def next(self, max_bytes: int) -> bytes:
        want = min(self.remaining, max_bytes)
        if want == 0:
            self.f.close()
            return b""
        try:
            data = self.f.read(want)
        except OSError as e:
            raise os_error("read", self.path, e)
        if len(data) < want:
            raise AdapterError(
                Error_Backend(
                    f"the file shrank while it was read ({want - len(data)} bytes missing)"
                )
            )
        self.remaining -= len(data)
        return data


class Writer(adapter.Writer):
    """The `writer` resource: a temporary file and where it goes.

    componentize-py (0.25) runs no Python code when the host drops a
    resource, so a writer cannot clean up in a destructor. wharf's host
    calls `abort` on every writer it drops unfinished; a temporary whose
    instance was killed before that is swept after a day (`sweep_stale`).
    """

    def __init__(self, f, tmp: str, dest: str, path: str, mode: PutMode):
        self.f = f
        self.tmp = tmp
        self.dest = dest
        self.path = path
        self.mode = mode

    def check_open(self, what: str) -> None:
        if self.f is None:
            raise AdapterError(Error_Invalid(f"{what} after finish or abort"))

    def write_chunk(self, chunk: bytes) -> None:
        self.check_open("append")
        try:
            self.f.write(chunk)
        except OSError as e:
            raise os_error("write", self.path, e)

    def discard(self) -> None:
        """Closes and removes the temporary file; a no-op after a commit."""
        if self.f is not None:
            try:
                self.f.close()
            except OSError:
                pass
            self.f = None
        remove_quietly(self.tmp)

    def commit(self) -> ObjectMeta:
        self.check_open("finish")
        try:
            try:
                self.f.flush()
                # The etag is size and mtime: stamp the mtime from the wall
                # clock (ns), not the kernel's file time, which before Linux
                # 6.13 moves in ticks of 1-10 ms, so two same-size writes in
                # one tick would share an etag and a stale update would win.
                now = time.time_ns()
                os.utime(self.tmp, ns=(now, now))
                os.fsync(self.f.fileno())
                self.f.close()
            except OSError as e:
                raise os_error("write", self.path, e)
            self.f = None
            self.make_parent()
            mode = self.mode
            if isinstance(mode, PutMode_Overwrite):
                self.rename()
            elif isinstance(mode, PutMode_Create):
                # link() fails atomically when the destination exists.
                try:
                    os.link(self.tmp, self.dest)
                except FileExistsError:
                    raise AdapterError(Error_AlreadyExists("the object already exists"))
                except OSError as e:
                    raise os_error("write", self.path, e)
            elif isinstance(mode, PutMode_Update):
                # The check and the rename under the object's lock: two
                # racing updates of one etag cannot both see it.
                with UpdateLock(os.path.dirname(self.tmp), self.path):
                    try:
                        st = os.stat(self.dest)
                        current = meta_of(self.path, st).etag if stat_mod.S_ISREG(st.st_mode) else None
                    except (FileNotFoundError, NotADirectoryError):
                        current = None
                    except OSError as e:
                        raise os_error("write", self.path, e)
                    if current != mode.value:
                        raise AdapterError(
                            Error_PreconditionFailed(
                                f"etag is {current or 'absent (no object)'}, expected {mode.value}"
                            )
                        )
                    self.rename()
            else:
                raise AdapterError(Error_Invalid(f"unknown put mode {mode!r}"))
            try:
                return meta_of(self.path, os.stat(self.dest))
            except OSError as e:
                raise os_error("write", self.path, e)
        finally:
            # Nothing is left behind: after a rename the temporary is gone,
            # after a link or any failure it is removed here.
            self.discard()

    def make_parent(self) -> None:
        parent = os.path.dirname(self.dest)
        if "/" not in self.path:
            # A top-level object: its folder is the root, which exists.
            # (os.makedirs would look at the root's own parent, which no
            # WASI preopen reaches, and fail with ENOENT.)
            return
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise AdapterError(
                Error_Invalid(
                    "an object is in the way; "
                    "a path cannot be both an object and a folder of others here"
                )
            )
        except OSError as e:
            raise os_error("write", self.path, e)

    def rename(self) -> None:
        try:
            os.rename(self.tmp, self.dest)
        except IsADirectoryError:
            raise AdapterError(
                Error_Invalid("a folder of other objects is in the way")
            )
        except OSError as e:
            raise os_error("write", self.path, e)

    @contract
    def append(self, chunk: bytes) -> None:
        self.write_chunk(chunk)

    @contract
    def finish(self) -> ObjectMeta:
        return self.commit()

    @contract
    def abort(self) -> None:
        self.discard()
