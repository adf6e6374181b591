//! Shared helpers of wharf's integration tests.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wharf::conformance::DataStream;
use wharf::{Adapter, Config, Host, ObjectMeta, ObjectPath, PutMode};

pub mod fault_proxy;
pub mod standin;

/// Paths of the guest fixtures, built by build.rs.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

/// Whether the long mode runs (`WHARF_TEST_LONG=1 ./scripts/test.sh`, by
/// hand): 1 GiB large objects and the conformance suite's full listing
/// everywhere. The default (what CI runs) halves the large objects and
/// lists fewer keys through the example adapters (see [`suite_options`]).
fn long_mode() -> bool {
    std::env::var("WHARF_TEST_LONG").is_ok_and(|v| v == "1")
}

/// Options of a conformance run in the tests: the library's defaults, with
/// the large streamed round trip at [`large_object`]'s size.
pub fn suite_options() -> wharf::conformance::SuiteOptions {
    wharf::conformance::SuiteOptions {
        large_object: large_object(),
        ..Default::default()
    }
}

/// Options of a conformance run of an example adapter (Python, JavaScript):
/// [`suite_options`] with 500 keys in the listing case outside the long
/// mode, not 2,500. Each key is a write through an interpreted instance
/// (27 ms each for python-sqlite, 68 s of its 173 s suite alone); 500 keys
/// still make ten pages.
pub fn example_suite_options() -> wharf::conformance::SuiteOptions {
    wharf::conformance::SuiteOptions {
        list_keys: if long_mode() { 2500 } else { 500 },
        ..suite_options()
    }
}

/// The size of the tests' large streamed objects: 1 GiB in the long mode,
/// else 512 MiB. Both are over twice the default 256 MiB memory of an
/// adapter instance, so an adapter holding a whole object would trap.
fn large_object() -> u64 {
    if long_mode() { 1 << 30 } else { 512 << 20 }
}

/// A compiled-component cache shared by all test processes.
pub fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wharf-test-cache")
}

/// A host whose only backend is the built-in `local_filesystem` storing in `dir`.
pub fn local_host(dir: &Path) -> Host {
    let mut cfg = Config::local_default(dir);
    cfg.cache_dir = Some(cache_dir());
    Host::new(cfg, dir).expect("host builds")
}

/// The value of a variable `scripts/servers.sh start` exports (`scripts/test.sh`
/// sets them all). A missing server fails the test that needs it, loudly.
pub fn server_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with ./scripts/test.sh, which starts the test servers")
    })
}

/// A host built from `wharf.toml` text, using the shared compile cache.
/// Relative paths in the text resolve against `base`.
pub fn host_from_toml(toml: &str, base: &Path) -> Host {
    let mut cfg = Config::parse(toml, "test config").expect("test config parses");
    cfg.cache_dir = Some(cache_dir());
    Host::new(cfg, base).expect("host builds")
}

/// wharf.toml with one backend `b`: aws_s3 on the S3 server at `url` (the
/// test bucket) with these keys, under `prefix` (none if empty), granted
/// `url`; `extra` adds lines to its config table.
pub fn s3_toml(url: &str, access_key: &str, secret_key: &str, prefix: &str, extra: &str) -> String {
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("prefix = \"{prefix}\"\n")
    };
    format!(
        r#"
[backends.b]
plugin = "aws_s3"
[backends.b.config]
endpoint = "{url}"
bucket = "{bucket}"
access_key_id = "{access_key}"
secret_access_key = "{secret_key}"
{prefix}{extra}
[backends.b.grants]
http = ["{url}"]
"#,
        bucket = server_env("WHARF_TEST_BUCKET"),
    )
}

