"""``StorageService`` and ``AsyncStorageService``: the platform's
``StorageOperations`` over wharf's host, blocking (with the GIL released)
or as asyncio coroutines (the loop is never blocked: operations run on
wharf's own runtime and wake the loop when they end).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from typing import Any, BinaryIO, Callable, NamedTuple, Union, overload

from . import _native
from .errors import InvalidInput
from .types import ModelStorageInfo, SerializationFormat, VersionInfo

__all__ = [
    "StorageService",
    "AsyncStorageService",
    "Transaction",
    "AsyncTransaction",
    "ObjectInfo",
    "Record",
    "Data",
]

#: What identifies a model or object: a record (ours, a dict, JSON, the
#: platform's own object with the five fields) or a storage path.
Record = Union[ModelStorageInfo, Mapping[str, Any], str, "os.PathLike[str]", Any]
#: What ``save`` takes: bytes, a local file or folder, or a binary file object.
Data = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]

_EXTENSIONS = {
    "pickle": ".pkl",
    "scikit_learn_pickle": ".pkl",
    "joblib": ".joblib",
    "onnx": ".onnx",
    "pytorch_state_dict": ".pt",
    "safetensors": ".safetensors",
    "gguf": ".gguf",
    "jax_params": ".msgpack",
}


class ObjectInfo(NamedTuple):
    """One entry of a listing."""

    path: str
    size: int
    etag: str | None
    modified_ms: int | None


def _sanitize(stem: str) -> str:
    """A model name from a file name, as ``wharf put`` makes one."""
    out = re.sub(r"[^\w.\-]", "_", stem)
    return f"model{out}" if not out or out.startswith(".") else out


def _format_value(format: SerializationFormat | str | None) -> str | None:
    if format is None:
        return None
    try:
        return SerializationFormat(format).value
    except ValueError:
        return str(format)  # refused by the native side, listing the formats


def _target(info: Record) -> dict[str, Any]:
    """The native arguments naming what an operation is about."""
    if isinstance(info, os.PathLike) or (isinstance(info, str) and not info.lstrip().startswith("{")):
        return {"path": os.fspath(info)}
    return {"record": ModelStorageInfo.coerce(info).to_json()}


def _info(text: str) -> ModelStorageInfo:
    return ModelStorageInfo.from_json(text)


def _versions(text: str) -> list[VersionInfo]:
    return [VersionInfo.from_dict(d) for d in json.loads(text)]


def _reference(info: Record) -> str:
    """A reference or storage path from what names a model version."""
    if isinstance(info, os.PathLike) or (isinstance(info, str) and not info.lstrip().startswith("{")):
        return os.fspath(info)
    return ModelStorageInfo.coerce(info).storage_path


def _gc_args(older_than: float | str) -> dict[str, Any]:
    if isinstance(older_than, str):
        return {"older_than_text": older_than}
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
        raise InvalidInput(f"older_than: seconds or a duration such as '24h', not {older_than!r}")
    return {"older_than": float(older_than)}


class _Call(NamedTuple):
    """One native operation: the function, its arguments, and what makes
    the Python value of its result."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    convert: Callable[[Any], Any]


def _identity(v: Any) -> Any:
    return v


