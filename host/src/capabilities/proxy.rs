//! Adapters' HTTP requests through the proxy the environment names
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, either case, read
//! as curl reads them): the TCP connection under each request is either
//! direct or a `CONNECT` tunnel through the proxy, and TLS to the
//! destination runs inside it, so the proxy sees host names, never bytes.
//! Plain `http://` destinations go through a tunnel too (most proxies
//! allow that; absolute-form forwarding is not used).
//!
//! The grants apply to the destination, as without a proxy; the proxy is
//! the host's own choice and no grant of the adapter's.

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the message of a connection that failed at the proxy starts.
pub(crate) const FAILED_AT_PROXY: &str = "through the proxy";

/// A TCP connector that tunnels through the environment's proxy where it
/// applies.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    matcher: Arc<Matcher>,
}

impl ProxyConnector {
    /// `direct` connects to the destination or to the proxy.
    pub(crate) fn new(direct: HttpConnector, matcher: Matcher) -> Self {
        ProxyConnector {
            direct,
            matcher: Arc::new(matcher),
        }
    }

    /// The proxy the environment names (for the log), with any user and
    /// password left out.
    pub(crate) fn describe(matcher: &Matcher) -> Option<String> {
        let probe = |s: &str| {
            let uri: Uri = s.parse().ok()?;
            let i = matcher.intercept(&uri)?;
            Some(format!(
                "{}://{}",
                i.uri().scheme_str().unwrap_or("http"),
                i.uri()
                    .authority()
                    .map_or("?", |a| a.as_str().rsplit('@').next().unwrap_or("?"))
            ))
        };
        probe("https://example.invalid").or_else(|| probe("http://example.invalid"))
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.matcher.intercept(&dst) {
            None => {
                let fut = self.direct.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                // `Tunnel` defaults a missing port to 443: name it.
                let dst = with_port(dst);
                let proxy_at = proxy.uri().authority().map(|a| a.host().to_string());
                Box::pin(async move {
                    tunnel.call(dst).await.map_err(|e| -> BoxError {
                        format!("{FAILED_AT_PROXY} {}: {e}", proxy_at.as_deref().unwrap_or("?")).into()
                    })
                })
            }
        }
    }
}

/// `dst` with its scheme's default port written out.
fn with_port(dst: Uri) -> Uri {
    if dst.port().is_some() {
        return dst;
    }
    let port = if dst.scheme_str() == Some("https") { 443 } else { 80 };
    let Some(host) = dst.host() else { return dst };
    let authority = format!("{host}:{port}");
    let mut parts = dst.clone().into_parts();
    match authority.parse() {
        Ok(a) => {
            parts.authority = Some(a);
            Uri::from_parts(parts).unwrap_or(dst)
        }
        Err(_) => dst,
    }
}
