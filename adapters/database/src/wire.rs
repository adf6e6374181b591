//! A minimal blocking PostgreSQL client: `postgres-protocol` encodes and
//! decodes the messages (and does SCRAM-SHA-256), `std::net::TcpStream`
//! (or any stream, for tests and fuzzing) carries them. Only what the adapter needs: startup and password
//! authentication, the extended query protocol with binary parameters and
//! results, one statement in flight at a time or a short pipeline, and the
//! simple query protocol for DDL.

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{DataRowBody, ErrorFields, Message};
use postgres_protocol::message::frontend;
use postgres_protocol::{IsNull, Oid, types};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Range;

use crate::config::MAX_CHUNK;

/// How far a read from the socket may reach in one call: wasmtime's
/// `wasi:sockets` hands out at most 64 KiB per read.
const READ_SIZE: usize = 64 << 10;
/// The longest message accepted: a data row of the largest chunk plus room
/// for its framing. `Message::parse` reserves what a header announces.
pub const MAX_MESSAGE: usize = MAX_CHUNK as usize + (64 << 10);

/// Why talking to the server failed.
#[derive(Debug)]
pub enum DbError {
    /// The connection could not be made or broke; it is unusable.
    Io {
        /// What was being done (`connecting`, `reading`, …).
        doing: &'static str,
        /// The server's address.
        addr: String,
        err: io::Error,
    },
    /// The server answered with an `ErrorResponse`.
    Server {
        /// The SQLSTATE.
        code: String,
        message: String,
        detail: Option<String>,
    },
    /// The server asked for something this client cannot do, or sent
    /// something it cannot read.
    Protocol(String),
    /// The server wants a password and the config has none.
    NoPassword,
}

/// One query parameter, always sent in binary format.
#[derive(Clone, Copy)]
pub enum Param<'a> {
    Text(&'a str),
    I64(i64),
    I32(i32),
    Bytes(&'a [u8]),
}

impl Param<'_> {
    fn oid(&self) -> Oid {
        match self {
            Param::Text(_) => 25,
            Param::I64(_) => 20,
            Param::I32(_) => 23,
            Param::Bytes(_) => 17,
        }
    }
}

/// One result row; every column arrives in binary format.
pub struct Row {
    body: Bytes,
    cols: Vec<Option<Range<usize>>>,
}

impl Row {
    fn new(body: DataRowBody) -> Result<Row, DbError> {
        let cols = body
            .ranges()
            .collect()
            .map_err(|e| DbError::Protocol(format!("malformed data row: {e}")))?;
        Ok(Row {
            body: body.buffer_bytes().clone(),
            cols,
        })
    }

    /// Column `i` as shared bytes; `None` for NULL.
    pub fn bytes(&self, i: usize) -> Result<Option<Bytes>, DbError> {
        match self.cols.get(i) {
            Some(Some(r)) => Ok(Some(self.body.slice(r.clone()))),
            Some(None) => Ok(None),
            None => Err(DbError::Protocol(format!("the row has no column {i}"))),
        }
    }

    fn not_null(&self, i: usize) -> Result<&[u8], DbError> {
        match self.cols.get(i) {
            Some(Some(r)) => Ok(&self.body[r.clone()]),
            _ => Err(DbError::Protocol(format!("column {i} is NULL or missing"))),
        }
    }

    /// A `bigint` column.
    pub fn i64(&self, i: usize) -> Result<i64, DbError> {
        types::int8_from_sql(self.not_null(i)?).map_err(|e| DbError::Protocol(format!("column {i}: {e}")))
    }

    /// An `integer` column.
    pub fn i32(&self, i: usize) -> Result<i32, DbError> {
        types::int4_from_sql(self.not_null(i)?).map_err(|e| DbError::Protocol(format!("column {i}: {e}")))
    }

    /// A `text` column.
    pub fn text(&self, i: usize) -> Result<String, DbError> {
        types::text_from_sql(self.not_null(i)?)
            .map(str::to_string)
            .map_err(|e| DbError::Protocol(format!("column {i}: {e}")))
    }

    /// A `boolean` column.
    pub fn bool(&self, i: usize) -> Result<bool, DbError> {
        types::bool_from_sql(self.not_null(i)?).map_err(|e| DbError::Protocol(format!("column {i}: {e}")))
    }
}

/// What one statement returned.
pub struct Outcome {
    pub rows: Vec<Row>,
    /// Rows inserted, updated or deleted (from the command tag).
    pub affected: u64,
}

/// Where to connect and as whom.
pub struct Login<'a> {
    pub addr: &'a str,
    pub user: &'a str,
    pub password: Option<&'a str>,
    pub dbname: &'a str,
}

