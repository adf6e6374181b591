//! A TCP proxy on 127.0.0.1 in front of a real server that injects faults:
//! connection resets at chosen byte offsets, stalls, and HTTP 5xx answers.
//!
//! The plan is a list of faults injected one after the other; only the
//! first not yet injected is armed. [`Fault::Respond`] and [`Fault::Pass`]
//! take the next new connection. [`Fault::Reset`] and [`Fault::Stall`] count
//! the bytes going their way over all connections since they were armed, and
//! strike the connection that carries their byte: so a test aims at a byte
//! of the exchange without knowing how the client pools connections or
//! whether the server keeps them alive. Once the plan is used up, everything
//! passes. Dropping the proxy stops it and every connection it serves.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use wharf_tests::fault_proxy::{Direction, Fault, FaultProxy};
//! let proxy = FaultProxy::start(
//!     "http://127.0.0.1:9000",
//!     [Fault::Respond { status: 503 }, Fault::Reset { direction: Direction::Downstream, after: 1 << 20 }],
//! )
//! .await?;
//! let endpoint = proxy.url(); // point the adapter (and its grant) here
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: requests.
    Upstream,
    /// Server to client: responses.
    Downstream,
}

/// One fault of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Let the next new connection through untouched.
    Pass,
    /// Forward `after` more bytes going `direction` (over all connections),
    /// then reset both sides of the connection carrying the next one (TCP
    /// RST to client and server).
    Reset {
        /// The way whose bytes are counted.
        direction: Direction,
        /// Bytes forwarded before the reset.
        after: u64,
    },
    /// Forward `after` more bytes going `direction`, then hold that
    /// direction of the connection carrying the next one for `pause`.
    Stall {
        /// The way that stalls.
        direction: Direction,
        /// Bytes forwarded before the stall.
        after: u64,
        /// How long nothing more is forwarded that way.
        pause: Duration,
    },
    /// On the next new connection: read one HTTP/1.1 request (head and
    /// body), answer it with `status` and `Connection: close` without
    /// contacting the server, and close the connection.
    Respond {
        /// The status sent, such as 500 or 503.
        status: u16,
    },
}

#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    faults: AtomicU64,
    upstream: AtomicU64,
    downstream: AtomicU64,
    events: Mutex<Vec<String>>,
}

impl Stats {
    fn injected(&self, conn: u64, what: String) {
        self.faults.fetch_add(1, Ordering::SeqCst);
        self.events.lock().unwrap().push(format!("connection {conn}: {what}"));
    }
}

/// The faults still to inject; the front one is armed.
#[derive(Default)]
struct Plan {
    faults: VecDeque<Fault>,
    /// Bytes each way (upstream, downstream) since the front was armed.
    seen: [u64; 2],
}

impl Plan {
    fn advance(&mut self) {
        self.faults.pop_front();
        self.seen = [0, 0];
    }

    /// What a new connection does: `Some(status)` to answer with it.
    fn on_connect(&mut self) -> Option<u16> {
        match self.faults.front() {
            Some(Fault::Respond { status }) => {
                let status = *status;
                self.advance();
                Some(status)
            }
            Some(Fault::Pass) => {
                self.advance();
                None
            }
            _ => None,
        }
    }

    /// `n` bytes are about to go `direction`: whether a fault strikes after
    /// the first `head` of them, and which.
    fn on_bytes(&mut self, direction: Direction, n: u64) -> Option<(u64, Action)> {
        let d = direction as usize;
        let (way, after, action) = match self.faults.front() {
            Some(Fault::Reset { direction, after }) => (*direction, *after, Action::Reset),
            Some(Fault::Stall {
                direction,
                after,
                pause,
            }) => (*direction, *after, Action::Stall(*pause)),
            _ => (direction, u64::MAX, Action::Reset),
        };
        if way != direction || self.seen[d] + n < after {
            self.seen[d] += n;
            return None;
        }
        let head = after.saturating_sub(self.seen[d]);
        self.advance();
        self.seen[d] = n - head;
        Some((head, action))
    }
}

