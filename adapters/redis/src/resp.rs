//! A small RESP2 client over `std::net::TcpStream` (or any stream, for
//! tests and fuzzing): commands out, replies in, and a streaming read of one
//! bulk reply for ranged reads.
//!
//! Every failure becomes the contract's error here, named with the server's
//! address: a broken connection is `transient`, a refused grant or refused
//! credentials `denied`.

use crate::config::Config;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use wharf_guest::Error;

/// The longest status, error or length line accepted from the server.
const MAX_LINE: u64 = 64 << 10;
/// The largest bulk string read whole (chunks are at most 64 MiB; a bigger
/// announced length is garbage, not a reason to allocate).
const MAX_BULK: u64 = 80 << 20;
/// Payload bytes copied next to a command's header and trailer, so neither
/// travels as a small write of its own.
const COALESCE: usize = 64 << 10;
/// The most bytes of a bulk reply reserved before they arrive.
const READ_AHEAD: usize = 256 << 10;
/// The most elements of one array reply (a list page is at most 1,001 × 4).
const MAX_ARRAY: i64 = 1 << 20;

/// One reply. Error replies are values here; [`Conn::call`] turns them into
/// the contract's error.
#[derive(Debug)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `-ERR …`, `-WRONGPASS …`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$…`; `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*…`; `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for strings and integers; `None` for nil.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The reply as an integer (an integer reply or a numeric string).
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => self.text().and_then(|t| t.parse().ok()),
        }
    }

    /// The elements of an array reply.
    pub fn into_array(self) -> Option<Vec<Reply>> {
        match self {
            Reply::Array(Some(items)) => Some(items),
            _ => None,
        }
    }
}

/// One connection, authenticated and on the configured database.
pub struct Conn<S = TcpStream> {
    reader: BufReader<S>,
    addr: String,
}

impl Conn {
    /// Connects to `cfg.address`, then `AUTH` and `SELECT` as configured
    /// (pipelined: one round trip).
    pub fn connect(cfg: &Config) -> Result<Conn, Error> {
        let stream = TcpStream::connect(cfg.address.as_str()).map_err(|e| connect_error(&cfg.address, e))?;
        // WASI hosts may not support the option (wasmtime does not); see
        // `send_with_payload` for how writes avoid needing it.
        let _ = stream.set_nodelay(true);
        let mut conn = Conn::over(stream, &cfg.address);
        conn.handshake(cfg)?;
        Ok(conn)
    }
}

impl Conn {
    /// Whether the connection still looks usable after sitting idle: no
    /// unread bytes, and the socket neither at end-of-stream nor failed
    /// (checked with a non-blocking read). Where the socket cannot be made
    /// non-blocking, it is taken as alive and a broken one fails its next
    /// command as `transient`.
    pub fn is_alive(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false; // a reply nobody asked for: out of step
        }
        let stream = self.reader.get_mut();
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let alive = match stream.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Ok(_) | Err(_) => false, // end-of-stream, stray bytes, or an error
        };
        alive && stream.set_nonblocking(false).is_ok()
    }
}

impl<S: Read + Write> Conn<S> {
    /// A connection over an already open `stream` to `addr` (named in
    /// errors); nothing is sent yet.
    pub fn over(stream: S, addr: &str) -> Conn<S> {
        Conn {
            reader: BufReader::with_capacity(256 << 10, stream),
            addr: addr.to_string(),
        }
    }

