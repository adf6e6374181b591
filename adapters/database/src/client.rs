//! The backend: connections, the schema, error mapping and the operations
//! that are one statement or one short transaction (`list.rs` lists).

use crate::config::Config;
use crate::wire::{Conn, DbError, Login, Param};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use wharf_guest::{Error, ObjectMeta, PutMode};

/// The server's clock in milliseconds since the Unix epoch, at the moment
/// the statement runs (not the transaction start: a write can take minutes).
pub const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// What the backend, its readers and its writers share.
pub struct Shared {
    pub cfg: Config,
    /// `<prefix>objects`: one row per visible object.
    pub objects: String,
    /// `<prefix>chunks`: the content, `chunk_size` bytes per row.
    pub chunks: String,
}

/// The `backend` resource: a configuration and, once used, a connection.
pub struct Db {
    pub shared: Rc<Shared>,
    pub(crate) conn: ConnSlot,
}

/// The backend's idle connection, shared with its readers and writers,
/// which put theirs back when they end cleanly.
pub type ConnSlot = Rc<RefCell<Option<Conn>>>;

/// Makes `conn` the backend's idle connection (unless one is there
/// already) if it still works, after rolling back the transaction it is in
/// when `in_transaction`.
pub fn give_back(mut conn: Conn, home: &ConnSlot, in_transaction: bool) {
    if in_transaction {
        Shared::rollback(&mut conn);
    }
    if conn.is_usable() {
        home.borrow_mut().get_or_insert(conn);
    }
}

/// The schema, created on first use when missing. `prefix` is validated
/// by [`Config`] (a plain identifier), so it needs no quoting.
pub fn schema_ddl(prefix: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {prefix}objects (
    path        text COLLATE \"C\" PRIMARY KEY,
    size        bigint  NOT NULL,
    etag        text    NOT NULL,
    modified_ms bigint  NOT NULL,
    upload_id   bigint  NOT NULL,
    chunk_size  integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {prefix}chunks (
    upload_id   bigint  NOT NULL,
    seq         integer NOT NULL,
    data        bytea   NOT NULL,
    PRIMARY KEY (upload_id, seq)
);
ALTER TABLE {prefix}chunks ALTER COLUMN data SET STORAGE EXTERNAL;"
    )
}

