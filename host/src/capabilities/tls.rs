//! TLS for TCP grants, terminated by the host.
//!
//! A TLS grant names a peer (`host:port`), how its certificate is checked
//! and where the trusted roots come from. The host listens on a loopback
//! port of its own (the *relay*), and the adapter is granted that port, not
//! the peer: each connection the adapter makes is carried to the peer over
//! TLS that the host set up and checked, so the guest sees a plain stream
//! to exactly that peer and never holds a key, a root store or a TLS stack.
//! (The alternative, `wasi:tls` in the guest, is a draft whose wasmtime host
//! takes no custom roots, and every adapter would carry its own TLS client.)
//!
//! The relay serves only connections an adapter of its backend asked for:
//! the socket-address check hands out a ticket at each `connect` to the
//! relay, and a connection that arrives without one (another local process)
//! is closed unanswered.
//!
//! A handshake that fails is recorded, and the operation that saw its
//! connection close reports that failure instead (`denied` naming the check
//! that failed, `unreachable` when the peer refused the connection).

use crate::error::{Error, ErrorKind, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How the peer's certificate is checked (`full`, `chain`, `none`: libpq's
/// `verify-full`, `verify-ca` and `require`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// The chain to a trusted root, and the host name.
    #[default]
    Full,
    /// The chain only.
    Chain,
    /// Nothing: encryption against passive listeners only.
    #[serde(rename = "none")]
    Nothing,
}

impl Verify {
    /// The name used in `wharf.toml` and shown by `config show`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Full => "full",
            Verify::Chain => "chain",
            Verify::Nothing => "none",
        }
    }
}

/// What is spoken before the handshake.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Negotiate {
    #[default]
    /// TLS from the first byte (Redis).
    Direct,
    /// PostgreSQL's `SSLRequest`, answered `S`, then TLS.
    Postgres,
}

/// One TLS grant: `[[backends.<name>.grants.tls]]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTarget {
    /// `host:port` of the peer.
    pub address: String,
    /// How the certificate is checked (default `full`).
    #[serde(default)]
    pub verify: Verify,
    /// PEM file of trusted roots (relative to the config file); none: the
    /// system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// What precedes the handshake (default `direct`).
    #[serde(default)]
    pub negotiate: Negotiate,
}

/// A running relay: the loopback address the adapter is granted.
pub(crate) struct TlsRelay {
    target: TlsTarget,
    local: SocketAddr,
    server_name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
    backend: Arc<str>,
    /// `connect`s an adapter made that no accepted connection took yet.
    tickets: Mutex<VecDeque<Instant>>,
    /// The last failure: when, its kind and what it says.
    failure: Mutex<Option<(Instant, ErrorKind, String)>>,
    /// Stops the accept loop (and frees the port) when the relay goes.
    stop: Arc<tokio::sync::Notify>,
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        // A permit, if the loop is not waiting right now.
        self.stop.notify_one();
    }
}

/// How long a ticket waits for its connection.
const TICKET_LIFE: Duration = Duration::from_secs(10);
/// How long the peer has to accept the TCP connection and the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The relays' own runtime: they outlive any one caller's runtime (a test's,
/// an embedding program's) and cost one thread, made at the first relay.
fn relay_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wharf-tls-relay")
            .enable_all()
            .build()
            .expect("a tokio runtime for the TLS relays")
    })
}

