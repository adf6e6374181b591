use crate::error::{Error, Result};
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

/// The TCP addresses an adapter may connect to. Listening, accepting and UDP
/// are never granted.
#[derive(Clone, Debug, Default)]
pub struct TcpGrant {
    allowed: Arc<HashSet<SocketAddr>>,
    names: Vec<String>,
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
        })
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
            SocketAddrUse::TcpConnect => self.allowed.contains(&addr),
            // `connect` binds implicitly to the wildcard address first.
            SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0 && !self.is_empty(),
            _ => false,
        }
    }
}