class _Service:
    """What the blocking and the asyncio service share: how each operation
    maps to a native call."""

    def __init__(self, config: str | os.PathLike[str] | Mapping[str, Any] | None = None, backend: str | None = None):
        if config is None:
            self._native = _native.Service(None, None, backend)
        elif isinstance(config, Mapping):
            self._native = _native.Service(None, json.dumps(config), backend)
        else:
            self._native = _native.Service(os.fspath(config), None, backend)
        # A URL became a backend of its own name.
        self._backend = self._native.default_backend if backend is not None else None

    @property
    def backend(self) -> str:
        """The backend saves and paths go to."""
        return self._native.default_backend

    @property
    def backends(self) -> list[str]:
        """The configured backends."""
        return self._native.backend_names()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"

    def _save(
        self,
        data: Data,
        path: str | None,
        model: str | None,
        version: str | None,
        format: SerializationFormat | str | None,
        name: str | None,
        tx: Any = None,
    ) -> _Call:
        """The save of ``data``; into the native transaction ``tx`` if given."""
        fmt = _format_value(format)
        opts: dict[str, Any] = {"version": version, "path": path, "format": fmt}
        native: Any = tx
        if tx is None:
            native = self._native
            opts["backend"] = self._backend
        if isinstance(data, (bytes, bytearray, memoryview)):
            stored = name or "model" + _EXTENSIONS.get(fmt or "", "")
            opts["model"] = model if path else (model or _sanitize(stored.rsplit(".", 1)[0]))
            blob = data if isinstance(data, bytes) else bytes(data)
            return _Call(native.save_bytes, (blob, stored), opts, _info)
        if isinstance(data, (str, os.PathLike)):
            source = os.fspath(data)
            stem = os.path.basename(os.path.normpath(source))
            if not os.path.isdir(source):
                stem = os.path.splitext(stem)[0]
            opts["model"] = model if path else (model or _sanitize(stem))
            return _Call(native.save_path, (source,), opts, _info)
        if isinstance(data, io.TextIOBase):
            raise InvalidInput("save() takes a binary file object; this one is opened in text mode")
        if hasattr(data, "read"):
            own = getattr(data, "name", None)
            stored = name or (
                os.path.basename(own) if isinstance(own, str) and own else "model" + _EXTENSIONS.get(fmt or "", "")
            )
            opts["model"] = model if path else (model or _sanitize(os.path.splitext(stored)[0]))
            return _Call(native.save_file_object, (data, stored), opts, _info)
        raise InvalidInput(f"save() takes bytes, a path or a binary file object, not {type(data).__name__}")

    def _load(self, info: Record, dest: str | os.PathLike[str] | None, overwrite: bool) -> _Call:
        kw = {**_target(info), "backend": self._backend}
        if dest is None:
            return _Call(self._native.load_bytes, (), kw, _identity)
        return _Call(self._native.load_to, (os.fspath(dest),), {**kw, "overwrite": overwrite}, _info)

    def _simple(self, name: str, info: Record, convert: Callable[[Any], Any] = _identity) -> _Call:
        return _Call(getattr(self._native, name), (), {**_target(info), "backend": self._backend}, convert)

    def _page(self, prefix: str, cursor: str | None, limit: int) -> _Call:
        def convert(v: Any) -> tuple[list[ObjectInfo], str | None]:
            rows, next_cursor = v
            return [ObjectInfo(*r) for r in rows], next_cursor

        kw = {"cursor": cursor, "limit": limit, "backend": self._backend}
        return _Call(self._native.list_page, (prefix,), kw, convert)

    def _health(self, timeout: float) -> _Call:
        return _Call(self._native.health, (), {"timeout": timeout, "backend": self._backend}, json.loads)

    def _call(self, name: str, *args: Any, convert: Callable[[Any], Any] = _identity, **kwargs: Any) -> _Call:
        return _Call(getattr(self._native, name), args, {**kwargs, "backend": self._backend}, convert)

    def _open(self, info: Record, mode: str, buffer_size: int) -> BinaryIO:
        if mode in ("rb", "r"):
            if mode == "r":
                raise InvalidInput("open() reads bytes: use mode 'rb'")
            raw = _ObjectReader(self._native.open_reader(**_target(info), backend=self._backend))
            return io.BufferedReader(raw, buffer_size=buffer_size)  # type: ignore[return-value]
        if mode in ("wb", "xb"):
            path = info if isinstance(info, str) else ModelStorageInfo.coerce(info).storage_path
            writer = self._native.open_writer(path, overwrite=mode == "wb", backend=self._backend)
            return _ObjectWriter(writer, path)  # type: ignore[return-value]
        raise InvalidInput(f"open() mode {mode!r}: use 'rb', 'wb' or 'xb'")


