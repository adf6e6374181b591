//! The seam wharf's fuzz targets (`fuzz/`) drive this adapter through: a
//! server whose messages are arbitrary bytes, read by the adapter's own
//! wire client (startup and authentication, statement answers, rows).

use crate::wire::{Conn, Login, Row};
use std::io::{self, Cursor, Read, Write};

/// A server connection that answers `data` and swallows every message.
pub struct Replay(Cursor<Vec<u8>>);

impl Replay {
    /// A connection whose server sends `data`, then closes.
    pub fn new(data: &[u8]) -> Replay {
        Replay(Cursor::new(data.to_vec()))
    }
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads `data` as a server's messages. The first byte picks what the
/// adapter is doing: even, startup with a password (cleartext, MD5 or
/// SCRAM, whichever the bytes ask for) then statements; odd, statements
/// only. Every row returned is read through each accessor.
pub fn server_messages(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let login = Login {
        addr: "fuzz.invalid:5432",
        user: "wharf",
        password: Some("secret"),
        dbname: "wharf",
    };
    let mut conn = Conn::over(Replay::new(rest), login.addr);
    if mode % 2 == 0 && conn.startup(&login).is_err() {
        return;
    }
    // Each answer ends at `ReadyForQuery`; every one consumes bytes.
    while conn.is_usable() {
        match conn.query("SELECT 1", &[]) {
            Ok(outcome) => outcome.rows.iter().for_each(read_row),
            Err(crate::wire::DbError::Io { .. }) => break,
            Err(_) => {}
        }
    }
}

fn read_row(row: &Row) {
    for i in 0..4 {
        let _ = (row.bytes(i), row.i64(i), row.i32(i), row.text(i), row.bool(i));
    }
}
