//! A write: one transaction on a connection of its own, from `BEGIN` at
//! the start, through one `INSERT` per chunk row, to the objects row and
//! `COMMIT` in `finish`. Until then nothing is visible; `abort` rolls back,
//! and a writer dropped or a connection lost rolls back on the server.

use crate::client::{ConnSlot, Shared, give_back, new_upload_id};
use crate::wire::{Conn, Param};
use std::rc::Rc;
use wharf_guest::{Error, ObjectMeta, PutMode};

pub struct Upload {
    shared: Rc<Shared>,
    conn: Conn,
    /// The backend's connection slot, where `conn` goes back at the end.
    home: ConnSlot,
    path: String,
    mode: PutMode,
    id: i64,
    chunk_size: usize,
    /// Bytes that do not yet fill a chunk row.
    buf: Vec<u8>,
    /// The next chunk's number.
    seq: i32,
    size: u64,
    insert_sql: String,
}

impl Upload {
    pub fn new(
        shared: Rc<Shared>,
        mut conn: Conn,
        path: String,
        mode: PutMode,
        home: ConnSlot,
    ) -> Result<Upload, Error> {
        let started = shared.begin(&mut conn, "BEGIN").and_then(|()| {
            // A `create` onto an existing object fails before any data moves.
            shared.precheck(&mut conn, &path, &mode)
        });
        if let Err(e) = started {
            give_back(conn, &home, true);
            return Err(e);
        }
        let chunk_size = shared.cfg.chunk_size as usize;
        let insert_sql = format!(
            "INSERT INTO {} (upload_id, seq, data) VALUES ($1, $2, $3)",
            shared.chunks
        );
        Ok(Upload {
            shared,
            conn,
            home,
            path,
            mode,
            id: new_upload_id(),
            chunk_size,
            buf: Vec::new(),
            seq: 0,
            size: 0,
            insert_sql,
        })
    }

    /// Sends one chunk row, then reads the answer to the previous one: one
    /// insert is always in flight, so the server stores a chunk while the
    /// next one travels.
    fn insert(&mut self, chunk: &[u8]) -> Result<(), Error> {
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` has more chunks than a PostgreSQL integer counts",
                self.path
            ))
        })?;
        self.conn
            .send_prepared(
                &self.insert_sql,
                &[Param::I64(self.id), Param::I32(seq), Param::Bytes(chunk)],
            )
            .map_err(|e| self.shared.error(e))?;
        if seq > 0 {
            self.conn.recv().map_err(|e| self.shared.error(e))?;
        }
        Ok(())
    }

    fn finish_inner(&mut self) -> Result<ObjectMeta, Error> {
        if !self.buf.is_empty() {
            let last = std::mem::take(&mut self.buf);
            self.insert(&last)?;
        }
        if self.seq > 0 {
            self.conn.recv().map_err(|e| self.shared.error(e))?;
        }
        let meta = self.shared.commit_object(
            &mut self.conn,
            &self.path,
            &self.mode,
            self.id,
            self.size,
            self.chunk_size as u64,
        )?;
        self.shared.commit(&mut self.conn)?;
        Ok(meta)
    }
}

impl wharf_guest::Upload for Upload {
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        let mut data: &[u8] = &chunk;
        self.size += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (self.chunk_size - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.chunk_size {
                let full = std::mem::take(&mut self.buf);
                self.insert(&full)?;
                self.buf = full;
                self.buf.clear();
            }
        }
        // Whole chunks go straight from the caller's bytes.
        while data.len() >= self.chunk_size {
            let (chunk, rest) = data.split_at(self.chunk_size);
            self.insert(chunk)?;
            data = rest;
        }
        if !data.is_empty() {
            if self.buf.capacity() < self.chunk_size {
                self.buf.reserve_exact(self.chunk_size - self.buf.len());
            }
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ObjectMeta, Error> {
        let r = self.finish_inner();
        // Committed, or rolled back here: the connection serves the next
        // operation if it still works.
        give_back(self.conn, &self.home, r.is_err());
        r
    }

    fn abort(self) -> Result<(), Error> {
        give_back(self.conn, &self.home, true);
        Ok(())
    }
}