class StorageService(_Service):
    """Saves, loads and lists models on a configured backend; every call
    blocks with the GIL released, so threads run alongside (one service
    may be shared by all of them).

    ``StorageService()`` does what the ``wharf`` command does with no
    config: ``$WHARF_CONFIG``, else an approved ``./wharf.toml``, else the
    built-in ``local_filesystem`` backend storing into ``$WHARF_DATA_DIR``
    or ``./wharf-data``. ``config`` is a wharf.toml path or the same as a
    dict; ``backend`` a configured backend's name (default: the config's
    ``default_backend``).

    >>> svc = StorageService()
    >>> info = svc.save(b"weights", model="demo")
    >>> svc.load(info)
    b'weights'
    """

    def _run(self, call: _Call) -> Any:
        return call.convert(call.fn(*call.args, **call.kwargs))

    def save(
        self,
        data: Data,
        path: str | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        format: SerializationFormat | str | None = None,
        name: str | None = None,
    ) -> ModelStorageInfo:
        """Saves ``data`` (bytes, a local file or folder, or a binary file
        object, which is streamed, never read whole) as a model version,
        sha256-checksummed, and returns its record.

        Stored under ``path`` if given, else ``models/<model>/<version>``
        (model: the file's name; version: a new one). ``format`` is detected
        from content when not given; ``name`` is the stored file's name for
        bytes and streams. Create-only: an existing version raises
        :class:`~wharf.AlreadyExists`.
        """
        return self._run(self._save(data, path, model, version, format, name))

    @overload
    def load(self, info: Record) -> bytes: ...
    @overload
    def load(self, info: Record, dest: str | os.PathLike[str], *, overwrite: bool = False) -> ModelStorageInfo: ...
    def load(
        self, info: Record, dest: str | os.PathLike[str] | None = None, *, overwrite: bool = False
    ) -> bytes | ModelStorageInfo:
        """The model's bytes, verified against the record's size and
        sha256; with ``dest``, streamed into that file (or a new folder)
        instead, which appears only once verified (``overwrite`` to replace
        a file), and the record is returned.

        ``info`` is a record (this type, a dict, the platform's own object,
        a five-field record naming one object) or a storage path.
        """
        return self._run(self._load(info, dest, overwrite))

    def open(self, info: Record, mode: str = "rb", *, buffer_size: int = 1 << 20) -> BinaryIO:
        """A file object: ``"rb"`` a seekable reader of the model's file (or
        the object) that reads ranges on demand and, read through in order,
        checks the sha256 at the end; ``"wb"`` / ``"xb"`` a writer of the
        object ``info`` (a path), visible only once closed (``"xb"``:
        create-only), discarded if the ``with`` block raises."""
        return self._open(info, mode, buffer_size)

    def delete(self, info: Record) -> bool:
        """Deletes the model (or object); whether it existed."""
        return self._run(self._simple("delete", info))

    def exists(self, info: Record) -> bool:
        """Whether the model (or object) exists."""
        return self._run(self._simple("exists", info))

    def get_metadata(self, info: Record) -> dict[str, Any]:
        """A model's stored record as a dict, else the object's ``path``,
        ``size``, ``etag`` and ``modified_ms`` (what ``wharf stat`` shows)."""
        return self._run(self._simple("metadata", info, json.loads))

    def list_objects(self, prefix: str = "") -> list[str]:
        """Every object path under ``prefix`` (a prefix of paths, not a
        folder), in ascending order. See :meth:`iter_objects` for large
        listings."""
        return list(self.iter_objects(prefix))

    def iter_objects(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[str]:
        """The object paths under ``prefix``, fetched a page at a time."""
        for entry in self.iter_object_info(prefix, page_size=page_size):
            yield entry.path

    def iter_object_info(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Like :meth:`iter_objects`, with each object's size, etag and time."""
        cursor: str | None = None
        while True:
            entries, cursor = self._run(self._page(prefix, cursor, page_size))
            yield from entries
            if cursor is None:
                return

    def health(self, timeout: float = 10.0) -> dict[str, Any]:
        """The backend's check: ``backend``, ``ok``, ``latency_ms``,
        ``detail`` and ``capabilities``, as ``wharf health --json``."""
        return self._run(self._health(timeout))

    def models(self, prefix: str = "") -> list[str]:
        """The registry's models (those with a version) whose names start
        with ``prefix``, sorted."""
        return self._run(self._call("models", prefix, convert=json.loads))

    def versions(self, model: str) -> list[VersionInfo]:
        """A model's versions, oldest number first, each with the aliases
        naming it."""
        return self._run(self._call("versions", model, convert=_versions))

    def resolve(self, ref: str) -> str:
        """The storage path a reference names: ``MODEL@N``,
        ``MODEL@latest``, ``MODEL@ALIAS``, or a storage path as it is.
        ``load``, ``exists``, ``delete`` and ``get_metadata`` take
        references too."""
        return self._run(self._call("resolve", ref))

    def aliases(self, model: str) -> dict[str, str]:
        """A model's aliases: alias to version."""
        return self._run(self._call("aliases", model, convert=json.loads))

    def set_alias(self, model: str, alias: str, version: str | int) -> None:
        """Points ``MODEL@ALIAS`` at ``version`` (compare-and-swap: of two
        concurrent moves one fails with :class:`~wharf.PreconditionFailed`);
        :class:`~wharf.NotFound` if the version does not exist."""
        self._run(self._call("set_alias", model, alias, str(version)))

    def remove_alias(self, model: str, alias: str) -> bool:
        """Removes ``MODEL@ALIAS``; whether it existed."""
        return self._run(self._call("remove_alias", model, alias))

    def gc(self, older_than: float | str = "24h", dry_run: bool = False) -> dict[str, Any]:
        """Removes what crashed saves and abandoned transactions left,
        older than ``older_than`` (seconds, or a duration such as
        ``"24h"``, ``"90m"``), as ``wharf gc`` does; ``dry_run`` only
        reports. The report: ``dry_run``, ``items`` (``path``, ``bytes``,
        ``why``), ``objects``, ``bytes``, ``scanned``."""
        return self._run(self._call("gc", **_gc_args(older_than), dry_run=dry_run, convert=json.loads))

    def transaction(self) -> "Transaction":
        """Starts a :class:`Transaction`: saves, deletes and alias moves
        that become visible together, or not at all. As a context manager
        it commits when the block ends and rolls back if it raises.
        :class:`~wharf.Unsupported` on a backend where a commit cannot be
        atomic."""
        return Transaction(self, self._native.transaction(backend=self._backend))


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class AsyncStorageService(_Service):
    """:class:`StorageService` for asyncio: the same methods as coroutines.
    Operations run on wharf's runtime (not in the loop's thread pool), so
    thousands may be in flight; cancelling the awaiting task stops the
    operation (an unfinished save leaves nothing)."""

    async def _run(self, call: _Call) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(value: Any, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, fut, value, error)

        pending = call.fn(*call.args, **call.kwargs, done=done)
        try:
            return call.convert(await fut)
        except asyncio.CancelledError:
            pending.cancel()
            raise

    async def save(
        self,
        data: Data,
        path: str | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        format: SerializationFormat | str | None = None,
        name: str | None = None,
    ) -> ModelStorageInfo:
        """See :meth:`StorageService.save`."""
        return await self._run(self._save(data, path, model, version, format, name))

    @overload
    async def load(self, info: Record) -> bytes: ...
    @overload
    async def load(
        self, info: Record, dest: str | os.PathLike[str], *, overwrite: bool = False
    ) -> ModelStorageInfo: ...
    async def load(
        self, info: Record, dest: str | os.PathLike[str] | None = None, *, overwrite: bool = False
    ) -> bytes | ModelStorageInfo:
        """See :meth:`StorageService.load`."""
        return await self._run(self._load(info, dest, overwrite))

    async def open(self, info: Record, mode: str = "rb", *, buffer_size: int = 1 << 20) -> BinaryIO:
        """See :meth:`StorageService.open`; opened without blocking the
        loop. The file object itself is a blocking one."""
        return await asyncio.to_thread(self._open, info, mode, buffer_size)

    async def delete(self, info: Record) -> bool:
        """See :meth:`StorageService.delete`."""
        return await self._run(self._simple("delete", info))

    async def exists(self, info: Record) -> bool:
        """See :meth:`StorageService.exists`."""
        return await self._run(self._simple("exists", info))

    async def get_metadata(self, info: Record) -> dict[str, Any]:
        """See :meth:`StorageService.get_metadata`."""
        return await self._run(self._simple("metadata", info, json.loads))

    async def list_objects(self, prefix: str = "") -> list[str]:
        """See :meth:`StorageService.list_objects`."""
        return [p async for p in self.iter_objects(prefix)]

    async def iter_objects(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[str]:
        """See :meth:`StorageService.iter_objects`."""
        async for entry in self.iter_object_info(prefix, page_size=page_size):
            yield entry.path

    async def iter_object_info(self, prefix: str = "", *, page_size: int = 1000) -> AsyncIterator[ObjectInfo]:
        """See :meth:`StorageService.iter_object_info`."""
        cursor: str | None = None
        while True:
            entries, cursor = await self._run(self._page(prefix, cursor, page_size))
            for e in entries:
                yield e
            if cursor is None:
                return

    async def health(self, timeout: float = 10.0) -> dict[str, Any]:
        """See :meth:`StorageService.health`."""
        return await self._run(self._health(timeout))

    async def models(self, prefix: str = "") -> list[str]:
        """See :meth:`StorageService.models`."""
        return await self._run(self._call("models", prefix, convert=json.loads))

    async def versions(self, model: str) -> list[VersionInfo]:
        """See :meth:`StorageService.versions`."""
        return await self._run(self._call("versions", model, convert=_versions))

    async def resolve(self, ref: str) -> str:
        """See :meth:`StorageService.resolve`."""
        return await self._run(self._call("resolve", ref))

    async def aliases(self, model: str) -> dict[str, str]:
        """See :meth:`StorageService.aliases`."""
        return await self._run(self._call("aliases", model, convert=json.loads))

    async def set_alias(self, model: str, alias: str, version: str | int) -> None:
        """See :meth:`StorageService.set_alias`."""
        await self._run(self._call("set_alias", model, alias, str(version)))

    async def remove_alias(self, model: str, alias: str) -> bool:
        """See :meth:`StorageService.remove_alias`."""
        return await self._run(self._call("remove_alias", model, alias))

    async def gc(self, older_than: float | str = "24h", dry_run: bool = False) -> dict[str, Any]:
        """See :meth:`StorageService.gc`."""
        return await self._run(self._call("gc", **_gc_args(older_than), dry_run=dry_run, convert=json.loads))

    def transaction(self) -> "AsyncTransaction":
        """An :class:`AsyncTransaction`, started by ``async with`` (or by
        awaiting it, or by its first operation); see
        :meth:`StorageService.transaction`."""
        return AsyncTransaction(self)


class Transaction:
    """Saves, deletes and alias moves on one backend that become visible
    together at :meth:`commit`, or never (:meth:`rollback`). Made by
    :meth:`StorageService.transaction`::

        with svc.transaction() as tx:
            info = tx.save("detector.onnx", model="detector")
            tx.set_alias("detector", "production", info.version)
        # committed here; had the block raised, rolled back (and re-raised)

    Until the commit nothing of it is visible to readers; a conflict with
    another transaction or writer raises :class:`~wharf.PreconditionFailed`
    (at the operation, or at the commit, which then makes none of it
    visible). Once committed or rolled back it cannot be used again
    (:class:`~wharf.InvalidInput`). One forgotten without either is rolled
    back in the background (and ``gc`` cleans up after a crash)."""

    def __init__(self, service: StorageService, native: Any):
        self._svc = service
        self._native = native

    @property
    def id(self) -> str:
        """The transaction's id (errors and ``gc`` reports name it)."""
        return self._native.id

    @property
    def open(self) -> bool:
        """Whether it is neither committed nor rolled back yet."""
        return self._native.open

    def __repr__(self) -> str:
        return f"Transaction(id={self.id!r}, open={self.open})"

    def save(
        self,
        data: Data,
        path: str | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        format: SerializationFormat | str | None = None,
        name: str | None = None,
    ) -> ModelStorageInfo:
        """See :meth:`StorageService.save`; visible once committed. A
        numbered version (``model`` without ``version``) gets its number
        now."""
        return self._svc._run(self._svc._save(data, path, model, version, format, name, tx=self._native))

    def delete(self, info: Record) -> bool:
        """Deletes a version (a record, storage path or reference) when the
        transaction commits; whether it exists."""
        return self._native.delete(_reference(info))

    def set_alias(self, model: str, alias: str, version: str | int) -> None:
        """Points ``MODEL@ALIAS`` at ``version`` when the transaction
        commits (a version saved in it too)."""
        self._native.set_alias(model, alias, str(version))

    def commit(self) -> None:
        """Makes all of it visible at once; on a conflict none of it
        (:class:`~wharf.PreconditionFailed`)."""
        self._native.commit()

    def rollback(self) -> None:
        """Drops all of it: none of it ever becomes visible."""
        self._native.rollback()

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.open:
            return  # committed or rolled back inside the block
        if exc_type is None:
            self.commit()
            return
        try:
            self.rollback()
        except Exception:
            # The block's exception is the one to see; what failed to roll
            # back stays invisible, and ``gc`` removes it.
            pass


class AsyncTransaction:
    """:class:`Transaction` for asyncio, made by
    :meth:`AsyncStorageService.transaction`::

        async with svc.transaction() as tx:
            info = await tx.save(data, model="detector")
            await tx.set_alias("detector", "production", info.version)
    """

    def __init__(self, service: AsyncStorageService):
        self._svc = service
        self._native: Any = None
        self._starting: asyncio.Lock | None = None

    async def _tx(self) -> Any:
        if self._native is None:
            if self._starting is None:
                self._starting = asyncio.Lock()
            async with self._starting:
                if self._native is None:
                    call = self._svc._call("transaction")
                    self._native = await self._svc._run(call)
        return self._native

    def __await__(self) -> Generator[Any, None, "AsyncTransaction"]:
        async def started() -> "AsyncTransaction":
            await self._tx()
            return self

        return started().__await__()

    @property
    def id(self) -> str | None:
        """The transaction's id; ``None`` until started."""
        return None if self._native is None else self._native.id

    @property
    def open(self) -> bool:
        """Whether it is neither committed nor rolled back yet."""
        return self._native is None or self._native.open

    def __repr__(self) -> str:
        return f"AsyncTransaction(id={self.id!r}, open={self.open})"

    async def _call(self, method: str, *args: Any, convert: Callable[[Any], Any] = _identity) -> Any:
        native = await self._tx()
        return await self._svc._run(_Call(getattr(native, method), args, {}, convert))

    async def save(
        self,
        data: Data,
        path: str | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        format: SerializationFormat | str | None = None,
        name: str | None = None,
    ) -> ModelStorageInfo:
        """See :meth:`Transaction.save`."""
        native = await self._tx()
        return await self._svc._run(self._svc._save(data, path, model, version, format, name, tx=native))

    async def delete(self, info: Record) -> bool:
        """See :meth:`Transaction.delete`."""
        return await self._call("delete", _reference(info))

    async def set_alias(self, model: str, alias: str, version: str | int) -> None:
        """See :meth:`Transaction.set_alias`."""
        await self._call("set_alias", model, alias, str(version))

    async def commit(self) -> None:
        """See :meth:`Transaction.commit`."""
        await self._call("commit")

    async def rollback(self) -> None:
        """See :meth:`Transaction.rollback`."""
        await self._call("rollback")

    async def __aenter__(self) -> "AsyncTransaction":
        await self._tx()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.open:
            return
        if exc_type is None:
            await self.commit()
            return
        try:
            await self.rollback()
        except Exception:
            pass  # as in Transaction.__exit__: the block's exception propagates


class _ObjectReader(io.RawIOBase):
    """The raw side of ``open(..., "rb")``: reads at the current offset
    through the native reader (one stream while reads are in order)."""

    def __init__(self, native: Any):
        super().__init__()
        self._r = native
        self._pos = 0
        self.name = native.path

    @property
    def size(self) -> int:
        return self._r.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._r.size + offset
        else:
            raise InvalidInput(f"whence {whence}")
        if pos < 0:
            raise InvalidInput(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self._r.read_at(self._pos, len(view))
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        chunks = []
        while True:
            data = self._r.read_at(self._pos, 8 << 20)
            if not data:
                return b"".join(chunks)
            self._pos += len(data)
            chunks.append(data)

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


class _ObjectWriter(io.RawIOBase):
    """``open(path, "wb")``: visible once closed; a ``with`` block that
    raises discards it."""

    def __init__(self, native: Any, path: str):
        super().__init__()
        self._w = native
        self.name = path
        self.result: dict[str, Any] | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed file")
        data = b if isinstance(b, bytes) else bytes(b)
        return self._w.write(data)

    def close(self) -> None:
        if not self.closed:
            try:
                if not self._w.closed:
                    self.result = json.loads(self._w.finish())
            finally:
                super().close()

    def abort(self) -> None:
        """Discards what was written."""
        if not self.closed:
            try:
                self._w.abort()
            finally:
                super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
