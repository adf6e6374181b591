//! The backend: one lazily opened connection kept for the instance's life
//! (the host reuses instances: see `recycle`), manifests, and
//! the operations that are one or two commands (stat, delete, copy,
//! health); `list.rs` lists, `reader.rs` and `writer.rs` start reads and
//! writes.

use crate::config::Config;
use crate::resp::{Conn, Reply};
use crate::scripts;
use crate::writer::{self};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use wharf_guest::{Error, ObjectMeta, PutMode};

/// Chunks copied per pipelined batch (each batch holds no data in the
/// adapter: `COPY` runs inside Redis).
const COPY_BATCH: u64 = 32;

/// The backend's idle connection, shared with its readers and writers,
/// which put theirs back when they end cleanly.
pub type ConnSlot = Rc<RefCell<Option<Conn>>>;

/// A configured Redis location. The connection is opened on first use,
/// not in `open`, and kept while the host reuses the instance.
pub struct Store {
    /// The configuration.
    pub cfg: Rc<Config>,
    pub(crate) conn: ConnSlot,
}

/// What a manifest hash holds.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Object size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_size: u64,
    /// Number of chunk keys.
    pub chunks: u64,
    /// The upload id: the etag, and the middle part of the chunk keys.
    pub etag: String,
    /// When it was committed (the server's clock), ms since the epoch.
    pub modified_ms: Option<u64>,
}

impl Store {
    /// Reads the config; connects nothing yet.
    pub fn open(config: Vec<(String, String)>) -> Result<Store, Error> {
        Ok(Store {
            cfg: Rc::new(Config::parse(config)?),
            conn: Rc::new(RefCell::new(None)),
        })
    }

    /// Runs `f` on the connection, opening it first if needed. A failure
    /// drops the connection: it may be half-way through a reply.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, Error>) -> Result<T, Error> {
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            *slot = Some(Conn::connect(&self.cfg)?);
        }
        let result = f(slot.as_mut().expect("connected above"));
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Before the host hands this backend to another operation: a
    /// connection the server closed meanwhile (a restart, its `timeout`)
    /// is dropped, so the operation opens a new one instead of failing.
    pub fn recycle(&self) {
        let mut slot = self.conn.borrow_mut();
        if slot.as_mut().is_some_and(|c| !c.is_alive()) {
            *slot = None;
        }
    }

    /// The connection, for a reader or writer to own.
    pub fn take_conn(&self) -> Result<Conn, Error> {
        match self.conn.borrow_mut().take() {
            Some(conn) => Ok(conn),
            None => Conn::connect(&self.cfg),
        }
    }

    /// `stat`.
    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        let m = self
            .with_conn(|c| manifest(c, &self.cfg, path))?
            .ok_or_else(|| not_found(path))?;
        Ok(meta(path, &m))
    }

    /// `exists`: the manifest is there.
    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        let key = self.cfg.manifest_key(path);
        let n = self.with_conn(|c| c.call(&[b"EXISTS", key.as_bytes()]))?;
        Ok(n.int() == Some(1))
    }

    /// `delete`: manifest and index entry, then chunks, in one script.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let (manifest, index, chunks) = (
            self.cfg.manifest_key(path),
            self.cfg.index_key(),
            self.cfg.chunk_prefix(),
        );
        self.with_conn(|c| {
            eval(
                c,
                scripts::DELETE,
                &[manifest.as_bytes(), index.as_bytes()],
                &[path.as_bytes(), chunks.as_bytes()],
            )
        })?;
        Ok(())
    }

    /// `copy`: `COPY` of every chunk under a new upload id inside Redis
    /// (GET/SET through the adapter on servers older than 6.2), then the
    /// same commit as a write.
    pub fn copy(&self, source: &str, destination: &str, mode: &PutMode) -> Result<ObjectMeta, Error> {
        let cfg = self.cfg.clone();
        self.with_conn(|c| {
            let src = manifest(c, &cfg, source)?.ok_or_else(|| not_found(source))?;
            writer::check_mode(c, &cfg, destination, mode)?;
            let upload = writer::new_upload_id();
            let copied = copy_chunks(c, &cfg, source, &src, &upload).and_then(|()| {
                writer::commit(
                    c,
                    &cfg,
                    destination,
                    mode,
                    &upload,
                    (src.size, src.chunk_size, src.chunks),
                )
            });
            match copied {
                Ok(meta) => Ok(meta),
                Err(e) => {
                    let meta = |ms: u64| ObjectMeta {
                        path: destination.to_string(),
                        size: src.size,
                        etag: Some(upload.clone()),
                        modified_ms: Some(ms),
                    };
                    match writer::discard_fresh(&cfg, destination, &upload, src.chunks) {
                        // The commit's answer was lost, but it happened.
                        Ok(Some(ms)) => Ok(meta(ms)),
                        Ok(None) => Err(e),
                        Err(cleanup) => {
                            eprintln!(
                                "redis: could not remove the chunks of the failed copy to `{destination}` \
                                 (they expire after `upload_ttl`): {cleanup:?}"
                            );
                            Err(e)
                        }
                    }
                }
            }
        })
    }

    /// `health`: `PING`, the server version, and that scripts run.
    pub fn health(&self) -> Result<String, Error> {
        let cfg = self.cfg.clone();
        self.with_conn(|c| {
            match c.call(&[b"PING"])? {
                Reply::Status(s) if s == "PONG" => {}
                other => {
                    return Err(Error::Backend(format!(
                        "redis at {}: PING answered {other:?}",
                        c.addr()
                    )));
                }
            }
            let info = c.call(&[b"INFO", b"server"])?.text().unwrap_or_default();
            let version = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("(unknown version)")
                .trim()
                .to_string();
            if eval(c, "return 1", &[], &[])?.int() != Some(1) {
                return Err(Error::Backend(format!(
                    "redis at {}: EVAL does not run Lua scripts",
                    c.addr()
                )));
            }
            let copy_note = if version_below(&version, (6, 2)) {
                "; no COPY command (before 6.2): copies pass through the adapter"
            } else {
                ""
            };
            Ok(format!(
                "redis {version} at {} (db {}): PING answered, Lua scripts run{copy_note}; keys under `{}`",
                cfg.address, cfg.db, cfg.prefix
            ))
        })
    }
}