impl TlsRelay {
    /// Checks the target, loads its roots and starts listening on a
    /// loopback port. Errors are `config` errors naming the grant.
    pub(crate) fn start(target: TlsTarget, backend: &str) -> Result<Arc<Self>> {
        let what = format!("TLS grant `{}`", target.address);
        let host = target
            .address
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .ok_or_else(|| Error::config(format!("{what}: not a host:port")))?;
        let server_name = ServerName::try_from(host)
            .map_err(|e| Error::config(format!("{what}: not a host name or address ({e})")))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&target, &what)?));
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| Error::io(format!("{what}: a loopback port for the relay"), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io(format!("{what}: the relay's address"), e))?;
        let relay = Arc::new(TlsRelay {
            target,
            local,
            server_name,
            connector,
            backend: backend.into(),
            tickets: Mutex::new(VecDeque::new()),
            failure: Mutex::new(None),
            stop: Arc::new(tokio::sync::Notify::new()),
        });
        let weak = Arc::downgrade(&relay);
        relay_runtime().spawn(accept_loop(listener, weak, relay.stop.clone()));
        Ok(relay)
    }

    /// The loopback address the adapter connects to.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }

    /// The grant as configured.
    pub(crate) fn target(&self) -> &TlsTarget {
        &self.target
    }

    /// An adapter is about to connect.
    pub(crate) fn expect(&self) {
        let mut t = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while t.front().is_some_and(|at| now.duration_since(*at) > TICKET_LIFE) {
            t.pop_front();
        }
        // Bounded: a guest looping on connect cannot grow it without end.
        if t.len() < 1024 {
            t.push_back(now);
        }
    }

    fn take_ticket(&self) -> bool {
        let mut t = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some(at) = t.pop_front() {
            if now.duration_since(at) <= TICKET_LIFE {
                return true;
            }
        }
        false
    }

    /// The failure recorded since `since`, if any.
    pub(crate) fn failure_since(&self, since: Instant) -> Option<(ErrorKind, String)> {
        let f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        f.as_ref()
            .filter(|(at, _, _)| *at >= since)
            .map(|(_, kind, why)| (*kind, why.clone()))
    }

    fn record(&self, kind: ErrorKind, why: String) {
        tracing::warn!(backend = %self.backend, "{why}");
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), kind, why));
    }

    async fn serve(self: Arc<Self>, guest: TcpStream) {
        let peer = match self.connect().await {
            Ok(peer) => peer,
            Err((kind, why)) => {
                return self.record(kind, format!("TLS to {}: {why}", self.target.address));
            }
        };
        let (mut guest, mut peer) = (guest, peer);
        // Either side closing ends both; errors here are the connection's
        // own (the guest sees them as a closed stream).
        let _ = tokio::io::copy_bidirectional(&mut guest, &mut peer).await;
    }

    async fn connect(&self) -> std::result::Result<tokio_rustls::client::TlsStream<TcpStream>, (ErrorKind, String)> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.target.address))
            .await
            .map_err(|_| {
                (
                    ErrorKind::Unreachable,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                )
            })?
            .map_err(|e| (ErrorKind::Unreachable, format!("no connection ({e})")))?;
        let _ = tcp.set_nodelay(true);
        tokio::time::timeout(CONNECT_TIMEOUT, self.handshake(tcp))
            .await
            .map_err(|_| {
                (
                    ErrorKind::Transient,
                    format!(
                        "connected, but no TLS handshake within {CONNECT_TIMEOUT:?} (does the peer speak TLS on this port?)"
                    ),
                )
            })?
    }

    async fn handshake(
        &self,
        mut tcp: TcpStream,
    ) -> std::result::Result<tokio_rustls::client::TlsStream<TcpStream>, (ErrorKind, String)> {
        if self.target.negotiate == Negotiate::Postgres {
            // SSLRequest: length 8, code 80877103.
            tcp.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
                .await
                .map_err(|e| (ErrorKind::Transient, format!("sending SSLRequest: {e}")))?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer)
                .await
                .map_err(|e| (ErrorKind::Transient, format!("reading the answer to SSLRequest: {e}")))?;
            match answer[0] {
                b'S' => {}
                b'N' => {
                    return Err((
                        ErrorKind::Denied,
                        "the server does not accept TLS (it answered `N` to SSLRequest)".into(),
                    ));
                }
                other => {
                    return Err((
                        ErrorKind::Backend,
                        format!("the server answered SSLRequest with byte {other:#04x}, not `S` or `N`"),
                    ));
                }
            }
        }
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| describe_handshake(&e, &self.server_name, &self.target))
    }
}

async fn accept_loop(listener: std::net::TcpListener, relay: Weak<TlsRelay>, stop: Arc<tokio::sync::Notify>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            if let Some(r) = relay.upgrade() {
                r.record(ErrorKind::Io, format!("the TLS relay cannot listen: {e}"));
            }
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.notified() => return,
        };
        let Ok((guest, _)) = accepted else {
            // Out of descriptors, most likely: not a busy loop meanwhile.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // The backend is gone: so is its relay.
        let Some(r) = relay.upgrade() else { return };
        if !r.take_ticket() {
            tracing::warn!(
                backend = %r.backend,
                "a connection to the TLS relay for {} that no adapter made was closed",
                r.target.address
            );
            continue;
        }
        let _ = guest.set_nodelay(true);
        tokio::spawn(r.serve(guest));
    }
}

/// What failed in a handshake, named as the check that failed.
fn describe_handshake(e: &std::io::Error, name: &ServerName<'_>, target: &TlsTarget) -> (ErrorKind, String) {
    let roots = match &target.ca_file {
        Some(f) => format!("the CA file {}", f.display()),
        None => "the system's roots".to_string(),
    };
    let name = name.to_str();
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let check = match c {
                CertificateError::UnknownIssuer => format!("certificate check failed: not issued by {roots}"),
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                    format!("host name check failed: the certificate is not valid for `{name}`")
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "certificate check failed: expired".to_string()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "certificate check failed: not valid yet".to_string()
                }
                CertificateError::Revoked => "certificate check failed: revoked".to_string(),
                other => format!("certificate check failed: {other:?}"),
            };
            (ErrorKind::Denied, check)
        }
        Some(other) => (ErrorKind::Denied, format!("handshake failed: {other}")),
        None => (ErrorKind::Transient, format!("handshake failed: {e}")),
    }
}

fn client_config(target: &TlsTarget, what: &str) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("{what}: {e}")))?;
    let chain = match target.verify {
        Verify::Full => {
            let roots = roots(target.ca_file.as_deref(), what)?;
            return Ok(builder.with_root_certificates(roots).with_no_client_auth());
        }
        Verify::Chain => Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(target.ca_file.as_deref(), what)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::config(format!("{what}: {e}")))?,
        ),
        Verify::Nothing => None,
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Lenient { chain, provider }))
        .with_no_client_auth())
}