/// An open, authenticated connection.
pub struct Conn<S: Read + Write = TcpStream> {
    stream: S,
    addr: String,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Statements sent whose answer (up to `ReadyForQuery`) is unread.
    in_flight: usize,
    /// Set once an I/O error or protocol error left the stream unusable.
    broken: bool,
    /// Named prepared statements: (SQL, name).
    prepared: Vec<(String, String)>,
    statements: u32,
}

impl Conn {
    /// Whether the connection still looks usable after sitting idle: no
    /// unread bytes, nothing in flight, and the socket neither at
    /// end-of-stream nor failed (checked with a non-blocking read: a server
    /// that shut down sent its goodbye and closed). Where the socket cannot
    /// be made non-blocking it is taken as alive, and a broken one fails
    /// its next statement as `transient`.
    pub fn is_alive(&mut self) -> bool {
        if !self.is_usable() || !self.rbuf.is_empty() {
            return false;
        }
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let alive = match self.stream.read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            // End-of-stream, a message nobody asked for, or an error.
            Ok(_) | Err(_) => false,
        };
        alive && self.stream.set_nonblocking(false).is_ok()
    }

    /// Connects and authenticates (cleartext, MD5 or SCRAM-SHA-256, as the
    /// server asks).
    pub fn connect(login: &Login<'_>) -> Result<Conn, DbError> {
        let stream = TcpStream::connect(login.addr).map_err(|err| DbError::Io {
            doing: "connecting",
            addr: login.addr.to_string(),
            err,
        })?;
        // Every message batch goes out in one write; Nagle would only add
        // latency. Not every platform lets us choose: that is fine.
        let _ = stream.set_nodelay(true);
        let mut conn = Conn::over(stream, login.addr);
        conn.startup(login)?;
        Ok(conn)
    }
}

impl<S: Read + Write> Conn<S> {
    /// A connection over an already open `stream` to `addr` (named in
    /// errors), before startup.
    pub fn over(stream: S, addr: &str) -> Conn<S> {
        Conn {
            stream,
            addr: addr.to_string(),
            rbuf: BytesMut::with_capacity(READ_SIZE),
            wbuf: BytesMut::with_capacity(64 << 10),
            in_flight: 0,
            broken: false,
            prepared: Vec::new(),
            statements: 0,
        }
    }

    /// Whether the connection can still be used.
    pub fn is_usable(&self) -> bool {
        !self.broken && self.in_flight == 0
    }

