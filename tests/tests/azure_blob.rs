//! The `azure_blob` adapter against Azurite on 127.0.0.1 (which verifies
//! Shared Key signatures and SAS tokens). scripts/servers.sh starts it.

use std::sync::Arc;
use wharf::conformance::{self, DataStream};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{python_client, read_hash, server_env, unique, write_stream};

/// The container `scripts/servers.sh` creates.
fn container() -> String {
    server_env("WHARF_TEST_BUCKET")
}

fn url() -> String {
    server_env("WHARF_TEST_AZURITE_URL")
}

fn account() -> String {
    server_env("WHARF_TEST_AZURITE_ACCOUNT")
}

/// `http://127.0.0.1:<port>`: what the backend's grant must allow.
fn origin() -> String {
    let url = url();
    let after_scheme = url.trim_start_matches("http://");
    let authority = after_scheme.split('/').next().unwrap();
    format!("http://{authority}")
}

/// A host with one backend `az` on Azurite. `credential` is the config line
/// with the key or token; `extra` adds config lines.
fn host(credential: &str, prefix: &str, grant: &str, extra: &str) -> wharf::Host {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.az]
plugin = "azure_blob"
[backends.az.config]
endpoint = "{endpoint}"
account = "{account}"
container = "{container}"
{credential}
prefix = "{prefix}"
{extra}
[backends.az.grants]
http = ["{grant}"]
"#,
        endpoint = url(),
        account = account(),
        container = container(),
    );
    wharf_tests::host_from_toml(&toml, dir.path())
}

const KEY_FROM_ENV: &str = r#"account_key = "${env:WHARF_TEST_AZURITE_KEY}""#;

async fn adapter(prefix: &str, extra: &str) -> Arc<dyn Adapter> {
    host(KEY_FROM_ENV, prefix, &origin(), extra)
        .adapter("az")
        .await
        .unwrap()
}

/// Runs the azure-storage-blob client script; its stdout.
fn azure_sdk(args: &[&str]) -> String {
    let env = [
        ("WHARF_AZ_URL", url()),
        ("WHARF_AZ_ACCOUNT", account()),
        ("WHARF_AZ_KEY", server_env("WHARF_TEST_AZURITE_KEY")),
        ("WHARF_AZ_CONTAINER", container()),
    ];
    python_client("azure_blob.py", args, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let adapter = adapter(&unique("conformance"), "").await;
    let report = conformance::run(adapter, wharf_tests::suite_options()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // Every case applies but pending uploads (Azure discards uncommitted blocks itself).
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );
}

/// What wharf writes (in 4 MiB blocks), azure-storage-blob reads byte for
/// byte, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_client() {
    let prefix = unique("cross");
    let adapter = adapter(&prefix, r#"block_size = "4MiB""#).await;
    let path = ObjectPath::parse("by-wharf/model.bin").unwrap();
    let (written, meta) = write_stream(&*adapter, &path, (20 << 20) + 123, 7).await;
    assert_eq!(meta.size, (20 << 20) + 123);
    assert_eq!(azure_sdk(&["get", &format!("{prefix}by-wharf/model.bin")]), written);
    // Five 4 MiB blocks and a short one, all committed.
    assert_eq!(azure_sdk(&["blocks", &format!("{prefix}by-wharf/model.bin")]), "6 0");

    let uploaded = azure_sdk(&["put", &format!("{prefix}by-sdk/model.bin"), "18874371", "9"]);
    let path = ObjectPath::parse("by-sdk/model.bin").unwrap();
    assert_eq!(read_hash(&*adapter, &path).await, uploaded);
    let meta = adapter.stat(&path).await.unwrap();
    assert_eq!(meta.size, 18_874_371);
    // The etag a listing shows is the one stat shows.
    let page = adapter.list("by-sdk/", None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].etag, meta.etag);
    assert_eq!(page.entries[0].modified_ms, meta.modified_ms);
    for p in ["by-wharf/model.bin", "by-sdk/model.bin"] {
        adapter.delete(&ObjectPath::parse(p).unwrap()).await.unwrap();
    }
    assert_eq!(azure_sdk(&["count", &prefix]), "0");
}

