//! Reads: `GETRANGE` of only the chunks a range covers, two requests in
//! flight, each reply streamed to the host in pieces of at most the size it
//! asks for (the adapter never holds a whole chunk).

use crate::client::Store;
use crate::client::{Manifest, manifest, not_found};
use crate::config::Config;
use crate::resp::Conn;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use wharf_guest::ByteRange;
use wharf_guest::Error;

/// `GETRANGE` requests sent ahead of the one being read.
const PREFETCH: usize = 2;

/// An object, or a range of it, being read.
pub struct ChunkReader<S = TcpStream> {
    /// `None` once the range is read or the read failed.
    conn: Option<Conn<S>>,
    /// Where the connection goes back once the range is read whole.
    home: Option<Rc<RefCell<Option<Conn<S>>>>>,
    path: String,
    /// `<prefix>chunk:<upload>:`: chunk `n` is this + `n`.
    chunk_key: String,
    chunk_size: u64,
    /// The next byte to hand out, and the end of the range.
    pos: u64,
    end: u64,
    /// The first byte not yet requested.
    requested_to: u64,
    /// Lengths of the replies requested and not yet started.
    in_flight: VecDeque<u64>,
    /// Bytes left of the bulk reply being read.
    current: u64,
}

impl<S: Read + Write> ChunkReader<S> {
    /// Puts the connection back into `home` once the range is read whole.
    pub fn returning_to(mut self, home: Rc<RefCell<Option<Conn<S>>>>) -> Self {
        self.home = Some(home);
        self
    }

    /// A reader of `[start, end)` of the object `m` (already clipped to its
    /// size); `conn` is `None` for an empty range.
    pub fn new(conn: Option<Conn<S>>, cfg: &Config, path: &str, m: &Manifest, start: u64, end: u64) -> Self {
        ChunkReader {
            conn,
            home: None,
            path: path.to_string(),
            chunk_key: format!("{}{}:", cfg.chunk_prefix(), m.etag),
            chunk_size: m.chunk_size,
            pos: start,
            end,
            requested_to: start,
            in_flight: VecDeque::new(),
            current: 0,
        }
    }

    fn next_inner(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        loop {
            if self.pos >= self.end && self.current == 0 {
                // Every reply was read: the connection is in step and can
                // serve the backend's next operation.
                if let (Some(conn), Some(home)) = (self.conn.take(), &self.home) {
                    home.borrow_mut().get_or_insert(conn);
                }
                return Ok(Vec::new());
            }
            let Some(conn) = self.conn.as_mut() else {
                return Ok(Vec::new());
            };
            if self.current > 0 {
                let n = (max as u64).min(self.current);
                let data = conn.read_exact(n as usize)?;
                self.current -= n;
                self.pos += n;
                if self.current == 0 {
                    conn.read_crlf()?;
                }
                return Ok(data);
            }
            while self.in_flight.len() < PREFETCH && self.requested_to < self.end {
                let n = self.requested_to / self.chunk_size;
                let chunk_start = n * self.chunk_size;
                let stop = self.end.min(chunk_start + self.chunk_size);
                let key = format!("{}{n}", self.chunk_key);
                let (first, last) = (
                    (self.requested_to - chunk_start).to_string(),
                    (stop - 1 - chunk_start).to_string(),
                );
                conn.send(&[b"GETRANGE", key.as_bytes(), first.as_bytes(), last.as_bytes()])?;
                self.in_flight.push_back(stop - self.requested_to);
                self.requested_to = stop;
            }
            let want = self.in_flight.pop_front().expect("a request is in flight");
            match conn.read_bulk_header()? {
                Some(len) if len == want => self.current = len,
                // GETRANGE of a missing key answers "".
                // A concurrent writer replaced it: reading again from the
                // start gets the new object whole (transient, not damage).
                Some(0) | None => {
                    return Err(Error::Transient(format!(
                        "`{}` was overwritten or deleted while being read (chunk {} is gone); read it again",
                        self.path,
                        self.pos / self.chunk_size
                    )));
                }
                Some(len) => {
                    return Err(Error::Backend(format!(
                        "`{}` is damaged: chunk {} holds {len} bytes where its manifest promises {want}",
                        self.path,
                        self.pos / self.chunk_size
                    )));
                }
            }
        }
    }
}

impl<S: Read + Write + 'static> wharf_guest::Download for ChunkReader<S> {
    /// At most `max` bytes; empty at the end.
    fn next(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        let result = self.next_inner(max.max(1));
        if result.is_err() {
            self.conn = None;
            self.pos = self.end;
            self.current = 0;
        }
        result
    }
}

impl Store {
    /// `read`: the manifest now, the chunks as the reader asks.
    pub fn read(&self, path: &str, range: Option<ByteRange>) -> Result<ChunkReader, Error> {
        let m = self
            .with_conn(|c| manifest(c, &self.cfg, path))?
            .ok_or_else(|| not_found(path))?;
        let (start, end) = match range {
            Some(r) => (r.start, r.end.unwrap_or(u64::MAX)),
            None => (0, u64::MAX),
        };
        let end = end.min(m.size);
        let conn = if start < end { Some(self.take_conn()?) } else { None };
        Ok(ChunkReader::new(conn, &self.cfg, path, &m, start, end).returning_to(self.conn.clone()))
    }
}