    /// `AUTH` and `SELECT` as `cfg` says, pipelined, and their replies.
    pub fn handshake(&mut self, cfg: &Config) -> Result<(), Error> {
        let db = cfg.db.to_string();
        let mut sent_auth = false;
        if let Some(password) = &cfg.password {
            match &cfg.username {
                Some(user) => self.send(&[b"AUTH", user.as_bytes(), password.as_bytes()])?,
                None => self.send(&[b"AUTH", password.as_bytes()])?,
            }
            sent_auth = true;
        }
        if cfg.db != 0 {
            self.send(&[b"SELECT", db.as_bytes()])?;
        }
        if sent_auth && let Reply::Error(e) = self.read_reply()? {
            let who = match &cfg.username {
                Some(user) => format!("user `{user}`"),
                None => "the default user".to_string(),
            };
            // Redis never echoes the password in these messages.
            return Err(Error::Denied(format!(
                "redis at {}: AUTH as {who} with the configured `password` was refused: {e}",
                self.addr
            )));
        }
        if cfg.db != 0 {
            match self.read_reply()? {
                Reply::Error(e) if is_auth_error(&e) => return Err(self.server_error(&e)),
                Reply::Error(e) => {
                    return Err(Error::Invalid(format!(
                        "redis at {}: SELECT {db} (config key `db`) failed: {e}",
                        self.addr
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The server's address, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command whose arguments are all small.
    pub fn send(&mut self, args: &[&[u8]]) -> Result<(), Error> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        encode_header(&mut out, args, None);
        self.write(&out, args[0])
    }

    /// Sends one command whose last argument is `payload`, written straight
    /// from the caller's buffer (no copy of a multi-megabyte chunk).
    pub fn send_with_payload(&mut self, args: &[&[u8]], payload: &[u8]) -> Result<(), Error> {
        // WASI has no TCP_NODELAY: a small write right after another waits
        // for the server's delayed ACK (40 ms). So the header goes out with
        // the payload's first bytes and the trailer with its last ones: a
        // small command is one write, a large one copies 128 KiB at most.
        let edge = payload.len().min(COALESCE);
        let (first, rest) = payload.split_at(edge);
        let (middle, last) = rest.split_at(rest.len() - rest.len().min(COALESCE));
        let mut head = Vec::with_capacity(32 + edge + args.iter().map(|a| a.len() + 16).sum::<usize>());
        encode_header(&mut head, args, Some(payload.len()));
        head.extend_from_slice(first);
        if rest.is_empty() {
            head.extend_from_slice(b"\r\n");
            return self.write(&head, args[0]);
        }
        self.write(&head, args[0])?;
        if !middle.is_empty() {
            self.write(middle, args[0])?;
        }
        let mut tail = Vec::with_capacity(last.len() + 2);
        tail.extend_from_slice(last);
        tail.extend_from_slice(b"\r\n");
        self.write(&tail, args[0])
    }

    fn write(&mut self, bytes: &[u8], command: &[u8]) -> Result<(), Error> {
        self.reader.get_mut().write_all(bytes).map_err(|e| {
            let what = format!("sending {}", String::from_utf8_lossy(command));
            self.io_error(&what, e)
        })
    }

    /// Sends a command and reads its reply; an error reply is an error.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, Error> {
        self.send(args)?;
        self.read_ok()
    }

    /// Reads the next reply; an error reply is an error.
    pub fn read_ok(&mut self) -> Result<Reply, Error> {
        match self.read_reply()? {
            Reply::Error(e) => Err(self.server_error(&e)),
            reply => Ok(reply),
        }
    }

    /// Reads the next reply, error replies included.
    pub fn read_reply(&mut self) -> Result<Reply, Error> {
        self.read_value(0)
    }

    fn read_value(&mut self, depth: u32) -> Result<Reply, Error> {
        let (kind, rest) = self.read_line()?;
        Ok(match kind {
            b'+' => Reply::Status(rest),
            b'-' => Reply::Error(rest),
            b':' => Reply::Int(self.number(&rest)?),
            b'$' => match self.number(&rest)? {
                -1 => Reply::Bulk(None),
                n if n < 0 || n as u64 > MAX_BULK => {
                    return Err(self.protocol(&format!("a bulk string of {n} bytes")));
                }
                n => {
                    let data = self.read_exact(n as usize)?;
                    self.read_crlf()?;
                    Reply::Bulk(Some(data))
                }
            },
            b'*' => match self.number(&rest)? {
                -1 => Reply::Array(None),
                n if !(0..=MAX_ARRAY).contains(&n) || depth > 4 => {
                    return Err(self.protocol(&format!("an array of {n} elements at depth {depth}")));
                }
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read_value(depth + 1)?);
                    }
                    Reply::Array(Some(items))
                }
            },
            _ => return Err(self.protocol(&format!("a reply starting with {:?}", char::from(kind)))),
        })
    }

    /// Reads the header of a bulk reply: its length, `None` for nil. An error
    /// reply is an error. The caller then reads the bytes with
    /// [`Conn::read_exact`] and the end with [`Conn::read_crlf`].
    pub fn read_bulk_header(&mut self) -> Result<Option<u64>, Error> {
        let (kind, rest) = self.read_line()?;
        match kind {
            b'$' => match self.number(&rest)? {
                -1 => Ok(None),
                n if n < 0 => Err(self.protocol(&format!("a bulk string of {n} bytes"))),
                n => Ok(Some(n as u64)),
            },
            b'-' => Err(self.server_error(&rest)),
            _ => Err(self.protocol(&format!("{:?} where a bulk string was expected", char::from(kind)))),
        }
    }

    /// Reads exactly `n` bytes of a bulk reply. Memory grows with the bytes
    /// that arrive, not with `n`: the length is the server's word.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let mut data = Vec::with_capacity(n.min(READ_AHEAD));
        let got = (&mut self.reader).take(n as u64).read_to_end(&mut data);
        match got {
            Ok(got) if got < n => Err(self.io_error(
                "reading a reply",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the server closed the connection after {got} of {n} announced bytes"),
                ),
            )),
            Ok(_) => Ok(data),
            Err(e) => Err(self.io_error("reading a reply", e)),
        }
    }

