//! Shared helpers of wharf's integration tests.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use wharf::conformance::DataStream;
use wharf::{Adapter, Config, Host, ObjectMeta, ObjectPath, PutMode};

pub mod fault_proxy;

/// Paths of the guest fixtures, built by build.rs.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
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