/// Azurite verifies signatures: a wrong key is `denied`, and the message
/// names the account and never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_denied() {
    let wrong = "d3JvbmcgYnV0IHBlcmZlY3RseSB2YWxpZCBiYXNlNjQ=";
    let adapter = host(&format!("account_key = \"{wrong}\""), "denied/", &origin(), "")
        .adapter("az")
        .await
        .unwrap();
    let e = adapter.stat(&ObjectPath::parse("x").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let text = e.to_string();
    println!("{text}");
    assert!(
        text.contains(&format!("account `{}` with a shared key", account())),
        "{text}"
    );
    assert!(
        text.contains("AuthorizationFailure") || text.contains("AuthenticationFailed"),
        "{text}"
    );
    assert!(!text.contains(wrong), "the key leaked: {text}");
}

/// An endpoint the backend's grant does not cover is refused by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_not_granted_is_denied() {
    let adapter = host(KEY_FROM_ENV, "x/", "http://127.0.0.1:1", "")
        .adapter("az")
        .await
        .unwrap();
    let e = adapter.stat(&ObjectPath::parse("x").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants.http"), "{e}");
}

/// `abort()` of a block upload leaves nothing visible: the blocks sent stay
/// uncommitted, which stat, list and the official client do not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_upload_leaves_nothing() {
    let prefix = unique("abort");
    let adapter = adapter(&prefix, r#"block_size = "1MiB""#).await;
    let path = ObjectPath::parse("big.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(1, 3 << 20);
    while let Some(chunk) = data.next_chunk(1 << 20) {
        w.append(chunk).await.unwrap();
    }
    w.abort().await.unwrap();
    assert_eq!(adapter.stat(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert!(adapter.list("", None, 10).await.unwrap().entries.is_empty());
    assert_eq!(azure_sdk(&["exists", &format!("{prefix}big.bin")]), "no");
    assert_eq!(azure_sdk(&["count", &prefix]), "0");
}

/// A SAS token instead of the key: writes in blocks, reads, lists, copies
/// (the copy source carries the token) and deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sas_token_works() {
    let token = azure_sdk(&["sas"]);
    let prefix = unique("sas");
    let adapter = host(
        &format!("sas_token = \"{token}\""),
        &prefix,
        &origin(),
        r#"block_size = "1MiB""#,
    )
    .adapter("az")
    .await
    .unwrap();
    let path = ObjectPath::parse("m.bin").unwrap();
    let (written, meta) = write_stream(&*adapter, &path, (3 << 20) + 5, 3).await;
    assert_eq!(meta.size, (3 << 20) + 5);
    assert_eq!(read_hash(&*adapter, &path).await, written);
    let copy = ObjectPath::parse("copy.bin").unwrap();
    adapter.copy(&path, &copy, PutMode::Create).await.unwrap();
    assert_eq!(read_hash(&*adapter, &copy).await, written);
    let page = adapter.list("", None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    let health = adapter.health().await.unwrap();
    assert!(
        health.contains("with a SAS token") && !health.contains(&token),
        "{health}"
    );
    for p in [&path, &copy] {
        adapter.delete(p).await.unwrap();
    }
    assert!(adapter.list("", None, 10).await.unwrap().entries.is_empty());
}

/// Config mistakes are `invalid` and name the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    for (extra, needle) in [
        (r#"block_size = "1GiB""#, "block_size"),
        (r#"colour = "blue""#, "colour"),
        (r#"max_in_flight = "0""#, "max_in_flight"),
        (r#"sas_token = "sig=x""#, "sas_token"),
    ] {
        let e = host(KEY_FROM_ENV, "x/", &origin(), extra)
            .adapter("az")
            .await
            .err()
            .unwrap_or_else(|| panic!("{extra} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}
