//! Writes: chunk keys under a fresh upload id, then the commit script that
//! writes the manifest last. Until then nothing is visible, and an aborted,
//! failed or dropped write unlinks its chunks (which also expire by
//! themselves after `upload_ttl`, should even that fail).

use crate::client::{ConnSlot, Store};
use crate::client::{eval, store_chunk};
use crate::config::Config;
use crate::resp::{Conn, Reply};
use crate::scripts;
use std::rc::Rc;
use wharf_guest::{Error, ObjectMeta, PutMode};

/// Chunk writes sent before the adapter waits for the oldest `+OK`: the
/// next chunk travels while Redis stores the previous one.
const MAX_UNACKED: usize = 2;

/// An object being written.
pub struct Upload {
    cfg: Rc<Config>,
    conn: Option<Conn>,
    /// Where the connection goes back after a commit.
    home: Option<ConnSlot>,
    /// Set when a command failed: the connection may be out of step.
    broken: bool,
    path: String,
    mode: PutMode,
    /// The upload id: the chunk keys' middle part and the etag.
    id: String,
    /// Bytes not yet making a whole chunk.
    buf: Vec<u8>,
    /// Chunk writes sent (or started): the chunk keys that may exist.
    sent: u64,
    unacked: usize,
    size: u64,
    /// False once committed or discarded.
    open: bool,
}

impl Upload {
    /// Starts an upload on `conn`; nothing is sent before the first chunk.
    pub fn new(cfg: Rc<Config>, conn: Conn, path: &str, mode: PutMode) -> Upload {
        Upload {
            cfg,
            conn: Some(conn),
            home: None,
            broken: false,
            path: path.to_string(),
            mode,
            id: new_upload_id(),
            buf: Vec::new(),
            sent: 0,
            unacked: 0,
            size: 0,
            open: true,
        }
    }

    fn append_inner(&mut self, data: Vec<u8>) -> Result<(), Error> {
        let cs = self.cfg.chunk_size as usize;
        self.size += data.len() as u64;
        if self.buf.is_empty() && data.len() == cs {
            // The host sends whole chunks: no copy.
            return self.send_chunk(&data);
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            if self.buf.capacity() < cs {
                self.buf.reserve_exact(cs - self.buf.len());
            }
            let take = (cs - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == cs {
                let mut chunk = std::mem::take(&mut self.buf);
                self.send_chunk(&chunk)?;
                chunk.clear();
                self.buf = chunk;
            }
        }
        Ok(())
    }

    fn send_chunk(&mut self, data: &[u8]) -> Result<(), Error> {
        while self.unacked >= MAX_UNACKED {
            self.ack()?;
        }
        let key = self.cfg.chunk_key(&self.id, self.sent);
        self.sent += 1;
        let conn = self.conn.as_mut().ok_or_else(gone)?;
        store_chunk(conn, &self.cfg, &key, data)?;
        self.unacked += 1;
        Ok(())
    }

    /// Reads the oldest chunk write's `+OK`.
    fn ack(&mut self) -> Result<(), Error> {
        let conn = self.conn.as_mut().ok_or_else(gone)?;
        conn.read_ok()?;
        self.unacked -= 1;
        Ok(())
    }

    fn finish_inner(&mut self) -> Result<ObjectMeta, Error> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.send_chunk(&last)?;
        }
        while self.unacked > 0 {
            self.ack()?;
        }
        let conn = self.conn.as_mut().ok_or_else(gone)?;
        let shape = (self.size, self.cfg.chunk_size, self.sent);
        commit(conn, &self.cfg, &self.path, &self.mode, &self.id, shape)
    }

    fn discard_quietly(&mut self) {
        if let Err(e) = self.discard() {
            self.report_cleanup_failure(&e);
        }
    }

    fn report_cleanup_failure(&self, e: &Error) {
        eprintln!(
            "redis: could not remove the {} chunk(s) of the discarded upload of `{}` \
             (they expire after `upload_ttl`): {e:?}",
            self.sent, self.path
        );
    }

    /// Unlinks the chunks (the abort script); `Some(modified_ms)` if the
    /// upload turns out to be committed.
    fn discard(&mut self) -> Result<Option<u64>, Error> {
        if !self.open {
            return Ok(None);
        }
        self.open = false;
        let conn = self.conn.take();
        if self.sent == 0 && !self.broken {
            // Nothing was sent, and no commit was attempted.
            return Ok(None);
        }
        // Wait for chunk writes in flight on the old connection, so none
        // lands after the unlink; a broken connection is replaced.
        let mut conn = match conn {
            Some(mut c) if !self.broken => {
                let drained = (0..self.unacked).all(|_| c.read_reply().is_ok());
                self.unacked = 0;
                if drained { c } else { Conn::connect(&self.cfg)? }
            }
            _ => Conn::connect(&self.cfg)?,
        };
        discard(&mut conn, &self.cfg, &self.path, &self.id, self.sent)
    }
}

impl wharf_guest::Upload for Upload {
    /// Adds bytes; every full chunk is sent. On failure the upload is
    /// discarded.
    fn append(&mut self, data: Vec<u8>) -> Result<(), Error> {
        let result = self.append_inner(data);
        if result.is_err() {
            self.broken = true;
            self.discard_quietly();
        }
        result
    }

