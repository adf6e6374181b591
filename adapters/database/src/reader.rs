//! A read: a `REPEATABLE READ` transaction on a connection of its own, so
//! every chunk comes from the same snapshot even if the object is
//! overwritten meanwhile. One bounded query per chunk row, only the rows
//! the range covers, `substring` on the edges. Several rows are asked for
//! ahead (about 4 MiB): they wait in the socket buffers, not in memory
//! here, and the server reads the next rows while the host consumes this
//! one. Without that lead every 64 KiB socket read waits for the server.

/// How many bytes of rows to keep requested ahead of the reader.
const AHEAD: u64 = 4 << 20;

use crate::client::Shared;
use crate::client::{ConnSlot, give_back};
use crate::config::{MAX_CHUNK, MIN_CHUNK};
use crate::wire::{Conn, Param};
use bytes::Bytes;
use std::collections::VecDeque;
use std::rc::Rc;
use wharf_guest::{ByteRange, Error};

pub struct ObjectReader {
    shared: Rc<Shared>,
    /// `None` once the end is reached or a call failed.
    conn: Option<Conn>,
    /// The backend's connection slot, where `conn` goes back at the end.
    home: ConnSlot,
    path: String,
    id: i64,
    chunk_size: u64,
    /// End of the range, exclusive, clipped to the object.
    end: u64,
    /// The fetched bytes not yet returned.
    current: Bytes,
    /// Where the next chunk query starts.
    next_fetch: u64,
    /// Start and length of each query in flight, oldest first.
    in_flight: VecDeque<(u64, u64)>,
    /// The object's size.
    size: u64,
    /// Statements: a whole row, and a slice of one (a range's edges).
    whole_sql: String,
    slice_sql: String,
}

impl ObjectReader {
    /// Starts reading `path` on `conn`; `conn` goes back to `home` after
    /// the last byte, or at once when the object is missing.
    pub fn open(
        shared: Rc<Shared>,
        mut conn: Conn,
        path: String,
        range: Option<ByteRange>,
        home: ConnSlot,
    ) -> Result<Self, Error> {
        let (id, size, chunk_size, start, end) = match Self::locate(&shared, &mut conn, &path, range) {
            Ok(found) => found,
            Err(e) => {
                give_back(conn, &home, true);
                return Err(e);
            }
        };
        let whole_sql = format!("SELECT data FROM {} WHERE upload_id = $1 AND seq = $2", shared.chunks);
        let slice_sql = format!(
            "SELECT substring(data from $3 for $4) FROM {} WHERE upload_id = $1 AND seq = $2",
            shared.chunks
        );
        let mut reader = ObjectReader {
            shared,
            conn: Some(conn),
            home,
            path,
            id,
            chunk_size,
            end,
            current: Bytes::new(),
            next_fetch: start,
            in_flight: VecDeque::new(),
            size,
            whole_sql,
            slice_sql,
        };
        reader.request()?;
        Ok(reader)
    }

    /// The object's upload id, size and chunk size, and the range clipped
    /// to it, inside a read-only snapshot begun on `conn`.
    fn locate(
        shared: &Shared,
        conn: &mut Conn,
        path: &str,
        range: Option<ByteRange>,
    ) -> Result<(i64, u64, u64, u64, u64), Error> {
        shared.begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let r = conn
            .query(
                &format!(
                    "SELECT upload_id, size, chunk_size FROM {} WHERE path = $1",
                    shared.objects
                ),
                &[Param::Text(path)],
            )
            .map_err(|e| shared.error(e))?;
        let row = r
            .rows
            .first()
            .ok_or_else(|| Error::NotFound(format!("no object at `{path}`")))?;
        let id = row.i64(0).map_err(|e| shared.error(e))?;
        let size = row.i64(1).map_err(|e| shared.error(e))?.max(0) as u64;
        // The row is storage's word, not ours: a chunk_size this adapter
        // never writes (1 would queue millions of statements) is refused.
        let stored_chunk = row.i32(2).map_err(|e| shared.error(e))?;
        let chunk_size = u64::try_from(stored_chunk)
            .ok()
            .filter(|n| (MIN_CHUNK..=MAX_CHUNK).contains(n))
            .ok_or_else(|| {
                Error::Backend(format!(
                    "the objects row of `{path}` says chunk_size {stored_chunk}, outside the 64KiB..64MiB \
                     this adapter writes: the table was changed outside wharf"
                ))
            })?;
        let (start, end) = match range {
            None => (0, size),
            Some(r) => {
                let end = r.end.unwrap_or(size).min(size);
                if let Some(e) = r.end
                    && e < r.start
                {
                    return Err(Error::Invalid(format!("range end {e} is before its start {}", r.start)));
                }
                (r.start.min(end), end)
            }
        };
        Ok((id, size, chunk_size, start, end))
    }

    /// Asks for chunk rows from `next_fetch` on (the parts in range), up to
    /// [`AHEAD`] bytes ahead (at least two rows).
    fn request(&mut self) -> Result<(), Error> {
        let depth = (AHEAD / self.chunk_size).max(2) as usize;
        while self.in_flight.len() < depth && self.next_fetch < self.end {
            self.request_one()?;
        }
        Ok(())
    }

    fn request_one(&mut self) -> Result<(), Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let pos = self.next_fetch;
        let seq = (pos / self.chunk_size) as i32;
        let offset = pos % self.chunk_size;
        let len = (self.chunk_size - offset).min(self.end - pos);
        let id_seq = [Param::I64(self.id), Param::I32(seq)];
        let sent = if offset == 0 && (len == self.chunk_size || pos + len == self.size) {
            // Whole rows skip substring(), which costs the server a copy.
            conn.send_prepared(&self.whole_sql, &id_seq)
        } else {
            let slice = [Param::I32(offset as i32 + 1), Param::I32(len as i32)];
            conn.send_prepared(&self.slice_sql, &[id_seq[0], id_seq[1], slice[0], slice[1]])
        };
        sent.map_err(|e| self.shared.error(e))?;
        self.in_flight.push_back((pos, len));
        self.next_fetch = pos + len;
        Ok(())
    }

    /// Receives the chunk in flight into `current` and asks for the next.
    fn receive(&mut self) -> Result<(), Error> {
        let (Some(conn), Some((pos, want))) = (self.conn.as_mut(), self.in_flight.pop_front()) else {
            return Ok(());
        };
        let r = conn.recv().map_err(|e| self.shared.error(e))?;
        let data = match r.rows.first() {
            Some(row) => row.bytes(0).map_err(|e| self.shared.error(e))?.unwrap_or_default(),
            None => Bytes::new(),
        };
        if data.len() as u64 != want {
            return Err(Error::Backend(format!(
                "chunk {} of `{}` holds {} of the {want} bytes expected at offset {pos}: the tables are damaged",
                pos / self.chunk_size,
                self.path,
                data.len()
            )));
        }
        self.current = data;
        self.request()
    }

    fn next_inner(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        if self.current.is_empty() {
            self.receive()?;
        }
        if self.current.is_empty() {
            // The end: the read-only transaction ends and the connection
            // serves the backend's next operation.
            if let Some(conn) = self.conn.take() {
                give_back(conn, &self.home, true);
            }
            return Ok(Vec::new());
        }
        let n = max.max(1).min(self.current.len());
        Ok(self.current.split_to(n).to_vec())
    }
}

impl wharf_guest::Download for ObjectReader {
    fn next(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        let r = self.next_inner(max);
        if r.is_err() {
            self.conn = None;
        }
        r
    }
}