    /// Sends the startup message and authenticates (cleartext, MD5 or
    /// SCRAM-SHA-256, as the server asks) until the server is ready.
    pub fn startup(&mut self, login: &Login<'_>) -> Result<(), DbError> {
        let params = [
            ("user", login.user),
            ("database", login.dbname),
            ("client_encoding", "UTF8"),
            ("application_name", "wharf"),
        ];
        frontend::startup_message(params, &mut self.wbuf).map_err(protocol)?;
        self.flush()?;
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.message()? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let pw = login.password.ok_or(DbError::NoPassword)?;
                    frontend::password_message(pw.as_bytes(), &mut self.wbuf).map_err(protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let pw = login.password.ok_or(DbError::NoPassword)?;
                    let hash = md5_hash(login.user.as_bytes(), pw.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.wbuf).map_err(protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationSasl(body) => {
                    let pw = login.password.ok_or(DbError::NoPassword)?;
                    let mut offered = Vec::new();
                    let mut mechanisms = body.mechanisms();
                    while let Some(m) = mechanisms.next().map_err(protocol)? {
                        offered.push(m.to_string());
                    }
                    if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(DbError::Protocol(format!(
                            "the server offers SASL mechanisms {offered:?}; only {SCRAM_SHA_256} is supported"
                        )));
                    }
                    // No TLS, so no channel binding.
                    let s = ScramSha256::new(pw.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.wbuf).map_err(protocol)?;
                    self.flush()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| DbError::Protocol("SASL continue before SASL start".into()))?;
                    s.update(body.data())
                        .map_err(|e| DbError::Protocol(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.wbuf).map_err(protocol)?;
                    self.flush()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| DbError::Protocol("SASL final before SASL start".into()))?;
                    // Checks the server's signature: it knows the password too.
                    s.finish(body.data())
                        .map_err(|e| DbError::Protocol(format!("SCRAM: the server's proof is wrong ({e})")))?;
                }
                Message::ErrorResponse(body) => return Err(server_error(body.fields())),
                Message::ReadyForQuery(_) => return Ok(()),
                Message::ParameterStatus(_) | Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                _ => {
                    return Err(DbError::Protocol(
                        "the server asked for an authentication method other than password, MD5 or SCRAM".into(),
                    ));
                }
            }
        }
    }

    /// Sends one statement (parse, bind, execute, sync) without waiting for
    /// its answer; [`Conn::recv`] reads it. Parameters and results are
    /// binary: `bytea` travels as raw bytes. Planned for these parameter
    /// values (an unnamed statement), so e.g. a `LIKE 'prefix%'` uses the
    /// index.
    pub fn send(&mut self, sql: &str, params: &[Param<'_>]) -> Result<(), DbError> {
        self.send_as("", sql, params)
    }

    /// [`Conn::send`] for a statement run once per chunk row: parsed once
    /// per connection as a named prepared statement.
    pub fn send_prepared(&mut self, sql: &str, params: &[Param<'_>]) -> Result<(), DbError> {
        let name = match self.prepared.iter().find(|(s, _)| s == sql) {
            Some((_, name)) => name.clone(),
            None => {
                // Names are never reused: a statement whose parse failed
                // leaves nothing behind to collide with.
                self.statements += 1;
                let name = format!("wharf{}", self.statements);
                frontend::parse(&name, sql, params.iter().map(Param::oid), &mut self.wbuf).map_err(protocol)?;
                self.prepared.push((sql.to_string(), name.clone()));
                name
            }
        };
        self.bind_execute(&name, params)
    }

    fn send_as(&mut self, name: &str, sql: &str, params: &[Param<'_>]) -> Result<(), DbError> {
        if self.broken {
            return Err(DbError::Protocol("the connection is broken".into()));
        }
        frontend::parse(name, sql, params.iter().map(Param::oid), &mut self.wbuf).map_err(protocol)?;
        self.bind_execute(name, params)
    }

    fn bind_execute(&mut self, statement: &str, params: &[Param<'_>]) -> Result<(), DbError> {
        if self.broken {
            self.wbuf.clear();
            return Err(DbError::Protocol("the connection is broken".into()));
        }
        let bound = frontend::bind(
            "",
            statement,
            params.iter().map(|_| 1),
            params.iter(),
            |p, buf| {
                match *p {
                    Param::Text(s) => types::text_to_sql(s, buf),
                    Param::I64(v) => types::int8_to_sql(v, buf),
                    Param::I32(v) => types::int4_to_sql(v, buf),
                    Param::Bytes(b) => types::bytea_to_sql(b, buf),
                }
                Ok(IsNull::No)
            },
            [1],
            &mut self.wbuf,
        );
        if bound.is_err() {
            self.wbuf.clear();
            return Err(DbError::Protocol("a parameter is too large to send".into()));
        }
        frontend::execute("", 0, &mut self.wbuf).map_err(protocol)?;
        frontend::sync(&mut self.wbuf);
        self.flush()?;
        self.in_flight += 1;
        Ok(())
    }

    /// Reads the answer to the oldest statement sent.
    pub fn recv(&mut self) -> Result<Outcome, DbError> {
        if self.in_flight == 0 {
            return Err(DbError::Protocol("no statement is waiting for an answer".into()));
        }
        let r = self.answer();
        self.in_flight -= 1;
        r
    }

    /// Reads and discards every answer still in flight.
    pub fn drain(&mut self) {
        while self.in_flight > 0 && !self.broken {
            let _ = self.recv();
        }
    }

    /// Sends one statement and reads its answer.
    pub fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Outcome, DbError> {
        self.send(sql, params)?;
        self.recv()
    }

    /// Runs SQL text (may hold several statements) with the simple query
    /// protocol: for DDL and transaction control.
    pub fn simple(&mut self, sql: &str) -> Result<(), DbError> {
        if self.broken {
            return Err(DbError::Protocol("the connection is broken".into()));
        }
        frontend::query(sql, &mut self.wbuf).map_err(protocol)?;
        self.flush()?;
        self.in_flight += 1;
        self.recv().map(|_| ())
    }

    /// Collects rows and the command tag up to `ReadyForQuery`; an error
    /// response is returned once the server is ready again.
    fn answer(&mut self) -> Result<Outcome, DbError> {
        let mut out = Outcome {
            rows: Vec::new(),
            affected: 0,
        };
        let mut error = None;
        loop {
            match self.message()? {
                Message::DataRow(body) => out.rows.push(Row::new(body)?),
                Message::CommandComplete(body) => {
                    let tag = body.tag().map_err(protocol)?;
                    out.affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                }
                Message::ErrorResponse(body) => error = Some(server_error(body.fields())),
                Message::ReadyForQuery(_) => break,
                Message::ParseComplete
                | Message::BindComplete
                | Message::NoData
                | Message::RowDescription(_)
                | Message::EmptyQueryResponse
                | Message::NoticeResponse(_)
                | Message::ParameterStatus(_)
                | Message::NotificationResponse(_) => {}
                _ => {
                    self.broken = true;
                    return Err(DbError::Protocol("unexpected message from the server".into()));
                }
            }
        }
        match error {
            Some(e) => {
                // The failed statement may have been a parse: forget them all.
                self.prepared.clear();
                Err(e)
            }
            None => Ok(out),
        }
    }

    /// The next backend message, reading from the socket as needed.
    fn message(&mut self) -> Result<Message, DbError> {
        loop {
            if let Some(header) = self.rbuf.get(..5) {
                let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                if len > MAX_MESSAGE {
                    self.broken = true;
                    return Err(DbError::Protocol(format!(
                        "the server announced a message of {len} bytes (type {:?}), more than the {MAX_MESSAGE} \
                         a chunk row of at most {MAX_CHUNK} bytes needs; is this a PostgreSQL server?",
                        char::from(header[0])
                    )));
                }
            }
            match Message::parse(&mut self.rbuf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(DbError::Protocol(format!("unreadable message from the server: {e}")));
                }
            }
            // Read into the room `Message::parse` reserved for a long
            // message, so the buffer never regrows (and copies) mid-message.
            let start = self.rbuf.len();
            if self.rbuf.capacity() == start {
                self.rbuf.reserve(READ_SIZE);
            }
            let room = (self.rbuf.capacity() - start).min(READ_SIZE);
            self.rbuf.resize(start + room, 0);
            let got = self.stream.read(&mut self.rbuf[start..]);
            let n = match got {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )),
                Ok(n) => Ok(n),
                Err(e) => Err(e),
            };
            match n {
                Ok(n) => self.rbuf.truncate(start + n),
                Err(err) => {
                    self.rbuf.truncate(start);
                    self.broken = true;
                    return Err(DbError::Io {
                        doing: "reading from",
                        addr: self.addr.clone(),
                        err,
                    });
                }
            }
        }
    }

    fn flush(&mut self) -> Result<(), DbError> {
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|err| {
            self.broken = true;
            DbError::Io {
                doing: "writing to",
                addr: self.addr.clone(),
                err,
            }
        })
    }
}

