//! Every layer at once, configured in `wharf.toml`, over a real server
//! adapter: `aws_s3` against s3s-fs (which checks every signature).

use wharf::conformance::{self, SuiteOptions};
use wharf::layers::AgeIdentity;
use wharf::{ErrorKind, ObjectPath};
use wharf_tests::{assert_only_races_lost, read_hash, server_env, unique, write_stream};

/// The age identity named `old` or `new` (fixed: every host of a test
/// holds the same two).
fn identity(name: &str) -> AgeIdentity {
    AgeIdentity::from_bytes([if name == "old" { 0x0f } else { 0xa1 }; 32])
}

/// A host with backend `s3` (plain) and `stack` (the same bucket and
/// prefix through every layer, encrypting to `write_key`'s recipient and
/// reading with both identities).
fn host(prefix: &str, base: &std::path::Path, write_key: &str) -> wharf::Host {
    let url = server_env("WHARF_TEST_S3S_URL");
    let s3 = format!(
        r#"
plugin = "aws_s3"
[backends.{{name}}.config]
endpoint = "{url}"
bucket = "{bucket}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
prefix = "{prefix}"
[backends.{{name}}.grants]
http = ["{url}"]
"#,
        bucket = server_env("WHARF_TEST_BUCKET"),
        ak = server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        sk = server_env("WHARF_TEST_S3S_SECRET_KEY"),
    );
    let toml = format!(
        r#"
[backends.s3]
{plain}
[backends.stack]
{layered}
[[backends.stack.layers]]
layer = "retry"
[[backends.stack.layers]]
layer = "timeout"
operation = "120s"
idle = "60s"
[[backends.stack.layers]]
layer = "concurrency_limit"
max = 8
[[backends.stack.layers]]
layer = "checksum"
[[backends.stack.layers]]
layer = "compression"
level = 3
[[backends.stack.layers]]
layer = "encryption"
recipients = ["{recipient}"]
identities = ["${{env:WHARF_TEST_AGE_OLD}}", "${{env:WHARF_TEST_AGE_NEW}}"]
[[backends.stack.layers]]
layer = "cache"
dir = "cache"
max_size = "512MiB"
"#,
        plain = s3.replace("{name}", "s3"),
        layered = s3.replace("{name}", "stack"),
        recipient = identity(write_key).recipient(),
    );
    // SAFETY: set before any thread reads them, same values every time.
    unsafe {
        std::env::set_var("WHARF_TEST_AGE_OLD", identity("old").to_secret_string());
        std::env::set_var("WHARF_TEST_AGE_NEW", identity("new").to_secret_string());
    }
    wharf_tests::host_from_toml(&toml, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_every_layer_on_s3s() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&unique("full-stack"), dir.path(), "new");
    let report = conformance::run(
        host.adapter("stack").await.unwrap(),
        SuiteOptions {
            large_object: 256 << 20,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    println!("{report}");
    // s3s-fs stores a conditional PUT in two steps: racing writers may all win.
    assert_only_races_lost(&report);
    // s3s-fs has no ListMultipartUploads: the one case that does not apply.
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );
}

/// What the server holds is ciphertext of the compressed bytes; a key
/// rotation reads old objects; the plain backend sees no plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_holds_ciphertext_and_keys_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("full-stack-rotate");
    let old = host(&prefix, dir.path(), "old");
    let stack = old.adapter("stack").await.unwrap();
    let path = ObjectPath::parse("m/weights.bin").unwrap();
    let (want, meta) = write_stream(&*stack, &path, 40 << 20, 11).await;
    assert_eq!(meta.size, 40 << 20);
    let stored = meta.stored_size.expect("layers report the stored size");

    let plain = old.adapter("s3").await.unwrap();
    let raw = plain.stat(&path).await.unwrap();
    assert_eq!(raw.size, stored);
    let mut r = plain
        .read(
            &path,
            Some(wharf::ByteRange {
                start: 0,
                end: Some(22),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        &r.next_chunk(22).await.unwrap().unwrap()[..],
        b"age-encryption.org/v1\n"
    );

    // Rotated: new objects with `new`, the old one still readable.
    let rotated = host(&prefix, dir.path(), "new");
    let stack2 = rotated.adapter("stack").await.unwrap();
    assert_eq!(read_hash(&*stack2, &path).await, want);
    let path2 = ObjectPath::parse("m/weights2.bin").unwrap();
    let (want2, _) = write_stream(&*stack2, &path2, 3 << 20, 12).await;
    assert_eq!(
        read_hash(&*stack, &path2).await,
        want2,
        "the old host holds both keys too"
    );

    // Tampering on the server is caught, never returned.
    let mut w = plain.write(&path2, wharf::PutMode::Overwrite, None).await.unwrap();
    let mut bytes = Vec::new();
    let mut r = plain.read(&path2, None).await.unwrap();
    while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
        bytes.extend_from_slice(&c);
    }
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    w.append(bytes.into()).await.unwrap();
    w.finish().await.unwrap();
    // Caught when the read opens (the compression layer reads its seek
    // table first) or at the chunk, never read to the end.
    let e = match stack2.read(&path2, None).await {
        Err(e) => e,
        Ok(mut r) => loop {
            match r.next_chunk(1 << 20).await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a tampered object was read to the end"),
                Err(e) => break e,
            }
        },
    };
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
}