/// Copies the chunks of `src` to upload `upload`, in pipelined batches.
fn copy_chunks(c: &mut Conn, cfg: &Config, source: &str, src: &Manifest, upload: &str) -> Result<(), Error> {
    let ttl = cfg.upload_ttl_ms.to_string();
    let gone = || {
        Error::Transient(format!(
            "`{source}` was overwritten or deleted while being copied; copy it again"
        ))
    };
    let mut native = true;
    let mut i = 0;
    while i < src.chunks {
        // The first chunk alone: it tells whether the server knows COPY.
        let batch = if i == 0 { 1 } else { (src.chunks - i).min(COPY_BATCH) };
        let keys: Vec<(String, String)> = (i..i + batch)
            .map(|n| (cfg.chunk_key(&src.etag, n), cfg.chunk_key(upload, n)))
            .collect();
        if !native {
            for (from, to) in &keys {
                let Reply::Bulk(Some(data)) = c.call(&[b"GET", from.as_bytes()])? else {
                    return Err(gone());
                };
                store_chunk(c, cfg, to, &data)?;
                c.read_ok()?;
            }
            i += batch;
            continue;
        }
        for (from, to) in &keys {
            c.send(&[b"COPY", from.as_bytes(), to.as_bytes()])?;
            if cfg.upload_ttl_ms > 0 {
                c.send(&[b"PEXPIRE", to.as_bytes(), ttl.as_bytes()])?;
            }
        }
        let mut failure = None;
        for _ in &keys {
            match c.read_reply()? {
                Reply::Int(1) => {}
                Reply::Error(e) if i == 0 && e.to_ascii_lowercase().contains("unknown command") => native = false,
                Reply::Error(e) => failure = failure.or(Some(c.server_error(&e))),
                _ => failure = failure.or(Some(gone())),
            }
            if cfg.upload_ttl_ms > 0 {
                c.read_reply()?;
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if native {
            i += batch;
        }
    }
    Ok(())
}

/// Sends one chunk: `PSETEX` (expiring until the commit) or `SET` when
/// `upload_ttl` is 0. The caller reads the `+OK`.
pub fn store_chunk(c: &mut Conn, cfg: &Config, key: &str, data: &[u8]) -> Result<(), Error> {
    if cfg.upload_ttl_ms > 0 {
        let ttl = cfg.upload_ttl_ms.to_string();
        c.send_with_payload(&[b"PSETEX", key.as_bytes(), ttl.as_bytes()], data)
    } else {
        c.send_with_payload(&[b"SET", key.as_bytes()], data)
    }
}

/// Runs a Lua script with `EVAL` (scripts are a few hundred bytes; Redis
/// caches them compiled by their SHA1 either way).
pub fn eval(c: &mut Conn, script: &str, keys: &[&[u8]], args: &[&[u8]]) -> Result<Reply, Error> {
    let numkeys = keys.len().to_string();
    let mut all: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), numkeys.as_bytes()];
    all.extend_from_slice(keys);
    all.extend_from_slice(args);
    c.call(&all)
}

/// The manifest of `path`, `None` if there is no object.
pub fn manifest<S: Read + Write>(c: &mut Conn<S>, cfg: &Config, path: &str) -> Result<Option<Manifest>, Error> {
    let key = cfg.manifest_key(path);
    let reply = c.call(&[
        b"HMGET",
        key.as_bytes(),
        b"size",
        b"chunk_size",
        b"chunks",
        b"etag",
        b"modified_ms",
    ])?;
    let bad = || Error::Backend(format!("redis: the manifest `{key}` is malformed"));
    let fields = reply.into_array().ok_or_else(bad)?;
    let [size, chunk_size, chunks, etag, modified] = fields.as_slice() else {
        return Err(bad());
    };
    let Some(etag) = etag.text() else { return Ok(None) };
    let num = |r: &Reply| r.int().and_then(|n| u64::try_from(n).ok()).ok_or_else(bad);
    let m = Manifest {
        size: num(size)?,
        chunk_size: num(chunk_size)?,
        chunks: num(chunks)?,
        etag,
        modified_ms: modified.int().and_then(|n| u64::try_from(n).ok()),
    };
    if m.chunk_size == 0 || m.size.div_ceil(m.chunk_size) != m.chunks {
        return Err(bad());
    }
    Ok(Some(m))
}

/// What `stat` answers for a manifest.
pub fn meta(path: &str, m: &Manifest) -> ObjectMeta {
    ObjectMeta {
        path: path.to_string(),
        size: m.size,
        etag: Some(m.etag.clone()),
        modified_ms: m.modified_ms,
    }
}

/// The contract's `not-found` for `path`.
pub fn not_found(path: &str) -> Error {
    Error::NotFound(format!("`{path}` does not exist"))
}

/// Whether `version` ("7.0.15") is below `(major, minor)`.
fn version_below(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v < (major, minor)
}