impl Shared {
    fn login(&self) -> Login<'_> {
        Login {
            addr: &self.cfg.address,
            user: &self.cfg.user,
            password: self.cfg.password.as_deref(),
            dbname: &self.cfg.dbname,
        }
    }

    /// A new connection, with the schema in place.
    pub fn connect(&self) -> Result<Conn, Error> {
        let mut conn = Conn::connect(&self.login()).map_err(|e| self.error(e))?;
        self.ensure_schema(&mut conn)?;
        Ok(conn)
    }

    /// Creates the tables if either is missing. The check is a lock-free
    /// catalog lookup; the DDL runs only the first time, under an advisory
    /// lock so that concurrent first writers do not race on the catalog.
    fn ensure_schema(&self, conn: &mut Conn) -> Result<(), Error> {
        let check = conn
            .query(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                &[Param::Text(&self.objects), Param::Text(&self.chunks)],
            )
            .map_err(|e| self.error(e))?;
        let present = match check.rows.first() {
            Some(r) => r.bool(0).map_err(|e| self.error(e))?,
            None => false,
        };
        if present {
            return Ok(());
        }
        let prefix = &self.cfg.table_prefix;
        // One simple-query string runs as one implicit transaction.
        let sql = format!(
            "SELECT pg_advisory_xact_lock(hashtext('wharf schema {prefix}'));\n{}",
            schema_ddl(prefix)
        );
        conn.simple(&sql).map_err(|e| {
            let e = self.error(e);
            match e {
                Error::Backend(m) => Error::Backend(format!(
                    "creating the tables `{prefix}objects` and `{prefix}chunks`: {m}"
                )),
                other => other,
            }
        })
    }

    /// Turns a client error into the contract's error. Never includes the
    /// password: no message below is built from it.
    pub fn error(&self, e: DbError) -> Error {
        let addr = &self.cfg.address;
        match e {
            DbError::Io { doing, addr, err } => match err.kind() {
                io::ErrorKind::PermissionDenied if doing == "connecting" => Error::Denied(format!(
                    "the host refused a TCP connection to {addr}: add \"{addr}\" to the backend's grants.tcp"
                )),
                io::ErrorKind::ConnectionRefused => Error::Unreachable(format!(
                    "PostgreSQL at {addr} refused the connection ({err}); is the server running?"
                )),
                _ => Error::Transient(format!("{doing} PostgreSQL at {addr} failed: {err}")),
            },
            DbError::NoPassword => Error::Denied(format!(
                "PostgreSQL at {addr} asks user `{}` for a password and config key `password` is not set",
                self.cfg.user
            )),
            DbError::Protocol(m) => Error::Backend(format!("PostgreSQL at {addr}: {m}")),
            DbError::Server { code, message, detail } => {
                let text = match detail {
                    Some(d) => format!("{message} ({d}; SQLSTATE {code})"),
                    None => format!("{message} (SQLSTATE {code})"),
                };
                match code.as_str() {
                    "28P01" | "28000" => Error::Denied(format!(
                        "PostgreSQL at {addr} refused user `{}`: {text}; check `user` and `password`",
                        self.cfg.user
                    )),
                    "42501" => Error::Denied(format!(
                        "PostgreSQL at {addr}: user `{}` lacks a privilege: {text}",
                        self.cfg.user
                    )),
                    "3D000" => Error::Invalid(format!(
                        "`dbname`: PostgreSQL at {addr} has no database `{}`: {text}",
                        self.cfg.dbname
                    )),
                    // Serialization failure, deadlock, lock timeout, cancel,
                    // shutdown, too many connections, connection exceptions.
                    c if matches!(c, "40001" | "40P01" | "55P03" | "57014" | "53300")
                        || c.starts_with("08")
                        || c.starts_with("57P") =>
                    {
                        Error::Transient(format!("PostgreSQL at {addr}: {text}"))
                    }
                    _ => Error::Backend(format!("PostgreSQL at {addr}: {text}")),
                }
            }
        }
    }

    /// Starts a transaction.
    pub fn begin(&self, conn: &mut Conn, sql: &str) -> Result<(), Error> {
        conn.simple(sql).map_err(|e| self.error(e))
    }

    /// Commits; a failure (e.g. a serialization failure) leaves nothing.
    pub fn commit(&self, conn: &mut Conn) -> Result<(), Error> {
        conn.simple("COMMIT").map_err(|e| self.error(e))
    }

    /// Rolls back if the connection still works (after reading answers
    /// still in flight); a dead connection has already rolled back on the
    /// server.
    pub fn rollback(conn: &mut Conn) {
        conn.drain();
        if conn.is_usable() {
            let _ = conn.simple("ROLLBACK");
        }
    }

    /// Makes upload `id` the content of `path`, honouring `mode`, inside
    /// the caller's transaction. The old row is locked (`FOR UPDATE`), so
    /// concurrent writers of one path commit one after the other and
    /// `update(etag)` compares against the committed etag; `create` relies on
    /// `INSERT … ON CONFLICT DO NOTHING`, which waits for a concurrent insert
    /// of the same path. The old object's chunks go in the same transaction.
    pub fn commit_object(
        &self,
        conn: &mut Conn,
        path: &str,
        mode: &PutMode,
        id: i64,
        size: u64,
        chunk_size: u64,
    ) -> Result<ObjectMeta, Error> {
        let (o, c) = (&self.objects, &self.chunks);
        let etag = etag(id);
        let size_i = size as i64;
        let chunk_i = chunk_size as i32;
        // An insert that loses a race with an overwrite of a new path sees
        // the winner's row on the next round.
        for _ in 0..5 {
            let old = conn
                .query(
                    &format!("SELECT upload_id, etag FROM {o} WHERE path = $1 FOR UPDATE"),
                    &[Param::Text(path)],
                )
                .map_err(|e| self.error(e))?;
            let old = match old.rows.first() {
                Some(r) => Some((
                    r.i64(0).map_err(|e| self.error(e))?,
                    r.text(1).map_err(|e| self.error(e))?,
                )),
                None => None,
            };
            match (mode, &old) {
                (PutMode::Create, Some(_)) => return Err(already_exists(path)),
                (PutMode::Update(want), None) => {
                    return Err(Error::PreconditionFailed(format!(
                        "no object at `{path}` to update (expected etag {want})"
                    )));
                }
                (PutMode::Update(want), Some((_, have))) if want != have => {
                    return Err(Error::PreconditionFailed(format!(
                        "`{path}` has etag {have}, not {want}"
                    )));
                }
                _ => {}
            }
            let meta = |modified: i64| ObjectMeta {
                path: path.to_string(),
                size,
                etag: Some(etag.clone()),
                modified_ms: Some(modified.max(0) as u64),
            };
            if let Some((old_id, _)) = old {
                let r = conn
                    .query(
                        &format!(
                            "UPDATE {o} SET size = $2, etag = $3, modified_ms = {NOW_MS}, upload_id = $4, \
                             chunk_size = $5 WHERE path = $1 RETURNING modified_ms"
                        ),
                        &[
                            Param::Text(path),
                            Param::I64(size_i),
                            Param::Text(&etag),
                            Param::I64(id),
                            Param::I32(chunk_i),
                        ],
                    )
                    .map_err(|e| self.error(e))?;
                let modified = modified_of(self, &r.rows)?;
                if old_id != id {
                    conn.query(&format!("DELETE FROM {c} WHERE upload_id = $1"), &[Param::I64(old_id)])
                        .map_err(|e| self.error(e))?;
                }
                return Ok(meta(modified));
            }
            let r = conn
                .query(
                    &format!(
                        "INSERT INTO {o} (path, size, etag, modified_ms, upload_id, chunk_size) \
                         VALUES ($1, $2, $3, {NOW_MS}, $4, $5) ON CONFLICT (path) DO NOTHING RETURNING modified_ms"
                    ),
                    &[
                        Param::Text(path),
                        Param::I64(size_i),
                        Param::Text(&etag),
                        Param::I64(id),
                        Param::I32(chunk_i),
                    ],
                )
                .map_err(|e| self.error(e))?;
            if !r.rows.is_empty() {
                return Ok(meta(modified_of(self, &r.rows)?));
            }
            if matches!(mode, PutMode::Create) {
                return Err(already_exists(path));
            }
        }
        Err(Error::Transient(format!(
            "`{path}` kept changing under concurrent writers; try again"
        )))
    }

    /// Fails early, before any data is sent, when `mode` cannot succeed
    /// now. The binding check is the one in [`Shared::commit_object`].
    pub fn precheck(&self, conn: &mut Conn, path: &str, mode: &PutMode) -> Result<(), Error> {
        if matches!(mode, PutMode::Overwrite) {
            return Ok(());
        }
        let r = conn
            .query(
                &format!("SELECT etag FROM {} WHERE path = $1", self.objects),
                &[Param::Text(path)],
            )
            .map_err(|e| self.error(e))?;
        let have = match r.rows.first() {
            Some(row) => Some(row.text(0).map_err(|e| self.error(e))?),
            None => None,
        };
        match (mode, have) {
            (PutMode::Create, Some(_)) => Err(already_exists(path)),
            (PutMode::Update(want), None) => Err(Error::PreconditionFailed(format!(
                "no object at `{path}` to update (expected etag {want})"
            ))),
            (PutMode::Update(want), Some(have)) if *want != have => Err(Error::PreconditionFailed(format!(
                "`{path}` has etag {have}, not {want}"
            ))),
            _ => Ok(()),
        }
    }
}

