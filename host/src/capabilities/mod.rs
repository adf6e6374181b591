//! What an adapter may touch: deny by default, grant by configuration.
//!
//! Each grant is checked at the point of use: directories are preopened (no
//! other path exists for the guest), HTTP requests are checked against
//! [`HttpGrant`] in the `send_request` hook, TCP connections against
//! [`TcpGrant`] in the socket address check.

mod fs;
mod http;
mod proxy;
mod redact;
mod stderr;
mod tcp;
mod tls;

pub use fs::DirGrant;
pub(crate) use http::ExchangeError;
pub use http::{AllowedHost, HttpClient, HttpGrant};
pub use redact::Redactor;
pub(crate) use stderr::GuestLog;
pub use tcp::TcpGrant;
pub use tls::{Negotiate, TlsTarget, Verify};

/// Everything one backend is granted.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Directories, preopened at their guest paths.
    pub dirs: Vec<DirGrant>,
    /// Outgoing HTTP destinations.
    pub http: Vec<AllowedHost>,
    /// TCP addresses the adapter may connect to.
    pub tcp: TcpGrant,
}