    /// Reads the `\r\n` that ends a bulk reply.
    pub fn read_crlf(&mut self) -> Result<(), Error> {
        let mut end = [0u8; 2];
        self.reader
            .read_exact(&mut end)
            .map_err(|e| self.io_error("reading a reply", e))?;
        if &end != b"\r\n" {
            return Err(self.protocol("a bulk string not ended by CRLF"));
        }
        Ok(())
    }

    /// The next line: its type byte, and the rest as (lossy) text. Split
    /// as bytes: a non-ASCII first byte must not cut a character.
    fn read_line(&mut self) -> Result<(u8, String), Error> {
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(|e| self.io_error("reading a reply", e))?;
        if line.is_empty() {
            return Err(self.io_error(
                "reading a reply",
                io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"),
            ));
        }
        if !line.ends_with(b"\n") && (line.len() as u64) < MAX_LINE {
            // The stream ended inside the line: a cut connection, not a
            // server speaking something else.
            return Err(self.io_error(
                "reading a reply",
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the server closed the connection inside a reply line, after {} bytes",
                        line.len()
                    ),
                ),
            ));
        }
        if !line.ends_with(b"\r\n") || line.len() < 3 {
            return Err(self.protocol("a reply line that is too long or not ended by CRLF"));
        }
        Ok((line[0], String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned()))
    }

    fn number(&self, text: &str) -> Result<i64, Error> {
        text.parse()
            .map_err(|_| self.protocol(&format!("`{text}` where a number was expected")))
    }

    fn protocol(&self, what: &str) -> Error {
        Error::Backend(format!(
            "redis at {}: unexpected reply: {what} (is this a Redis server?)",
            self.addr
        ))
    }

    /// The contract's error for an I/O failure on this connection.
    pub fn io_error(&self, what: &str, e: io::Error) -> Error {
        io_error(&self.addr, what, e)
    }

    /// The contract's error for an error reply.
    pub fn server_error(&self, message: &str) -> Error {
        let code = message.split_whitespace().next().unwrap_or("");
        let text = format!("redis at {}: {message}", self.addr);
        match code {
            _ if is_auth_error(message) => Error::Denied(format!(
                "{text} (check the `username`/`password` config keys and the user's ACL)"
            )),
            "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" => Error::Transient(text),
            "MOVED" | "ASK" => Error::Unsupported(format!(
                "{text}: Redis Cluster is not supported; point `address` at a standalone server"
            )),
            _ => Error::Backend(text),
        }
    }
}

fn is_auth_error(message: &str) -> bool {
    let code = message.split_whitespace().next().unwrap_or("");
    matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM") || message.starts_with("ERR invalid password")
}