fn roots(ca_file: Option<&Path>, what: &str) -> Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| Error::config(format!("{what}: reading the CA file {}: {e}", path.display())))?;
            for c in certs {
                store.add(c).map_err(|e| {
                    Error::config(format!(
                        "{what}: a certificate in {} is not usable: {e}",
                        path.display()
                    ))
                })?;
            }
            if store.is_empty() {
                return Err(Error::config(format!(
                    "{what}: the CA file {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(Error::config(format!("{what}: no system roots found; name a CA file")));
            }
        }
    }
    Ok(store)
}

/// `verify = "chain"` (`chain` set): the chain must lead to a trusted
/// root, the name is not compared (PostgreSQL's `verify-ca`). `verify =
/// "none"` (no `chain`): any certificate. Either way the handshake's
/// signatures are checked, so the session is with whoever holds that
/// certificate's key.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn target(address: String) -> TlsTarget {
        TlsTarget {
            address,
            verify: Verify::Full,
            ca_file: None,
            negotiate: Negotiate::Postgres,
        }
    }

    /// A peer that counts connections and answers SSLRequest with `S`, then
    /// garbage instead of a ServerHello.
    fn peer() -> (String, std::sync::mpsc::Receiver<[u8; 8]>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for conn in l.incoming().take(4) {
                let mut c = conn.unwrap();
                let mut req = [0u8; 8];
                if c.read_exact(&mut req).is_ok() {
                    let _ = tx.send(req);
                    let _ = c.write_all(b"Snot a ServerHello at all, just bytes");
                }
            }
        });
        (addr, rx)
    }

    /// Closed without a byte: an orderly end or a reset (the relay drops a
    /// connection it never read from), not a read that timed out.
    fn assert_closed(c: &mut std::net::TcpStream) {
        match c.read(&mut [0u8; 1]) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the relay to close the connection, got {other:?}"),
        }
    }

    #[test]
    fn connections_no_adapter_asked_for_are_closed_unanswered() {
        let (addr, seen) = peer();
        let relay = TlsRelay::start(target(addr), "db").unwrap();
        // Nobody asked: the relay closes it and never calls the peer.
        let mut c = std::net::TcpStream::connect(relay.local()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_closed(&mut c);
        assert!(
            seen.recv_timeout(Duration::from_millis(300)).is_err(),
            "the peer was called"
        );
        // An adapter's connect (the socket check) lets one through: the peer
        // gets PostgreSQL's SSLRequest, then a ClientHello it cannot answer.
        let since = Instant::now();
        relay.expect();
        let mut c = std::net::TcpStream::connect(relay.local()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            seen.recv_timeout(Duration::from_secs(5)).unwrap(),
            [0, 0, 0, 8, 4, 210, 22, 47]
        );
        assert_closed(&mut c);
        let (kind, why) = relay.failure_since(since).expect("recorded");
        // Not TLS on the other side: refused like a failed check.
        assert_eq!(kind, ErrorKind::Denied, "{why}");
        assert!(
            why.starts_with("TLS to 127.0.0.1:") && why.contains("handshake failed"),
            "{why}"
        );
        // The ticket was used up.
        let mut c = std::net::TcpStream::connect(relay.local()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_closed(&mut c);
        assert!(seen.recv_timeout(Duration::from_millis(300)).is_err());
    }

    #[test]
    fn a_dropped_relay_frees_its_port() {
        let (addr, _seen) = peer();
        let relay = TlsRelay::start(target(addr), "db").unwrap();
        let local = relay.local();
        drop(relay);
        // The accept loop ends on the relay's own runtime: within 5 s.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            std::net::TcpStream::connect(local).is_err()
        });
        assert!(gone, "the relay still listens on {local}");
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_a_bad_ca_file_a_config_error() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = free.local_addr().unwrap().to_string();
        drop(free);
        let relay = TlsRelay::start(target(addr.clone()), "db").unwrap();
        let since = Instant::now();
        relay.expect();
        let mut c = std::net::TcpStream::connect(relay.local()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_closed(&mut c);
        let (kind, why) = relay.failure_since(since).unwrap();
        assert_eq!(kind, ErrorKind::Unreachable, "{why}");
        assert!(why.contains(&addr) && why.contains("no connection"), "{why}");

        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        for (ca, says) in [
            (not_pem, "holds no certificate"),
            (dir.path().join("missing.pem"), "reading the CA file"),
        ] {
            let t = TlsTarget {
                ca_file: Some(ca),
                ..target("db.example:5432".into())
            };
            let e = TlsRelay::start(t, "db").err().expect("refused");
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(
                e.message().contains(says) && e.message().contains("db.example:5432"),
                "{e}"
            );
        }
        assert!(TlsRelay::start(target("no-port".into()), "db").is_err());
    }
}
