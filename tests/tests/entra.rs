//! Microsoft Entra ID tokens for `az://` backends, which the host obtains
//! and renews: a client secret, workload identity (a federated token file)
//! and managed identity (the instance metadata service). The tokens come
//! from stand-ins of `wharf_tests::standin` (the Entra token endpoint and
//! Azure IMDS; no real one runs here) and are used against a real Azurite
//! that serves HTTPS with `--oauth basic`: it refuses a request without a
//! bearer token, or with one whose lifetime, issuer or audience is wrong,
//! so a round trip proves the token reached the adapter's requests.
//!
//! One test function: Azurite's certificate is signed by the test CA, which
//! the host's HTTP client trusts through `SSL_CERT_FILE` (as it would a
//! company CA), and a process's environment is set before any thread reads
//! it.

use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, Instant};
use wharf::{Adapter, ErrorKind, Host, ObjectPath, PutMode};
use wharf_tests::standin::{self, EntraApp};
use wharf_tests::{server_env, sleep_past, unique, url_host};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0a1b2c3d-trainer";
const SECRET: &str = "client-secret-value~not-to-be-shown";

/// A host with one backend from `url`, resolved in `vars` plus the
/// account and Azurite's HTTPS endpoint ([`url_host`]).
fn build(
    url: &str,
    vars: &[(&str, String)],
    home: &Path,
    edit: impl FnOnce(&mut wharf::config::BackendConfig),
) -> wharf::Result<(Host, String, tempfile::TempDir)> {
    let mut vars = vars.to_vec();
    vars.push(("AZURE_STORAGE_ACCOUNT", "devstoreaccount1".into()));
    vars.push(("AZURE_STORAGE_ENDPOINT", server_env("WHARF_TEST_AZURITE_OAUTH_URL")));
    url_host(url, &vars, home, edit)
}

fn az_url() -> String {
    format!("az://{}/{}", server_env("WHARF_TEST_BUCKET"), unique("entra"))
}

/// Writes an object, copies it (Copy Blob authorizes its source with the
/// token too), reads the copy back and deletes both.
async fn round_trip(adapter: &dyn Adapter, key: &str) -> wharf::Result<()> {
    let path = ObjectPath::parse(key).unwrap();
    let copy = ObjectPath::parse(&format!("{key}.copy")).unwrap();
    let body = Bytes::from(format!("model bytes of {key}").repeat(1000));
    let mut w = adapter
        .write(&path, PutMode::Overwrite, Some(body.len() as u64))
        .await?;
    w.append(body.clone()).await?;
    w.finish().await?;
    adapter.copy(&path, &copy, PutMode::Overwrite).await?;
    let mut r = adapter.read(&copy, None).await?;
    let mut back = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        back.extend_from_slice(&c);
    }
    assert!(back == body, "{key}: other bytes came back");
    adapter.delete(&copy).await?;
    adapter.delete(&path).await
}

fn app() -> EntraApp {
    EntraApp {
        tenant: TENANT.into(),
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
        federated_token: "eyJhbGciOiJSUzI1NiJ9.kubernetes-service-account.token".into(),
    }
}

#[test]
fn entra_id_tokens_against_azurite_with_oauth() {
    // SAFETY: the only test of this binary, before any thread is started.
    unsafe { std::env::set_var("SSL_CERT_FILE", server_env("WHARF_TEST_TLS_CA")) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        azurite_refuses_what_is_not_a_storage_token().await;
        client_secret_is_renewed_before_it_expires().await;
        a_wrong_secret_is_denied_without_showing_it().await;
        workload_identity_reads_the_token_file_at_each_exchange().await;
        managed_identity_from_the_instance_metadata_service().await;
        sources_wharf_does_not_resolve_are_refused_by_name();
    });
}

/// The proof that Azurite checks: no token, and a token that is not one,
/// are refused as `denied`.
async fn azurite_refuses_what_is_not_a_storage_token() {
    let home = tempfile::tempdir().unwrap();
    let (host, name, _dir) = build(&az_url(), &[], home.path(), |b| {
        // No exchange: a fixed `token` the adapter sends as it is.
        b.credentials = None;
        b.config
            .insert("token".into(), wharf::config::ConfigValue::Secret("not-a-jwt".into()));
    })
    .unwrap();
    let adapter = host.adapter(&name).await.unwrap();
    let e = round_trip(&*adapter, "m/a.bin").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(!e.to_string().contains("not-a-jwt"), "{e}");
}

