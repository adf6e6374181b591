//! The Python example adapter (`adapters/examples/python-dir`), built from
//! source with componentize-py by its own build script, passes the
//! conformance suite through the same host as the Rust adapters.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wharf::conformance::{self, SuiteOptions};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `build.sh <target/examples>` and returns the output directory.
fn build_python_example() -> PathBuf {
    let root = repo_root();
    let out = root.join("target/examples");
    let script = root.join("adapters/examples/python-dir/build.sh");
    let start = Instant::now();
    let result = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        result.status.success(),
        "{} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
        script.display(),
        result.status,
        String::from_utf8_lossy(&result.stderr),
        String::from_utf8_lossy(&result.stdout),
    );
    let wasm = out.join("python_dir.wasm");
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| panic!("{} after the build: {e}", wasm.display()))
        .len();
    println!("{} ready ({size} bytes) after {:.1?}", wasm.display(), start.elapsed());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dir_passes_conformance() {
    let plugins = build_python_example();
    let data = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
plugin_dir = {plugins:?}
default_backend = "py"

[backends.py]
plugin = "python_dir"

[backends.py.config]
root = "/data"

[[backends.py.grants.dirs]]
host = {data:?}
guest = "/data"
read_only = false
create = true

# componentize-py 0.25.1 never frees the copy of the bytes an exported
# function returns, so a reader's instance grows by every byte it reads
# (adapters/examples/python-dir/README.md, "Limits"). 1 GiB is the most any
# adapter may have (the host's pooling allocator ceiling).
[backends.py.limits]
memory = "1GiB"
"#,
        plugins = plugins.display().to_string(),
        data = data.path().display().to_string(),
    );
    let host = wharf_tests::host_from_toml(&toml, data.path());
    let adapter = host.adapter("py").await.unwrap();

    let start = Instant::now();
    // The streamed round trip is 768 MiB instead of the default 1 GiB: reading
    // an object back costs this adapter its size in linear memory (the
    // componentize-py leak above), and no adapter may have more than 1 GiB.
    // Writes are not affected; speed is not the reason (768 MiB takes about 25 s).
    let opts = SuiteOptions {
        large_object: 768 << 20,
        ..SuiteOptions::default()
    };
    let report = conformance::run(adapter, opts).await.unwrap();
    println!("{report}\n(suite took {:.1?})", start.elapsed());
    assert!(report.failures().is_empty(), "{report}");
    // The adapter claims every capability, so every case applies but
    // pending uploads: it is built for the `storage-adapter` world alone.
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );

    // Aborted and dropped writes left no temporary behind. The host aborts a
    // dropped writer in the background, so give that a moment to land.
    let tmp = data.path().join(".wharf-tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = match std::fs::read_dir(&tmp) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading {}: {e}", tmp.display()),
        };
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "temporary files left in {}: {left:?}",
            tmp.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
