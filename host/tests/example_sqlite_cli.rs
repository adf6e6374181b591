//! The SQLite example adapter (`adapters/examples/python-sqlite`) through
//! the `wharf` binary, as its README shows it: `plugins inspect`, `plugins
//! verify` with `-c path=...`, and a model saved into the database and
//! loaded back. The whole suite runs in `tests/tests/example_sqlite.rs`.

mod common;

use common::{stderr, wharf, write_model};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the example's `build.sh` into target/examples; the component's path.
fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = root.join("target/examples");
    let script = root.join("adapters/examples/python-sqlite/build.sh");
    let o = Command::new("bash").arg(&script).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}: {}", script.display(), stderr(&o));
    out.join("python_sqlite.wasm")
}

#[test]
fn inspect_verify_and_a_model_round_trip() {
    let wasm = build();
    let wasm = wasm.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let o = wharf(dir.path(), &["plugins", "inspect", wasm]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("wharf:storage/adapter@0.2.0, wharf:storage/maintenance@0.2.0"),
        "{out}"
    );

    // The racing cases: of four writers in four instances, one wins.
    let o = wharf(
        dir.path(),
        &[
            "plugins",
            "verify",
            wasm,
            "-c",
            "path=/data/objects.db",
            "--only",
            "racing",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    // An unknown key is refused by `open`, by name.
    let o = wharf(
        dir.path(),
        &["plugins", "verify", wasm, "-c", "file=/data/x.db", "--only", "health"],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("unknown config key `file`"), "{}", stderr(&o));

    // README section 3: the component in a plugin directory, the database
    // in a granted one.
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::copy(wasm, dir.path().join("plugins/python_sqlite.wasm")).unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        r#"plugin_dir = "plugins"
default_backend = "sq"

[backends.sq]
plugin = "python_sqlite"

[backends.sq.config]
path = "/data/objects.db"

[[backends.sq.grants.dirs]]
host = "sq-data"
guest = "/data"
read_only = false
create = true
"#,
    )
    .unwrap();
    write_model(&dir.path().join("model.onnx"), 3 << 20);
    let o = wharf(dir.path(), &["health"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("takes its write lock"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = wharf(
        dir.path(),
        &["put", "model.onnx", "--model", "demo", "--model-version", "v1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wharf(dir.path(), &["get", "models/demo/v1", "-o", "back.onnx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("back.onnx")).unwrap(),
        std::fs::read(dir.path().join("model.onnx")).unwrap()
    );
    assert!(dir.path().join("sq-data/objects.db").is_file());
    let o = wharf(dir.path(), &["rm", "models/demo/v1"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