fn modified_of(s: &Shared, rows: &[crate::wire::Row]) -> Result<i64, Error> {
    rows.first()
        .ok_or_else(|| Error::Backend("the object row was not returned".into()))?
        .i64(0)
        .map_err(|e| s.error(e))
}

fn already_exists(path: &str) -> Error {
    Error::AlreadyExists(format!("an object exists at `{path}`"))
}

/// The etag of an upload: its id, which is new for every write and copy.
pub fn etag(id: i64) -> String {
    format!("{:016x}", id as u64)
}

/// A fresh upload id from the host's random source: no round trip, and
/// concurrent writers never share one (the chunks' primary key would
/// refuse a collision rather than mix data).
pub fn new_upload_id() -> i64 {
    (wharf_guest_http::random::random_u64() >> 1) as i64
}

impl Db {
    pub fn open(cfg: Config) -> Db {
        let p = cfg.table_prefix.clone();
        Db {
            shared: Rc::new(Shared {
                cfg,
                objects: format!("{p}objects"),
                chunks: format!("{p}chunks"),
            }),
            conn: Rc::new(RefCell::new(None)),
        }
    }

    /// Before the host hands this backend to another operation: a
    /// connection the server closed meanwhile (a restart, an idle timeout)
    /// is dropped, so the operation opens a new one instead of failing.
    pub fn recycle(&self) {
        let mut slot = self.conn.borrow_mut();
        if slot.as_mut().is_some_and(|c| !c.is_alive()) {
            *slot = None;
        }
    }

    /// Runs `f` on this backend's connection, connecting first if needed.
    /// A connection that broke is dropped, so the next call reconnects.
    pub fn with_conn<T>(&self, f: impl FnOnce(&Shared, &mut Conn) -> Result<T, Error>) -> Result<T, Error> {
        let mut slot = self.conn.borrow_mut();
        if !slot.as_ref().is_some_and(Conn::is_usable) {
            *slot = Some(self.shared.connect()?);
        }
        let conn = slot.as_mut().expect("connected above");
        let r = f(&self.shared, conn);
        if !conn.is_usable() {
            *slot = None;
        }
        r
    }

