"""The extension module (Rust, PyO3). Use the ``wharf`` package instead:
records cross here as JSON text, paths as ``str``."""

from typing import Any, Callable

__version__: str

Done = Callable[[Any, BaseException | None], None] | None

def formats() -> list[str]: ...
def backends() -> list[str]: ...
def error_classes() -> list[tuple[str, str]]: ...

class Pending:
    def cancel(self) -> None: ...

class Reader:
    @property
    def size(self) -> int: ...
    @property
    def path(self) -> str: ...
    def read_at(self, offset: int, n: int) -> bytes: ...
    def close(self) -> None: ...

class Writer:
    @property
    def closed(self) -> bool: ...
    def write(self, data: bytes) -> int: ...
    def finish(self) -> str: ...
    def abort(self) -> None: ...

class Tx:
    @property
    def id(self) -> str: ...
    @property
    def open(self) -> bool: ...
    def save_bytes(
        self,
        data: bytes,
        name: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def save_path(
        self,
        source: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def save_file_object(
        self,
        file: Any,
        name: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def delete(self, reference: str, done: Done = None) -> Any: ...
    def set_alias(self, model: str, alias: str, version: str, done: Done = None) -> Any: ...
    def commit(self, done: Done = None) -> Any: ...
    def rollback(self, done: Done = None) -> Any: ...

class Service:
    def __init__(
        self, config_path: str | None = None, config_json: str | None = None, backend: str | None = None
    ) -> None: ...
    @property
    def default_backend(self) -> str: ...
    def backend_names(self) -> list[str]: ...
    def backend_kind(self, name: str) -> str | None: ...
    def save_bytes(
        self,
        data: bytes,
        name: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def save_path(
        self,
        source: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def save_file_object(
        self,
        file: Any,
        name: str,
        model: str | None = None,
        version: str | None = None,
        path: str | None = None,
        format: str | None = None,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def load_bytes(
        self, record: str | None = None, path: str | None = None, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def load_to(
        self,
        dest: str,
        record: str | None = None,
        path: str | None = None,
        overwrite: bool = False,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def delete(
        self, record: str | None = None, path: str | None = None, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def exists(
        self, record: str | None = None, path: str | None = None, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def metadata(
        self, record: str | None = None, path: str | None = None, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def list_page(
        self, prefix: str, cursor: str | None = None, limit: int = 1000, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def health(self, timeout: float = 10.0, backend: str | None = None, done: Done = None) -> Any: ...
    def stat(self, path: str, backend: str | None = None) -> str: ...
    def capabilities(self, backend: str | None = None) -> str: ...
    def read_range(
        self, path: str, start: int = 0, end: int | None = None, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def put_bytes(
        self, path: str, data: bytes, overwrite: bool = True, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def put_file(
        self, local: str, path: str, overwrite: bool = True, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def get_file(
        self,
        path: str,
        local: str,
        overwrite: bool = True,
        sha256: str | None = None,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def delete_object(self, path: str, backend: str | None = None, done: Done = None) -> Any: ...
    def copy_object(
        self, src: str, dst: str, overwrite: bool = True, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def open_reader(self, record: str | None = None, path: str | None = None, backend: str | None = None) -> Reader: ...
    def open_writer(self, path: str, overwrite: bool = True, backend: str | None = None) -> Writer: ...
    def models(self, prefix: str = "", backend: str | None = None, done: Done = None) -> Any: ...
    def versions(self, model: str, backend: str | None = None, done: Done = None) -> Any: ...
    def resolve(self, reference: str, backend: str | None = None, done: Done = None) -> Any: ...
    def aliases(self, model: str, backend: str | None = None, done: Done = None) -> Any: ...
    def set_alias(
        self, model: str, alias: str, version: str, backend: str | None = None, done: Done = None
    ) -> Any: ...
    def remove_alias(self, model: str, alias: str, backend: str | None = None, done: Done = None) -> Any: ...
    def gc(
        self,
        older_than: float | None = None,
        older_than_text: str | None = None,
        dry_run: bool = False,
        backend: str | None = None,
        done: Done = None,
    ) -> Any: ...
    def transaction(self, backend: str | None = None, done: Done = None) -> Any: ...