async fn client_secret_is_renewed_before_it_expires() {
    let home = tempfile::tempdir().unwrap();
    let entra = standin::entra_token(app(), Duration::from_secs(4));
    let vars = [
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_CLIENT_SECRET", SECRET.to_string()),
        ("AZURE_AUTHORITY_HOST", entra.url()),
    ];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let backend = &host.config().backends[&name];
    // The adapter is granted Azurite only, not the token endpoint.
    assert_eq!(
        backend.grants.http,
        vec![
            server_env("WHARF_TEST_AZURITE_OAUTH_URL")
                .trim_end_matches("/devstoreaccount1")
                .to_string()
        ]
    );
    let p = backend.credentials.clone().expect("exchanged");
    assert!(
        p.describe().contains(CLIENT) && p.describe().contains(TENANT) && !p.describe().contains(SECRET),
        "{}",
        p.describe()
    );
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    assert_eq!(entra.issued(), 1, "one exchange per lifetime");
    // Renewed a quarter of the lifetime (1 s) before it expires.
    sleep_past(start, Duration::from_secs(3)).await;
    round_trip(&*adapter, "m/c.bin").await.unwrap();
    assert_eq!((entra.issued(), p.exchanges()), (2, 2));
}

async fn a_wrong_secret_is_denied_without_showing_it() {
    let home = tempfile::tempdir().unwrap();
    let entra = standin::entra_token(app(), Duration::from_secs(3600));
    let vars = [
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_CLIENT_SECRET", "wrong-secret-value".to_string()),
        ("AZURE_AUTHORITY_HOST", entra.url()),
    ];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("refused");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Denied, "{msg}");
    assert!(
        msg.contains(&format!("client `{CLIENT}`"))
            && msg.contains("invalid_client: AADSTS7000215: Invalid client secret provided.")
            && !msg.contains("Trace ID")
            && !msg.contains("wrong-secret-value"),
        "{msg}"
    );
    assert_eq!(entra.issued(), 0);
}

async fn workload_identity_reads_the_token_file_at_each_exchange() {
    let home = tempfile::tempdir().unwrap();
    let entra = standin::entra_token(app(), Duration::from_secs(4));
    let token_file = home.path().join("azure-identity-token");
    std::fs::write(&token_file, format!("{}\n", app().federated_token)).unwrap();
    let vars = [
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap().to_string()),
        ("AZURE_AUTHORITY_HOST", entra.url()),
    ];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let backend = &host.config().backends[&name];
    // The host reads the file: the adapter gets no directory grant.
    assert!(backend.grants.dirs.is_empty());
    let p = backend.credentials.clone().expect("exchanged");
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    assert_eq!(entra.issued(), 1);
    // The kubelet rotated the file to a token the federation does not
    // trust: the renewal is refused, naming the file's source.
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.some-other-token.sig").unwrap();
    sleep_past(start, Duration::from_secs(3)).await;
    let e = round_trip(&*adapter, "m/b.bin").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("AADSTS700211") && msg.contains(token_file.to_str().unwrap()) && !msg.contains("some-other-token"),
        "{msg}"
    );
    // Rotated back: the next exchange works.
    std::fs::write(&token_file, app().federated_token).unwrap();
    round_trip(&*adapter, "m/c.bin").await.unwrap();
    assert_eq!((entra.issued(), p.exchanges()), (2, 2));
}

async fn managed_identity_from_the_instance_metadata_service() {
    let home = tempfile::tempdir().unwrap();
    let imds = standin::azure_imds(TENANT, Some("user-assigned-id"), Duration::from_secs(4));
    let vars = [
        ("AZURE_CLIENT_ID", "user-assigned-id".to_string()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url()),
    ];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let p = host.config().backends[&name].credentials.clone().expect("exchanged");
    assert!(
        p.describe().contains("managed identity `user-assigned-id`"),
        "{}",
        p.describe()
    );
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    assert_eq!(imds.issued(), 1);
    sleep_past(start, Duration::from_secs(3)).await;
    round_trip(&*adapter, "m/c.bin").await.unwrap();
    assert_eq!((imds.issued(), p.exchanges()), (2, 2));

    // An identity the instance does not have: `denied`, with IMDS's words.
    let vars = [
        ("AZURE_CLIENT_ID", "another-id".to_string()),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url()),
    ];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("Identity not found"), "{e}");

    // Not on Azure (nothing listens): `unreachable`, saying what to set.
    let vars = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9".to_string())];
    let (host, name, _dir) = build(&az_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("unreachable");
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("not on Azure?"), "{e}");
}

fn sources_wharf_does_not_resolve_are_refused_by_name() {
    let home = tempfile::tempdir().unwrap();
    let vars = [
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT.to_string()),
        ("AZURE_CLIENT_CERTIFICATE_PATH", "/etc/ssl/private/sp.pem".to_string()),
    ];
    let e = build(&az_url(), &vars, home.path(), |_| {}).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("AZURE_CLIENT_CERTIFICATE_PATH"), "{e}");
}