impl<S: Read + Write> Drop for Conn<S> {
    fn drop(&mut self) {
        // A polite goodbye; an open transaction is rolled back either way.
        if !self.broken {
            self.wbuf.clear();
            frontend::terminate(&mut self.wbuf);
            let _ = self.stream.write_all(&self.wbuf);
        }
    }
}

fn protocol(e: io::Error) -> DbError {
    DbError::Protocol(format!("encoding a message: {e}"))
}

fn server_error(mut fields: ErrorFields<'_>) -> DbError {
    let (mut code, mut message, mut detail) = (String::new(), String::new(), None);
    while let Ok(Some(f)) = fields.next() {
        let value = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            _ => {}
        }
    }
    DbError::Server { code, message, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::Replay;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn conn(server: &[u8]) -> Conn<Replay> {
        let mut c = Conn::over(Replay::new(server), "fuzz:5432");
        c.in_flight = 1;
        c
    }

    #[test]
    fn an_answer_brings_rows_and_a_count() {
        let mut row = 2u16.to_be_bytes().to_vec();
        row.extend_from_slice(&8i32.to_be_bytes());
        row.extend_from_slice(&1234i64.to_be_bytes());
        row.extend_from_slice(&(-1i32).to_be_bytes());
        let server = [msg(b'D', &row), msg(b'C', b"UPDATE 3\0"), msg(b'Z', b"I")].concat();
        let out = conn(&server).recv().unwrap();
        assert_eq!(out.affected, 3);
        assert_eq!(out.rows[0].i64(0).unwrap(), 1234);
        assert!(out.rows[0].bytes(1).unwrap().is_none());
        assert!(out.rows[0].text(1).is_err() && out.rows[0].bytes(2).is_err());
    }

    #[test]
    fn a_huge_announced_message_is_refused_before_it_is_allocated() {
        // A DataRow claiming 2 GiB: without the check, `Message::parse`
        // reserves it, which traps a guest with a 256 MiB memory limit.
        let mut c = conn(b"D\x7f\xff\xff\xff\x00\x01");
        let e = c.recv().err().expect("refused");
        assert!(
            matches!(&e, DbError::Protocol(m) if m.contains("2147483647 bytes")),
            "{e:?}"
        );
        assert!(!c.is_usable());
        assert!(c.rbuf.capacity() < MAX_MESSAGE);
        // The largest legitimate row still fits.
        assert!(MAX_MESSAGE as u64 > MAX_CHUNK + 64);
    }

    #[test]
    fn startup_needs_the_password_the_server_asks_for() {
        let login = Login {
            addr: "fuzz:5432",
            user: "u",
            password: None,
            dbname: "d",
        };
        let mut c = Conn::over(Replay::new(&msg(b'R', &3u32.to_be_bytes())), login.addr);
        assert!(matches!(c.startup(&login), Err(DbError::NoPassword)));
        let server = [msg(b'R', &0u32.to_be_bytes()), msg(b'Z', b"I")].concat();
        let mut c = Conn::over(Replay::new(&server), login.addr);
        assert!(c.startup(&login).is_ok());
    }
}
