use super::tls::{TlsRelay, TlsTarget};
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

/// The TCP addresses an adapter may connect to. Listening, accepting and UDP
/// are never granted.
#[derive(Clone, Default)]
pub struct TcpGrant {
    allowed: Arc<HashSet<SocketAddr>>,
    names: Vec<String>,
    /// TLS grants: the adapter may connect to each relay's loopback
    /// address, never to the peer itself.
    relays: Arc<Vec<Arc<TlsRelay>>>,
}

impl std::fmt::Debug for TcpGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpGrant")
            .field("names", &self.names)
            .field(
                "tls",
                &self.relays.iter().map(|r| &r.target().address).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl TcpGrant {
    /// Resolves `host:port` entries once, when the backend is built.
    pub fn resolve(entries: &[String]) -> Result<Self> {
        let mut allowed = HashSet::new();
        for entry in entries {
            let addrs = entry
                .to_socket_addrs()
                .map_err(|e| Error::config(format!("TCP grant `{entry}` is not a resolvable host:port ({e})")))?;
            allowed.extend(addrs);
        }
        Ok(TcpGrant {
            allowed: Arc::new(allowed),
            names: entries.to_vec(),
            relays: Arc::default(),
        })
    }

    /// Starts a relay for each TLS target (see [`super::tls`]) and grants
    /// its loopback address.
    pub fn with_tls(mut self, targets: &[TlsTarget], backend: &str) -> Result<Self> {
        let mut relays: Vec<Arc<TlsRelay>> = self.relays.iter().cloned().collect();
        let mut allowed: HashSet<SocketAddr> = (*self.allowed).clone();
        for t in targets {
            let relay = TlsRelay::start(t.clone(), backend)?;
            allowed.insert(relay.local());
            relays.push(relay);
        }
        self.allowed = Arc::new(allowed);
        self.relays = Arc::new(relays);
        Ok(self)
    }

    /// Each TLS grant with the loopback address the adapter is given for it.
    pub fn tls(&self) -> impl Iterator<Item = (&TlsTarget, SocketAddr)> {
        self.relays.iter().map(|r| (r.target(), r.local()))
    }

    /// A TLS failure recorded since `since` (a call's start), which the
    /// adapter saw only as a closed connection.
    pub(crate) fn tls_failure_since(&self, since: std::time::Instant) -> Option<(ErrorKind, String)> {
        self.relays.iter().find_map(|r| r.failure_since(since))
    }

    /// Whether anything is granted.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The grant as configured.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the guest may look `name` up: only the host names of its
    /// grants and literal addresses it may connect to. Any other lookup
    /// would carry data out through the resolver.
    pub fn permits_name(&self, name: &str) -> bool {
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<std::net::IpAddr>() {
            return self.allowed.iter().any(|a| a.ip() == ip);
        }
        self.names.iter().any(|entry| {
            let host = entry.rsplit_once(':').map_or(entry.as_str(), |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(name.trim_end_matches('.'))
        })
    }

    pub(crate) fn permits(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        match use_ {
            SocketAddrUse::TcpConnect => {
                if let Some(r) = self.relays.iter().find(|r| r.local() == addr) {
                    r.expect();
                }
                self.allowed.contains(&addr)
            }
            // `connect` binds implicitly to the wildcard address first.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0 && !self.is_empty(),
            _ => false,
        }
    }
}
