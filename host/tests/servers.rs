//! `wharf put / ls / get / rm` against each test server, from the example
//! config in examples/test-servers.toml (scripts/test.sh starts the servers
//! and exports their addresses).

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/test-servers.toml");

fn wharf(dir: &Path, backend: &str, args: &[&str]) -> Output {
    for var in [
        "WHARF_TEST_MOTO_URL",
        "WHARF_TEST_S3S_URL",
        "WHARF_TEST_AZURITE_URL",
        "WHARF_TEST_GCS_URL",
    ] {
        assert!(
            std::env::var_os(var).is_some(),
            "{var} is not set: run the tests with ./scripts/test.sh, which starts the test servers"
        );
    }
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["--config", CONFIG, "--backend", backend])
        .args(args)
        .current_dir(dir)
        .env(
            "WHARF_CACHE_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wharf-test-cache"),
        )
        .output()
        .expect("wharf runs")
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn round_trip(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model: Vec<u8> = (0..(12u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("model.bin"), &model).unwrap();
    let version = format!("v{}", std::process::id());
    let info = ok(
        &wharf(
            dir.path(),
            backend,
            &["put", "model.bin", "--model", "detector", "--model-version", &version],
        ),
        "put",
    );
    let info_json: serde_json::Value = serde_json::from_str(&info).expect("put prints JSON");
    let storage_path = info_json["storage_path"].as_str().unwrap().to_string();
    std::fs::write(dir.path().join("info.json"), &info).unwrap();

    let listing = ok(&wharf(dir.path(), backend, &["ls", &storage_path]), "ls");
    assert!(listing.contains("wharf.json"), "{listing}");
    assert!(listing.contains("model.bin"), "{listing}");

    ok(
        &wharf(dir.path(), backend, &["get", "--info", "info.json", "-o", "back.bin"]),
        "get",
    );
    assert!(
        std::fs::read(dir.path().join("back.bin")).unwrap() == model,
        "bytes differ"
    );

    ok(&wharf(dir.path(), backend, &["rm", &storage_path]), "rm");
    let listing = ok(&wharf(dir.path(), backend, &["ls", &storage_path]), "ls after rm");
    assert!(listing.trim().is_empty(), "left behind: {listing}");
    let gone = wharf(dir.path(), backend, &["get", &storage_path, "-o", "again.bin"]);
    assert_eq!(gone.status.code(), Some(3), "get after rm must be not-found");
}

#[test]
fn moto() {
    round_trip("moto");
}

#[test]
fn s3s() {
    round_trip("s3s");
}

#[test]
fn azurite() {
    round_trip("azurite");
}

#[test]
fn gcs() {
    round_trip("gcs");
}