/// `*<n>\r\n` and every argument as `$<len>\r\n<arg>\r\n`; with `payload`,
/// the last argument's `$<len>\r\n` only.
fn encode_header(out: &mut Vec<u8>, args: &[&[u8]], payload: Option<usize>) {
    let count = args.len() + usize::from(payload.is_some());
    out.extend_from_slice(format!("*{count}\r\n").as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = payload {
        out.extend_from_slice(format!("${len}\r\n").as_bytes());
    }
}

fn connect_error(addr: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Error::Denied(format!(
            "redis at {addr}: the host refused the TCP connection ({e}); add \"{addr}\" to the backend's \
             `[backends.<name>.grants] tcp` list"
        )),
        io::ErrorKind::InvalidInput | io::ErrorKind::AddrNotAvailable => {
            Error::Invalid(format!("redis at {addr}: cannot connect to config key `address` ({e})"))
        }
        // Nothing was sent: the contract's `unreachable`.
        io::ErrorKind::ConnectionRefused | io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Error::Unreachable(format!("redis at {addr}: connecting: {e}"))
        }
        _ => io_error(addr, "connecting", e),
    }
}

/// An I/O failure: the connection broke or was never made; retrying can help.
pub fn io_error(addr: &str, what: &str, e: io::Error) -> Error {
    Error::Transient(format!("redis at {addr}: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::Replay;

    fn conn(server: &[u8]) -> Conn<Replay> {
        Conn::over(Replay::new(server), "fuzz:6379")
    }

    #[test]
    fn replies_are_read() {
        let mut c = conn(b"+OK\r\n:7\r\n$3\r\nabc\r\n*2\r\n$1\r\nx\r\n$-1\r\n-ERR no\r\n");
        assert!(matches!(c.read_reply(), Ok(Reply::Status(s)) if s == "OK"));
        assert_eq!(c.read_reply().unwrap().int(), Some(7));
        assert_eq!(c.read_reply().unwrap().text().as_deref(), Some("abc"));
        let items = c.read_reply().unwrap().into_array().unwrap();
        assert!(matches!(items.as_slice(), [Reply::Bulk(Some(_)), Reply::Bulk(None)]));
        assert!(matches!(c.read_ok(), Err(Error::Backend(m)) if m.contains("ERR no")));
    }

    #[test]
    fn an_announced_length_is_not_allocated_before_it_arrives() {
        // 80 MiB announced, 3 bytes sent: an error, and no 80 MiB buffer.
        let mut c = conn(b"$83886080\r\nabc");
        let e = c.read_reply().unwrap_err();
        assert!(
            matches!(&e, Error::Transient(m) if m.contains("after 3 of 83886080")),
            "{e:?}"
        );
        let mut c = conn(b"abc");
        let data = c.read_exact(80 << 20);
        assert!(data.is_err());
        let mut c = conn(b"abcdef");
        let data = c.read_exact(3).unwrap();
        assert_eq!(data, b"abc");
    }

    #[test]
    fn a_connection_cut_inside_a_line_is_transient() {
        // Cut after part of a line: the connection was lost, so a retry
        // may work (a server that spoke something else is `backend`).
        for cut in [&b":12"[..], b"$5", b"+OK\r"] {
            let e = conn(cut).read_reply().unwrap_err();
            assert!(
                matches!(&e, Error::Transient(m) if m.contains("inside a reply line")),
                "{e:?}"
            );
        }
        assert!(matches!(conn(b"+OK\n").read_reply(), Err(Error::Backend(_))));
        let long = vec![b'+'; MAX_LINE as usize + 10];
        assert!(matches!(conn(&long).read_reply(), Err(Error::Backend(m)) if m.contains("too long")));
    }

    #[test]
    fn nesting_and_sizes_are_bounded() {
        let deep = "*1\r\n".repeat(10) + ":1\r\n";
        assert!(matches!(conn(deep.as_bytes()).read_reply(), Err(Error::Backend(m)) if m.contains("depth")));
        assert!(conn(b"*2000000\r\n").read_reply().is_err());
        assert!(conn(b"$-2\r\n").read_reply().is_err());
        assert!(conn(b"\r\n").read_reply().is_err());
    }

    #[test]
    fn a_reply_starting_with_a_non_ascii_byte_is_an_error_not_a_panic() {
        // Found by the `resp` fuzz target: the line was made text (lossily,
        // 0xc6 → U+FFFD, three bytes) before its first byte was split off.
        for line in [&b"\xc6FF\r\n"[..], b"\xe2\x82\xac1\r\n"] {
            let e = conn(line).read_reply().unwrap_err();
            assert!(
                matches!(&e, Error::Backend(m) if m.contains("a reply starting with")),
                "{e:?}"
            );
            assert!(conn(line).read_bulk_header().is_err());
        }
    }
}
