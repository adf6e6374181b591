//! The seam wharf's fuzz targets (`fuzz/`) drive this adapter through: a
//! server whose replies are arbitrary bytes, read by the adapter's own code
//! (handshake, replies, manifests, list pages, streamed chunk reads).

use crate::client::{Manifest, manifest};
use crate::config::Config;
use crate::list::page;
use crate::reader::ChunkReader;
use crate::resp::{Conn, Reply};
use std::io::{self, Cursor, Read, Write};
use wharf_guest::Download;

/// A server connection that answers `data` and swallows every command.
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

/// Reads `data` as a server's replies. The first byte picks what the
/// adapter is doing: 0 the `AUTH`/`SELECT` handshake, 1 any replies (each
/// also read as a list page), 2 a manifest then a streamed ranged read of
/// chunks, 3 bulk replies read piecewise.
pub fn server_replies(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cfg = Config::parse(
        [
            ("address", "fuzz.invalid:6379"),
            ("username", "wharf"),
            ("password", "secret"),
            ("db", "3"),
            ("chunk_size", "64KiB"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec(),
    )
    .expect("a valid config");
    let mut conn = Conn::over(Replay::new(rest), &cfg.address);
    match mode % 4 {
        0 => {
            let _ = conn.handshake(&cfg);
        }
        1 => {
            while let Ok(reply) = conn.read_reply() {
                let _ = (reply.text(), reply.int());
                let _ = page(reply, "models/");
            }
        }
        2 => {
            let m = match manifest(&mut conn, &cfg, "m") {
                Ok(Some(m)) => m,
                _ => Manifest {
                    size: 200_000,
                    chunk_size: 64 << 10,
                    chunks: 4,
                    etag: "e".into(),
                    modified_ms: None,
                },
            };
            // A range from the middle of the first chunk to past the end.
            let mut r = ChunkReader::new(Some(conn), &cfg, "m", &m, 10, m.size);
            while let Ok(piece) = r.next(4096) {
                if piece.is_empty() {
                    break;
                }
            }
        }
        _ => {
            while let Ok(Some(n)) = conn.read_bulk_header() {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if conn.read_exact(n).and_then(|_| conn.read_crlf()).is_err() {
                    break;
                }
            }
            let _ = conn.read_ok().map(Reply::into_array);
        }
    }
}
