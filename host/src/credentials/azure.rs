//! Microsoft Entra ID access tokens for the Azure Blob adapter's `token`,
//! from the sources `DefaultAzureCredential` tries first: a service
//! principal proven by a client secret or by workload identity (a federated
//! token file, AKS), both at the Entra token endpoint (OAuth 2.0 client credentials,
//! "Microsoft identity platform and the OAuth 2.0 client credentials
//! flow"), and managed identity: App Service / Container Apps / Functions
//! (`IDENTITY_ENDPOINT` with `IDENTITY_HEADER`) or the instance metadata
//! service (IMDS, VMs and AKS nodes). Written on the host's HTTP client as
//! the other exchanges are; `azure_identity` would bring its own.

use super::{Credentials, Source, oauth_answer, post_form, send};
use crate::capabilities::HttpClient;
use crate::error::{Error, ErrorKind, Result};
use std::path::PathBuf;
use std::time::Duration;

/// The public cloud's authority when `AZURE_AUTHORITY_HOST` names none.
pub(crate) const AUTHORITY: &str = "https://login.microsoftonline.com";
/// The instance metadata service's address.
pub(crate) const IMDS: &str = "http://169.254.169.254";
/// What the token is for: Azure Storage, all of its data-plane scopes.
const SCOPE: &str = "https://storage.azure.com/.default";
/// The same as a v1 `resource` (managed identity endpoints).
const RESOURCE: &str = "https://storage.azure.com";
/// Adapter config key the token goes to.
const KEY: &str = "token";

/// `AZURE_TENANT_ID`: a GUID or a domain name, nothing that could change
/// the token endpoint's path.
pub(crate) fn check_tenant(tenant: &str) -> std::result::Result<(), String> {
    if !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !tenant.starts_with('.')
    {
        Ok(())
    } else {
        Err(format!("AZURE_TENANT_ID `{tenant}` is not a tenant ID or domain"))
    }
}

/// The v2.0 token endpoint of `tenant` under `authority`.
fn token_url(authority: &str, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'))
}

/// A service principal at the Entra token endpoint (`AZURE_TENANT_ID`,
/// `AZURE_CLIENT_ID`), proving itself with [`Proof`].
pub(crate) struct ServicePrincipal {
    pub tenant: String,
    pub client_id: String,
    pub proof: Proof,
    pub authority: String,
}

/// How a [`ServicePrincipal`] proves who it is.
pub(crate) enum Proof {
    /// `AZURE_CLIENT_SECRET`.
    Secret(String),
    /// Workload identity: the token Kubernetes projects into the pod
    /// (`AZURE_FEDERATED_TOKEN_FILE`, rotated by the kubelet, so read at
    /// every exchange), sent as a client assertion.
    TokenFile(PathBuf),
}

impl ServicePrincipal {
    /// The federated token, read now; the error names the file.
    async fn assertion(file: &std::path::Path) -> Result<String> {
        let assertion = tokio::fs::read_to_string(file).await.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ErrorKind::Denied
            } else {
                ErrorKind::Config
            };
            Error::new(kind, format!("the token file {}: {e}", file.display()))
        })?;
        let assertion = assertion.trim();
        if assertion.is_empty() {
            return Err(Error::config(format!("the token file {} is empty", file.display())));
        }
        Ok(assertion.to_string())
    }
}

#[async_trait::async_trait]
impl Source for ServicePrincipal {
    fn describe(&self) -> String {
        let (client, tenant) = (&self.client_id, &self.tenant);
        match &self.proof {
            Proof::Secret(_) => format!("Entra ID client secret of client `{client}` in tenant `{tenant}`"),
            Proof::TokenFile(f) => format!(
                "Entra ID workload identity of client `{client}` in tenant `{tenant}` (token file {})",
                f.display()
            ),
        }
    }
    fn endpoints(&self) -> Vec<String> {
        vec![token_url(&self.authority, &self.tenant)]
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let assertion;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", SCOPE),
        ];
        match &self.proof {
            Proof::Secret(secret) => form.push(("client_secret", secret)),
            Proof::TokenFile(file) => {
                assertion = Self::assertion(file).await?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
                form.push(("client_assertion", &assertion));
            }
        }
        let url = token_url(&self.authority, &self.tenant);
        post_form(http, &url, &format!("the Entra ID token endpoint {url}"), KEY, &form).await
    }
}

/// Managed identity: the system-assigned one, or the user-assigned one
/// `client_id` names (`AZURE_CLIENT_ID`, as `DefaultAzureCredential`).
pub(crate) enum ManagedIdentity {
    /// The instance metadata service (`GET
    /// /metadata/identity/oauth2/token`, API 2018-02-01, `Metadata: true`).
    /// `base`: [`IMDS`], or `AZURE_POD_IDENTITY_AUTHORITY_HOST`'s.
    Imds { base: String, client_id: Option<String> },
    /// App Service, Functions and Container Apps: `IDENTITY_ENDPOINT`
    /// (API 2019-08-01), authorized by `IDENTITY_HEADER`.
    AppService {
        endpoint: String,
        header: String,
        client_id: Option<String>,
    },
}