/// The running proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`
    /// (`host:port` or `http://host:port`); connection `i` gets `plan[i]`.
    pub async fn start(upstream: &str, plan: impl IntoIterator<Item = Fault>) -> std::io::Result<FaultProxy> {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let plan = Arc::new(Mutex::new(Plan {
            faults: plan.into_iter().collect(),
            seen: [0, 0],
        }));
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept(listener, upstream, plan.clone(), stats.clone()));
        Ok(FaultProxy {
            addr,
            plan,
            stats,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint and the grant to give an adapter.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends a fault to the plan. Pushed onto an empty plan, it is armed
    /// now: its byte count starts from here.
    pub fn push(&self, fault: Fault) {
        let mut plan = self.plan.lock().unwrap();
        if plan.faults.is_empty() {
            plan.seen = [0, 0];
        }
        plan.faults.push_back(fault);
    }

    /// Faults of the plan not injected yet.
    pub fn pending(&self) -> usize {
        self.plan.lock().unwrap().faults.len()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.stats.faults.load(Ordering::SeqCst)
    }

    /// Bytes forwarded `direction` so far, over all connections. Running an
    /// operation through a fault-free proxy measures its exchange, to aim a
    /// later fault at a byte of it.
    pub fn bytes(&self, direction: Direction) -> u64 {
        match direction {
            Direction::Upstream => self.stats.upstream.load(Ordering::SeqCst),
            Direction::Downstream => self.stats.downstream.load(Ordering::SeqCst),
        }
    }

    /// What was injected, one line per fault, for assertion messages.
    pub fn events(&self) -> Vec<String> {
        self.stats.events.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): aborting
        // it aborts them all.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, upstream: String, plan: Arc<Mutex<Plan>>, stats: Arc<Stats>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let client = match accepted {
                    Ok((client, _)) => client,
                    Err(_) => {
                        // Out of descriptors or an aborted handshake: pause
                        // rather than spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let conn = stats.connections.fetch_add(1, Ordering::SeqCst);
                let respond = plan.lock().unwrap().on_connect();
                let (plan, stats) = (plan.clone(), stats.clone());
                conns.spawn(serve(client, upstream.clone(), conn, respond, plan, stats));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// What a fault does once its byte is reached.
#[derive(Clone, Copy)]
enum Action {
    Reset,
    Stall(Duration),
}

/// How one direction of a connection ended.
enum End {
    /// The sender closed its side; the close was passed on.
    Eof,
    /// The proxy reset the connection.
    Reset,
    /// A read or write failed.
    Broken,
}

async fn serve(
    client: TcpStream,
    upstream: String,
    conn: u64,
    respond_with: Option<u16>,
    plan: Arc<Mutex<Plan>>,
    stats: Arc<Stats>,
) {
    if let Some(status) = respond_with {
        let _ = tokio::time::timeout(Duration::from_secs(60), respond(client, status, conn, &stats)).await;
        return;
    }
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let link = Link {
        conn,
        plan: &plan,
        stats: &stats,
    };
    let up = pump(cr, sw, Direction::Upstream, link);
    let down = pump(sr, cw, Direction::Downstream, link);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
        };
        match end {
            End::Eof => {}
            // Returning drops every half: a reset goes out as RST (zero
            // linger was set), a broken side closes the other.
            End::Reset | End::Broken => return,
        }
    }
}

/// What both directions of a connection share.
#[derive(Clone, Copy)]
struct Link<'a> {
    conn: u64,
    plan: &'a Mutex<Plan>,
    stats: &'a Stats,
}

/// Copies `from` to `to`, striking when the plan says so.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, direction: Direction, link: Link<'_>) -> End {
    let mut buf = vec![0u8; 64 << 10];
    let mut passed = 0u64;
    let counter = match direction {
        Direction::Upstream => &link.stats.upstream,
        Direction::Downstream => &link.stats.downstream,
    };
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Eof;
            }
            Ok(n) => n,
            Err(_) => return End::Broken,
        };
        let mut chunk = &buf[..n];
        let strike = link.plan.lock().unwrap().on_bytes(direction, n as u64);
        if let Some((head, action)) = strike {
            let head = usize::try_from(head).expect("within one buffer");
            if to.write_all(&chunk[..head]).await.is_err() {
                return End::Broken;
            }
            counter.fetch_add(head as u64, Ordering::SeqCst);
            passed += head as u64;
            chunk = &chunk[head..];
            let at = format!("{direction:?} after {passed} bytes of this connection");
            match action {
                Action::Reset => {
                    let _ = from.as_ref().set_zero_linger();
                    let _ = to.as_ref().set_zero_linger();
                    link.stats.injected(link.conn, format!("reset {at}"));
                    return End::Reset;
                }
                Action::Stall(pause) => {
                    link.stats.injected(link.conn, format!("stalled {pause:?} {at}"));
                    tokio::time::sleep(pause).await;
                }
            }
        }
        if to.write_all(chunk).await.is_err() {
            return End::Broken;
        }
        counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        passed += chunk.len() as u64;
    }
}

/// Answers one request with `status` and closes, the server untouched.
async fn respond(mut client: TcpStream, status: u16, conn: u64, stats: &Stats) -> std::io::Result<()> {
    let (head, rest) = read_head(&mut client).await?;
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let (mut length, mut chunked, mut expect_continue) = (0u64, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "expect" => expect_continue = value == "100-continue",
            _ => {}
        }
    }
    // Take the body off the wire first (unless the client waits for a 100
    // it will never get): closing with unread bytes would send an RST that
    // can destroy the answer before the client reads it.
    if !expect_continue {
        let mut body = BufReader::new((&rest[..]).chain(&mut client));
        if chunked {
            drain_chunked(&mut body).await?;
        } else {
            tokio::io::copy(&mut (&mut body).take(length), &mut tokio::io::sink()).await?;
        }
    }
    let reason = match status {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected Fault",
    };
    let body = if request_line.starts_with("HEAD ") {
        String::new()
    } else {
        format!("fault proxy: injected {status}\n")
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    // Counted before the client can see it, so a test that got the answer
    // finds it counted.
    stats.injected(conn, format!("answered `{request_line}` with {status}"));
    client.write_all(answer.as_bytes()).await?;
    client.shutdown().await?;
    // Wait for the client to close its side, so the close stays orderly.
    let mut sink = [0u8; 4096];
    while client.read(&mut sink).await? > 0 {}
    Ok(())
}

/// Reads up to the end of an HTTP head; the head and any bytes after it.
async fn read_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Ok((data, rest));
        }
        if data.len() > 64 << 10 {
            return Err(std::io::Error::other("request head over 64 KiB"));
        }
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// Reads a chunked body to its end.
async fn drain_chunked(body: &mut (impl AsyncRead + AsyncBufReadExt + Unpin)) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if body.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size, 16).map_err(std::io::Error::other)?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if body.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                    return Ok(());
                }
            }
        }
        tokio::io::copy(&mut (&mut *body).take(size + 2), &mut tokio::io::sink()).await?;
    }
}