    /// Sends the last chunk and commits. On failure nothing is visible and
    /// the chunks are unlinked, unless the commit happened and only its
    /// answer was lost (then this succeeds).
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        match self.finish_inner() {
            Ok(meta) => {
                self.open = false;
                if let (Some(conn), Some(home)) = (self.conn.take(), &self.home) {
                    home.borrow_mut().get_or_insert(conn);
                }
                Ok(meta)
            }
            Err(e) => {
                self.broken = true;
                match self.discard() {
                    Ok(Some(ms)) => Ok(ObjectMeta {
                        path: self.path.clone(),
                        size: self.size,
                        etag: Some(self.id.clone()),
                        modified_ms: Some(ms),
                    }),
                    Ok(None) => Err(e),
                    Err(cleanup) => {
                        self.report_cleanup_failure(&cleanup);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Discards the upload.
    fn abort(mut self) -> Result<(), Error> {
        self.discard().map(|_| ())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.discard_quietly();
    }
}

fn gone() -> Error {
    Error::Invalid("the upload already failed, finished or aborted".into())
}

/// A new upload id: 128 random bits from the host, as hex.
pub fn new_upload_id() -> String {
    use wharf_guest_http::random::random_u64;
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

/// The early, non-atomic check of `mode` (the commit script's check is the
/// atomic one), so a conflicting write fails before sending gigabytes.
pub fn check_mode(c: &mut Conn, cfg: &Config, path: &str, mode: &PutMode) -> Result<(), Error> {
    let key = cfg.manifest_key(path);
    match mode {
        PutMode::Overwrite => Ok(()),
        PutMode::Create => match c.call(&[b"EXISTS", key.as_bytes()])?.int() {
            Some(0) => Ok(()),
            _ => Err(Error::AlreadyExists(format!("`{path}` already exists"))),
        },
        PutMode::Update(want) => match c.call(&[b"HGET", key.as_bytes(), b"etag"])?.text() {
            Some(etag) if etag == *want => Ok(()),
            Some(etag) => Err(Error::PreconditionFailed(format!(
                "`{path}` has etag {etag}, not {want}"
            ))),
            None => Err(Error::PreconditionFailed(format!(
                "`{path}` does not exist (update({want}) needs it)"
            ))),
        },
    }
}

/// Runs the commit script for upload `id` of `(size, chunk_size, chunks)`.
pub fn commit(
    c: &mut Conn,
    cfg: &Config,
    path: &str,
    mode: &PutMode,
    id: &str,
    (size, chunk_size, chunks): (u64, u64, u64),
) -> Result<ObjectMeta, Error> {
    let (mode_name, want) = match mode {
        PutMode::Overwrite => ("overwrite", ""),
        PutMode::Create => ("create", ""),
        PutMode::Update(etag) => ("update", etag.as_str()),
    };
    let (manifest, index, prefix) = (cfg.manifest_key(path), cfg.index_key(), cfg.chunk_prefix());
    let (size_s, cs_s, n_s) = (size.to_string(), chunk_size.to_string(), chunks.to_string());
    let reply = eval(
        c,
        scripts::COMMIT,
        &[manifest.as_bytes(), index.as_bytes()],
        &[
            mode_name.as_bytes(),
            want.as_bytes(),
            id.as_bytes(),
            size_s.as_bytes(),
            cs_s.as_bytes(),
            n_s.as_bytes(),
            prefix.as_bytes(),
            path.as_bytes(),
        ],
    )?;
    let answer: Vec<String> = reply
        .into_array()
        .unwrap_or_default()
        .iter()
        .map(|r| r.text().unwrap_or_default())
        .collect();
    match answer.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ok", ms] => Ok(ObjectMeta {
            path: path.to_string(),
            size,
            etag: Some(id.to_string()),
            modified_ms: ms.parse().ok(),
        }),
        ["exists", etag] => Err(Error::AlreadyExists(format!("`{path}` already exists (etag {etag})"))),
        ["stale", ""] => Err(Error::PreconditionFailed(format!(
            "`{path}` does not exist (update({want}) needs it)"
        ))),
        ["stale", etag] => Err(Error::PreconditionFailed(format!(
            "`{path}` has etag {etag}, not {want}"
        ))),
        ["lost", n] => Err(Error::Backend(format!(
            "chunk {n} of the upload of `{path}` expired before the commit: the write took longer than \
             `upload_ttl` ({} s); raise it",
            cfg.upload_ttl_ms / 1000
        ))),
        other => Err(Error::Backend(format!(
            "redis: unexpected answer of the commit script for `{path}`: {other:?}"
        ))),
    }
}

/// Runs the abort script for upload `id` on `c`.
pub fn discard(c: &mut Conn, cfg: &Config, path: &str, id: &str, chunks: u64) -> Result<Option<u64>, Error> {
    let (manifest, prefix, n) = (cfg.manifest_key(path), cfg.chunk_prefix(), chunks.to_string());
    match eval(
        c,
        scripts::ABORT,
        &[manifest.as_bytes()],
        &[id.as_bytes(), n.as_bytes(), prefix.as_bytes()],
    )? {
        Reply::Bulk(None) => Ok(None),
        committed => Ok(Some(committed.int().and_then(|ms| u64::try_from(ms).ok()).unwrap_or(0))),
    }
}

/// [`discard`] over a new connection (the old one may be broken).
pub fn discard_fresh(cfg: &Config, path: &str, id: &str, chunks: u64) -> Result<Option<u64>, Error> {
    let mut c = Conn::connect(cfg)?;
    discard(&mut c, cfg, path, id, chunks)
}

impl Store {
    /// `write`: fails early if `mode` already fails; the commit checks again.
    pub fn write(&self, path: &str, mode: PutMode) -> Result<Upload, Error> {
        self.with_conn(|c| check_mode(c, &self.cfg, path, &mode))?;
        let mut upload = Upload::new(self.cfg.clone(), self.take_conn()?, path, mode);
        upload.home = Some(self.conn.clone());
        Ok(upload)
    }
}