    /// A connection of its own, for a reader or a writer.
    pub fn take_conn(&self) -> Result<Conn, Error> {
        match self.conn.borrow_mut().take() {
            Some(c) if c.is_usable() => Ok(c),
            _ => self.shared.connect(),
        }
    }

    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        self.with_conn(|s, conn| {
            let r = conn
                .query(
                    &format!("SELECT size, etag, modified_ms FROM {} WHERE path = $1", s.objects),
                    &[Param::Text(path)],
                )
                .map_err(|e| s.error(e))?;
            let row = r
                .rows
                .first()
                .ok_or_else(|| Error::NotFound(format!("no object at `{path}`")))?;
            meta_of(s, path.to_string(), row, 0)
        })
    }

    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        self.with_conn(|s, conn| {
            let r = conn
                .query(
                    &format!("SELECT 1 FROM {} WHERE path = $1", s.objects),
                    &[Param::Text(path)],
                )
                .map_err(|e| s.error(e))?;
            Ok(!r.rows.is_empty())
        })
    }

    /// One statement, so one implicit transaction: the row and its chunks
    /// go together.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.with_conn(|s, conn| {
            conn.query(
                &format!(
                    "WITH gone AS (DELETE FROM {} WHERE path = $1 RETURNING upload_id) \
                     DELETE FROM {} WHERE upload_id IN (SELECT upload_id FROM gone)",
                    s.objects, s.chunks
                ),
                &[Param::Text(path)],
            )
            .map(|_| ())
            .map_err(|e| s.error(e))
        })
    }

    /// One transaction: the source row is locked against a concurrent
    /// overwrite (`FOR SHARE`), its chunks are copied server-side under a
    /// new upload id, and the destination row is written as a write would.
    pub fn copy(&self, src: &str, dst: &str, mode: &PutMode) -> Result<ObjectMeta, Error> {
        self.with_conn(|s, conn| {
            s.begin(conn, "BEGIN")?;
            let r = copy_in_tx(s, conn, src, dst, mode).and_then(|meta| s.commit(conn).map(|_| meta));
            if r.is_err() {
                Shared::rollback(conn);
            }
            r
        })
    }

    pub fn health(&self) -> Result<String, Error> {
        self.with_conn(|s, conn| {
            let r = conn.query("SELECT version()", &[]).map_err(|e| s.error(e))?;
            let version = match r.rows.first() {
                Some(row) => row.text(0).map_err(|e| s.error(e))?,
                None => "unknown version".into(),
            };
            Ok(format!(
                "{version} at {}, database `{}`, tables {} and {}",
                s.cfg.address, s.cfg.dbname, s.objects, s.chunks
            ))
        })
    }
}

fn copy_in_tx(s: &Shared, conn: &mut Conn, src: &str, dst: &str, mode: &PutMode) -> Result<ObjectMeta, Error> {
    let r = conn
        .query(
            &format!(
                "SELECT upload_id, size, chunk_size FROM {} WHERE path = $1 FOR SHARE",
                s.objects
            ),
            &[Param::Text(src)],
        )
        .map_err(|e| s.error(e))?;
    let row = r
        .rows
        .first()
        .ok_or_else(|| Error::NotFound(format!("no object at `{src}` to copy")))?;
    let (old, size, chunk) = (
        row.i64(0).map_err(|e| s.error(e))?,
        row.i64(1).map_err(|e| s.error(e))?,
        row.i32(2).map_err(|e| s.error(e))?,
    );
    s.precheck(conn, dst, mode)?;
    let id = new_upload_id();
    conn.query(
        &format!(
            "INSERT INTO {c} (upload_id, seq, data) SELECT $1, seq, data FROM {c} WHERE upload_id = $2",
            c = s.chunks
        ),
        &[Param::I64(id), Param::I64(old)],
    )
    .map_err(|e| s.error(e))?;
    s.commit_object(conn, dst, mode, id, size.max(0) as u64, chunk.max(1) as u64)
}

/// `size, etag, modified_ms` from columns `first..first + 3`.
pub fn meta_of(s: &Shared, path: String, row: &crate::wire::Row, first: usize) -> Result<ObjectMeta, Error> {
    Ok(ObjectMeta {
        path,
        size: row.i64(first).map_err(|e| s.error(e))?.max(0) as u64,
        etag: Some(row.text(first + 1).map_err(|e| s.error(e))?),
        modified_ms: Some(row.i64(first + 2).map_err(|e| s.error(e))?.max(0) as u64),
    })
}
