//! The JavaScript example adapter (`adapters/examples/js-dir`), built from
//! source with its own build script, passes the conformance suite through
//! the same host as the Rust adapters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use wharf::conformance;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `adapters/examples/js-dir/build.sh` into `target/examples`; fails
/// the test with the script's output if it fails.
fn build_js_adapter() -> PathBuf {
    let root = repo_root();
    let out_dir = root.join("target/examples");
    let script = root.join("adapters/examples/js-dir/build.sh");
    let start = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg(&out_dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = out_dir.join("js_dir.wasm");
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| panic!("{} after a successful build: {e}", wasm.display()))
        .len();
    println!("built {} ({size} bytes) in {:.1?}", wasm.display(), start.elapsed());
    out_dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_dir_passes_the_conformance_suite() {
    let plugin_dir = build_js_adapter();
    let data = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
plugin_dir = {plugin_dir:?}
default_backend = "js"

[backends.js]
plugin = "js_dir"

[backends.js.config]
root = "/data"

[[backends.js.grants.dirs]]
host = {data:?}
guest = "/data"
read_only = false
create = true
"#,
        plugin_dir = plugin_dir.display().to_string(),
        data = data.path().display().to_string(),
    );
    let host = wharf_tests::host_from_toml(&toml, data.path());
    let start = Instant::now();
    let adapter = host.adapter("js").await.expect("the js backend loads");
    println!("loaded (compiled or cached) and opened in {:.1?}", start.elapsed());

    let report = conformance::run(adapter, wharf_tests::example_suite_options())
        .await
        .unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // js_dir claims every capability, so every case applies but pending
    // uploads: it is built for the `storage-adapter` world alone.
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );

    // The suite deletes what it wrote, and a delete removes the directories
    // it leaves empty: only the (empty) temporary-file directory may remain.
    let left = walk(data.path());
    assert_eq!(left, [data.path().join(".wharf-tmp")], "left behind: {left:?}");
}

/// Every file and directory below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