#[async_trait::async_trait]
impl Source for ManagedIdentity {
    fn describe(&self) -> String {
        let (what, at, client) = match self {
            ManagedIdentity::Imds { base, client_id } => ("the instance metadata service", base, client_id),
            ManagedIdentity::AppService {
                endpoint, client_id, ..
            } => ("the identity endpoint", endpoint, client_id),
        };
        match client {
            Some(c) => format!("managed identity `{c}` from {what} at {at}"),
            None => format!("managed identity from {what} at {at}"),
        }
    }
    fn endpoints(&self) -> Vec<String> {
        match self {
            ManagedIdentity::Imds { base, .. } => vec![base.clone()],
            ManagedIdentity::AppService { endpoint, .. } => vec![endpoint.clone()],
        }
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Credentials> {
        let (url, header, client_id, what) = match self {
            ManagedIdentity::Imds { base, client_id } => (
                format!(
                    "{}/metadata/identity/oauth2/token?api-version=2018-02-01",
                    base.trim_end_matches('/')
                ),
                ("metadata", "true".to_string()),
                client_id,
                format!("the instance metadata service at {base}"),
            ),
            ManagedIdentity::AppService {
                endpoint,
                header,
                client_id,
            } => (
                format!("{endpoint}?api-version=2019-08-01"),
                ("x-identity-header", header.clone()),
                client_id,
                format!("the identity endpoint {endpoint}"),
            ),
        };
        let mut url = url::Url::parse(&url).map_err(|e| Error::config(format!("{what}: {e}")))?;
        url.query_pairs_mut().append_pair("resource", RESOURCE);
        if let Some(c) = client_id {
            url.query_pairs_mut().append_pair("client_id", c);
        }
        let request = http::Request::get(url.as_str())
            .header(header.0, header.1)
            .body(bytes::Bytes::new())
            .map_err(|e| Error::config(format!("{what}: {e}")))?;
        let (status, _, answer) = send(http, request, &what, Duration::from_secs(5)).await.map_err(|e| {
            if e.kind() == ErrorKind::Unreachable && matches!(self, ManagedIdentity::Imds { .. }) {
                Error::new(
                    ErrorKind::Unreachable,
                    format!(
                        "{} (not on Azure? set AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN, or AZURE_TENANT_ID with AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE)",
                        e.message()
                    ),
                )
            } else {
                e
            }
        })?;
        oauth_answer(&what, status, &answer, KEY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_cannot_change_the_path() {
        for good in [
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "contoso.onmicrosoft.com",
            "organizations",
        ] {
            assert!(check_tenant(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "../x", "a?b", ".hidden", "a b"] {
            assert!(check_tenant(bad).is_err(), "{bad}");
        }
        assert_eq!(
            token_url("https://login.microsoftonline.com/", "t"),
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
        );
    }

    #[test]
    fn token_answers_in_either_shape() {
        let ok = http::StatusCode::OK;
        // The v2.0 endpoint: `expires_in` a number.
        let c = oauth_answer("x", ok, br#"{"access_token":"t1","expires_in":3599}"#, KEY).unwrap();
        let left = c.expires.unwrap().duration_since(std::time::SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(3590) && left <= Duration::from_secs(3599));
        // IMDS: strings.
        let c = oauth_answer(
            "x",
            ok,
            br#"{"access_token":"t2","expires_in":"600","expires_on":"1"}"#,
            KEY,
        )
        .unwrap();
        assert!(c.expires.unwrap() > std::time::SystemTime::now());
        // App Service: `expires_on` only, seconds since the epoch.
        let c = oauth_answer("x", ok, br#"{"access_token":"t3","expires_on":"2000000000"}"#, KEY).unwrap();
        assert_eq!(
            c.expires,
            Some(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(c.values, vec![("token".to_string(), "t3".to_string())]);
        // A number past the clock's range is refused, not a panic.
        for bad in [
            &br#"{"access_token":"t","expires_in":18446744073709551615}"#[..],
            br#"{"access_token":"t","expires_on":"18446744073709551615"}"#,
        ] {
            let e = oauth_answer("x", ok, bad, KEY).err().unwrap();
            assert!(e.message().contains("out of range"), "{}", e.message());
        }
        // Entra's refusal: the first line of its description, `denied`.
        let e = oauth_answer(
            "the endpoint",
            http::StatusCode::UNAUTHORIZED,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"}"#,
            KEY,
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert!(
            e.message()
                .ends_with("invalid_client: AADSTS7000215: Invalid client secret provided."),
            "{}",
            e.message()
        );
    }
}