/// A host with one backend made from `url`, resolved in `vars` with
/// `home` as the home directory; `edit` may change the backend's config
/// (an endpoint the URL does not carry) before the host is built. Also
/// returns the backend's name and the host's directory.
pub fn url_host(
    url: &str,
    vars: &[(&str, String)],
    home: &Path,
    edit: impl FnOnce(&mut wharf::config::BackendConfig),
) -> wharf::Result<(Host, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    all.push(("HOME".into(), home.to_str().unwrap().into()));
    let mut cfg = Config::local_default(&dir.path().join("data"));
    cfg.cache_dir = Some(cache_dir());
    let name = cfg.add_url_backend(url, &wharf::url::Env::from_vars(all))?;
    edit(cfg.backends.get_mut(&name).unwrap());
    let host = Host::new(cfg, dir.path())?;
    Ok((host, name, dir))
}

/// Sleeps until 300 ms after `at` past `start`: in the credential tests,
/// past the moment a short-lived credential is renewed.
pub async fn sleep_past(start: std::time::Instant, at: std::time::Duration) {
    let wait = at.saturating_sub(start.elapsed()) + std::time::Duration::from_millis(300);
    tokio::time::sleep(wait).await;
}

/// The conformance cases a test server whose conditional writes are not
/// atomic can fail, since racing writers may all win there: s3s-fs and
/// moto store one in two steps (the README's "Guarantees by backend"), the
/// GCS emulator ignores `ifGenerationMatch`. On S3 and GCS one wins.
pub const RACING_CASES: [&str; 2] = ["racing_create_one_wins", "racing_update_one_wins"];

/// Asserts that `report` failed no case but [`RACING_CASES`], and those
/// only by letting more than one writer win: what such a server cannot
/// help, not what the adapter does.
pub fn assert_only_races_lost(report: &wharf::conformance::Report) {
    for case in report.failures() {
        let wharf::conformance::Outcome::Failed(why) = &case.outcome else {
            unreachable!("a failure")
        };
        assert!(
            RACING_CASES.contains(&case.name) && why.contains("racing writers succeeded"),
            "{}: {why}\n{report}",
            case.name
        );
    }
}

/// A unique key prefix per test run (`<name>-<pid>-<nanos>/`), so tests and
/// reruns against a long-lived server never collide.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}/", std::process::id())
}

/// Writes `size` deterministic bytes (seeded) in 3 MiB appends; returns
/// "<sha256> <size>" and what `finish` answered.
pub async fn write_stream(adapter: &dyn Adapter, path: &ObjectPath, size: u64, seed: u64) -> (String, ObjectMeta) {
    let mut data = DataStream::new(seed, size);
    let mut hash = Sha256::new();
    let mut w = adapter.write(path, PutMode::Overwrite, Some(size)).await.unwrap();
    while let Some(chunk) = data.next_chunk(3 << 20) {
        hash.update(&chunk);
        w.append(chunk).await.unwrap();
    }
    let meta = w.finish().await.unwrap();
    (format!("{:x} {size}", hash.finalize()), meta)
}

/// Reads a whole object; "<sha256> <size>".
pub async fn read_hash(adapter: &dyn Adapter, path: &ObjectPath) -> String {
    let mut r = adapter.read(path, None).await.unwrap();
    let (mut hash, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = r.next_chunk(1 << 20).await.unwrap() {
        size += chunk.len() as u64;
        hash.update(&chunk);
    }
    format!("{:x} {size}", hash.finalize())
}

/// Runs `tests/clients/<script>` (an official client's side of a
/// cross-client check) with the test venv's Python; its trimmed stdout.
pub fn python_client(script: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join(script);
    let out = Command::new(server_env("WHARF_TEST_PYTHON"))
        .arg(&path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A proxy that forwards to `upstream` and, once, cuts the connection that
/// carries the client byte number `cut_at` (counted over all connections).
/// Returns its `127.0.0.1:port` and whether it has cut.
pub async fn cutting_proxy(upstream: String, cut_at: u64) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let (sent, cut) = (sent.clone(), cut2.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let before = sent.fetch_add(n as u64, Ordering::SeqCst);
                    if before + n as u64 >= cut_at && !cut.swap(true, Ordering::SeqCst) {
                        // Die mid-transfer: drop both directions.
                        down.abort();
                        return;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = down.await;
            });
        }
    });
    (addr.to_string(), cut)
}
