"""``wharf://<backend>/<path>``: every configured backend as an fsspec
filesystem, so ``fsspec.open``, pandas and pyarrow read and write through
wharf's sandboxed adapters.

Registered for the protocol ``wharf`` by the package's ``fsspec.specs``
entry point:

>>> import fsspec, pandas as pd
>>> fs = fsspec.filesystem("wharf", config="wharf.toml")
>>> fs.pipe_file("s3/data/x.bin", b"bytes")
>>> pd.read_parquet("wharf://s3/data/frame.parquet", storage_options={"config": "wharf.toml"})

The first path segment is the backend's configured name (as a bucket is
in s3fs); the rest is the object's path in it. Directories are implicit,
as in any object store: a directory exists while an object lies below it
(``mkdir`` does nothing, empty directories are not kept). With no
``config``, the configuration is the ``wharf`` command's (see
``StorageService``).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import _native
from .errors import NotFound, Transient

__all__ = ["WharfFileSystem", "WharfFile"]


class WharfFileSystem(AbstractFileSystem):
    """An fsspec filesystem over wharf's configured backends.

    ``config``: a wharf.toml path or the same as a dict (default: what the
    ``wharf`` command uses).
    """

    protocol = "wharf"
    root_marker = ""
    #: Bytes per ranged read of a file opened for reading, and per write.
    blocksize = 8 << 20

    def __init__(self, config: str | os.PathLike[str] | dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(config=config, **kwargs)
        if config is None:
            self._native = _native.Service(None, None, None)
        elif isinstance(config, dict):
            self._native = _native.Service(None, json.dumps(config), None)
        else:
            self._native = _native.Service(os.fspath(config), None, None)

    # Paths: "<backend>/<key>".

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path)
        if path.startswith("wharf://"):
            path = path[len("wharf://") :]
        return path.strip("/")

    def _split(self, path: str) -> tuple[str, str]:
        path = self._strip_protocol(path)
        backend, _, key = path.partition("/")
        if backend not in self._native.backend_names():
            raise NotFound(
                f"`{backend}` is not a configured backend (configured: {', '.join(self._native.backend_names())}); "
                "wharf paths are <backend>/<path>"
            )
        return backend, key

    # Reading the tree.

    def _entries(self, backend: str, prefix: str) -> list[tuple[str, int, str | None, int | None]]:
        rows: list[tuple[str, int, str | None, int | None]] = []
        cursor = None
        while True:
            page, cursor = self._native.list_page(prefix, cursor, 1000, backend)
            rows.extend(page)
            if cursor is None:
                return rows

    @staticmethod
    def _file(backend: str, path: str, size: int, etag: str | None, modified_ms: int | None) -> dict[str, Any]:
        return {
            "name": f"{backend}/{path}",
            "size": size,
            "type": "file",
            "etag": etag,
            "modified_ms": modified_ms,
        }

    @staticmethod
    def _dir(name: str) -> dict[str, Any]:
        return {"name": name, "size": 0, "type": "directory"}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        if path == "":
            out = [self._dir(b) for b in self._native.backend_names()]
        else:
            backend, key = self._split(path)
            prefix = f"{key}/" if key else ""
            out = []
            dirs: set[str] = set()
            for p, size, etag, modified in self._entries(backend, prefix):
                rest = p[len(prefix) :]
                if "/" in rest:
                    d = rest.split("/", 1)[0]
                    if d not in dirs:
                        dirs.add(d)
                        out.append(self._dir(f"{backend}/{prefix}{d}"))
                else:
                    out.append(self._file(backend, p, size, etag, modified))
            if not out and key:
                info = self.info(path)  # a file lists as itself; else not found
                out = [info]
        return out if detail else [o["name"] for o in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path == "":
            return self._dir("")
        backend, key = self._split(path)
        if not key:
            return self._dir(backend)
        try:
            meta = json.loads(self._native.stat(key, backend))
            return self._file(backend, meta["path"], meta["size"], meta.get("etag"), meta.get("modified_ms"))
        except (NotFound, Transient) as e:
            # s3s-fs answers a HEAD of a "directory" with a 500, not a 404.
            failed: Exception = e
        page, _ = self._native.list_page(key + "/", None, 1, backend)
        if page:
            return self._dir(f"{backend}/{key}")
        if isinstance(failed, Transient):
            # Only a real failure if the listing shows the file itself.
            first, _ = self._native.list_page(key, None, 1, backend)
            if first and first[0][0] == key:
                raise failed
        raise FileNotFoundError(f"wharf://{path}: no such file or directory")

    def modified(self, path: str) -> Any:
        import datetime

        ms = self.info(path).get("modified_ms")
        if ms is None:
            raise NotImplementedError("this backend reports no modification time")
        return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return info.get("etag") or super().ukey(path)

    # Bytes.

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        backend, key = self._split(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(path)["size"]
            start = max(0, size + start) if start is not None and start < 0 else start
            end = max(0, size + end) if end is not None and end < 0 else end
        start = start or 0
        if end is not None and end <= start:
            return b""
        return self._native.read_range(key, start, end, backend)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        backend, key = self._split(path)
        data = value if isinstance(value, bytes) else bytes(value)
        self._native.put_bytes(key, data, mode != "create", backend)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        if os.path.isdir(lpath):
            return  # directories are implicit
        backend, key = self._split(rpath)
        self._native.put_file(os.fspath(lpath), key, mode != "create", backend)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        if outfile is not None or hasattr(lpath, "write"):
            target = outfile if outfile is not None else lpath
            with self.open(rpath, "rb") as f:
                shutil.copyfileobj(f, target, self.blocksize)
            return
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        backend, key = self._split(rpath)
        parent = os.path.dirname(os.fspath(lpath))
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._native.get_file(key, os.fspath(lpath), True, None, backend)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        b1, k1 = self._split(path1)
        b2, k2 = self._split(path2)
        if self.isdir(path1):
            return  # directories are implicit
        if b1 == b2:
            self._native.copy_object(k1, k2, True, b1)
            return
        with self.open(path1, "rb") as src, self.open(path2, "wb") as dst:
            shutil.copyfileobj(src, dst, self.blocksize)

    def rm_file(self, path: str) -> None:
        backend, key = self._split(path)
        if not key:
            return  # a backend itself is not removed
        if not self._native.delete_object(key, backend):
            if self.isdir(path):
                return  # what was below it is being removed too
            raise FileNotFoundError(f"wharf://{self._strip_protocol(path)}: no such file")

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        # Directories are implicit: removing their files removes them, and a
        # directory name removes nothing (it may be gone already).
        paths = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        parents = {q.rsplit("/", i)[0] for q in paths for i in range(1, q.count("/") + 1)}
        for p in paths:
            if p in parents:
                continue  # a directory: it goes with its files
            backend, key = self._split(p)
            if key:
                self._native.delete_object(key, backend)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self._split(path)  # the backend must exist; the rest is implicit

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._split(path)

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> "WharfFile":
        if mode == "xb" and self.exists(path):
            raise FileExistsError(f"wharf://{self._strip_protocol(path)} exists")
        return WharfFile(
            self,
            path,
            mode,
            block_size=block_size or self.blocksize,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )


class WharfFile(AbstractBufferedFile):
    """A file of a :class:`WharfFileSystem`: ranged reads; writes streamed
    in blocks, the object visible only once the file is closed (``xb`` is
    create-only, checked atomically by the backend)."""

    fs: WharfFileSystem

    def _fetch_range(self, start: int, end: int) -> bytes:
        backend, key = self.fs._split(self.path)
        return self.fs._native.read_range(key, start, end, backend)

    def _initiate_upload(self) -> None:
        backend, key = self.fs._split(self.path)
        self._writer = self.fs._native.open_writer(key, self.mode != "xb", backend)

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        if data:
            self._writer.write(data)
        if final and self.autocommit:
            self._writer.finish()
        return True

    def commit(self) -> None:
        self._writer.finish()

    def discard(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None and not writer.closed:
            writer.abort()
