//! The `wharf` binary as a user runs it: no config, then bad input.

mod common;

use common::{guest_wasm, stderr, test_env, wharf, wharf_with, write_model};
use std::path::Path;
use std::process::Command;

#[test]
fn put_then_get_with_no_config_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.onnx"), 3 << 20);
    let put = wharf(
        dir.path(),
        &["put", "model.onnx", "--model", "detector", "--model-version", "v1"],
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let info: serde_json::Value = serde_json::from_slice(&put.stdout).expect("put prints ModelStorageInfo JSON");
    assert_eq!(info["storage_backend"], "local_filesystem");
    assert_eq!(info["storage_path"], "models/detector/v1");
    assert_eq!(info["format"], "onnx");
    assert_eq!(info["size_bytes"], 3 << 20);
    assert_eq!(info["checksum"].as_str().unwrap().len(), 64);
    assert!(dir.path().join("wharf-data/models/detector/v1/wharf.json").is_file());

    std::fs::write(dir.path().join("info.json"), &put.stdout).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "info.json", "-o", "back.onnx"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        std::fs::read(dir.path().join("back.onnx")).unwrap(),
        std::fs::read(dir.path().join("model.onnx")).unwrap()
    );

    // Versions are immutable: the same version again is a conflict.
    let again = wharf(
        dir.path(),
        &["put", "model.onnx", "--model", "detector", "--model-version", "v1"],
    );
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));

    let ls = wharf(dir.path(), &["ls", "models/detector/"]);
    assert!(String::from_utf8_lossy(&ls.stdout).contains("models/detector/v1/wharf.json"));

    let rm = wharf(dir.path(), &["rm", "models/detector/v1"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let gone = wharf(dir.path(), &["get", "models/detector/v1"]);
    assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("models/detector/v1"), "{}", stderr(&gone));
}

/// Each command adds its storage operations to the metrics file;
/// `wharf metrics` prints the totals in the Prometheus text format.
#[test]
fn metrics_add_up_across_commands() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.onnx"), 1 << 20);
    for v in ["v1", "v2"] {
        let put = wharf(dir.path(), &["put", "model.onnx", "--model", "m", "--model-version", v]);
        assert!(put.status.success(), "{}", stderr(&put));
    }
    let missing = wharf(dir.path(), &["get", "models/m/v9"]);
    assert_eq!(missing.status.code(), Some(3));
    let o = wharf(dir.path(), &["metrics"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
    };
    // Two saves: the model and its manifest each time.
    assert_eq!(
        value(r#"wharf_operations_total{backend="local_filesystem",operation="write",outcome="ok"}"#),
        4
    );
    assert_eq!(
        value(r#"wharf_operations_total{backend="local_filesystem",operation="read",outcome="not-found"}"#),
        1
    );
    assert!(value(r#"wharf_written_bytes_total{backend="local_filesystem"}"#) > 2 << 20);
    assert!(
        text.contains("# TYPE wharf_operation_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"wharf_operation_duration_seconds_bucket{backend="local_filesystem",operation="write",le="+Inf"} 4"#
        ),
        "{text}"
    );
    let o = wharf(dir.path(), &["metrics", "--reset"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wharf(dir.path(), &["metrics"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("wharf_operations_total{"));
}

/// `wharf health` checks every backend at once: a reachable one is up with
/// its capabilities, an unreachable one is down, and the exit code says so.
#[test]
fn health_table_names_down_backends() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
        dir.path().join("wharf.toml"),
        format!(
            r#"
[backends.gone]
plugin = "aws_s3"
[backends.gone.config]
endpoint = "http://127.0.0.1:{port}"
bucket = "b"
access_key_id = "k"
secret_access_key = "s"
[backends.gone.grants]
http = ["http://127.0.0.1:{port}"]
"#
        ),
    )
    .unwrap();
    let o = wharf(dir.path(), &["health"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{table}"))
            .to_string()
    };
    assert!(line("local_filesystem").contains(" up "), "{table}");
    assert!(line("local_filesystem").contains("range,create,update,copy"), "{table}");
    assert!(line("gone").contains("DOWN"), "{table}");
    assert!(line("gone").contains("gone"), "{table}");
    let o = wharf(dir.path(), &["--json", "health"]);
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
}

/// examples/full-stack.toml: a put/get round trip through every layer, with
/// the files on disk encrypted (no plaintext left) and compressed.
#[test]
fn full_stack_example_round_trips_encrypted_and_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/full-stack.toml");
    std::fs::copy(&example, dir.path().join("wharf.toml")).unwrap();
    // A compressible "model": safetensors-like header, then repeating text.
    let mut model = b"{\"__metadata__\":{\"format\":\"pt\"}}".to_vec();
    while model.len() < 6 << 20 {
        model.extend_from_slice(b"PLAINTEXT-MARKER weights 0.125 0.25 0.5 1.0\n");
    }
    std::fs::write(dir.path().join("model.bin"), &model).unwrap();
    let id = wharf::layers::AgeIdentity::generate();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/models.age"), id.to_secret_string()).unwrap();
    std::fs::write(dir.path().join("keys/models.pub"), format!("{}\n", id.recipient())).unwrap();
    let key: [(&str, &str); 0] = [];

    let put = wharf_with(
        dir.path(),
        &["put", "model.bin", "--model", "m", "--model-version", "1"],
        &key,
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let info: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    let kinds: Vec<&str> = info["encodings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["checksum", "compression", "encryption"], "{info}");
    assert_eq!(info["encodings"][2]["recipients"][0], id.recipient().to_string());
    let stored = info["stored_size_bytes"].as_u64().unwrap();
    assert!(stored < model.len() as u64 / 4, "stored {stored} of {}", model.len());

    // On disk: every stored file is ciphertext, together far smaller.
    let mut on_disk = 0;
    for entry in walk(&dir.path().join("wharf-data")) {
        let bytes = std::fs::read(&entry).unwrap();
        on_disk += bytes.len();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{} is not encrypted",
            entry.display()
        );
        assert!(
            !bytes.windows(16).any(|w| w == b"PLAINTEXT-MARKER") && !bytes.windows(8).any(|w| w == b"metadata"),
            "plaintext in {}",
            entry.display()
        );
    }
    assert!(on_disk < model.len() / 4, "{on_disk} bytes on disk");

    // Twice: the second read is served by the cache.
    for _ in 0..2 {
        let get = wharf_with(dir.path(), &["get", "models/m/1", "-o", "back.bin", "--force"], &key);
        assert!(get.status.success(), "{}", stderr(&get));
        assert!(std::fs::read(dir.path().join("back.bin")).unwrap() == model);
    }
    assert!(walk(&dir.path().join("wharf-cache")).count() > 0);

    // Without the identity: a configuration error that names the reference.
    std::fs::remove_file(dir.path().join("keys/models.age")).unwrap();
    let get = wharf(dir.path(), &["get", "models/m/1", "-o", "x.bin"]);
    assert_eq!(get.status.code(), Some(6), "{}", stderr(&get));
    assert!(stderr(&get).contains("keys/models.age"), "{}", stderr(&get));
    assert!(!dir.path().join("x.bin").exists());
}

fn walk(dir: &Path) -> impl Iterator<Item = std::path::PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { files.push(p) }
        }
    }
    files.into_iter()
}

#[test]
fn folder_models_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let sm = dir.path().join("saved");
    std::fs::create_dir_all(sm.join("variables")).unwrap();
    // saved_model_schema_version 1, meta_graphs { meta_info_def { } }
    std::fs::write(sm.join("saved_model.pb"), b"\x08\x01\x12\x02\x0a\x00").unwrap();
    std::fs::write(sm.join("variables/variables.index"), b"index").unwrap();
    let put = wharf(dir.path(), &["put", "saved", "--model", "tf", "--model-version", "3"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let info: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(info["format"], "tensorflow_savedmodel");
    assert_eq!(info["is_directory"], true);
    let get = wharf(dir.path(), &["get", "models/tf/3", "-o", "restored"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        std::fs::read(dir.path().join("restored/variables/variables.index")).unwrap(),
        b"index"
    );
}

#[test]
fn tampered_object_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("m.onnx"), 100_000);
    let put = wharf(dir.path(), &["put", "m.onnx", "--model", "m", "--model-version", "1"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let info: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    // Flip one byte of the stored file, keeping its size.
    let data_dir = std::fs::read_dir(dir.path().join("wharf-data/models/m/1"))
        .unwrap()
        .flatten()
        .find(|e| e.file_type().unwrap().is_dir())
        .unwrap()
        .path();
    let stored = data_dir.join("m.onnx");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[50_000] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let get = wharf(
        dir.path(),
        &["get", info["storage_path"].as_str().unwrap(), "-o", "out.onnx"],
    );
    assert_eq!(get.status.code(), Some(5), "{}", stderr(&get));
    assert!(stderr(&get).contains("sha256"), "{}", stderr(&get));
    assert!(
        !dir.path().join("out.onnx").exists(),
        "corrupt data must never reach the output"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !leftovers.iter().any(|n| n.to_string_lossy().contains("partial")),
        "{leftovers:?}"
    );
}

#[test]
fn bad_config_and_unknown_backend_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        "[backends.local_filesystem]\nplugni = \"x\"\n",
    )
    .unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("plugni") && stderr(&o).contains("wharf.toml"),
        "{}",
        stderr(&o)
    );

    std::fs::remove_file(dir.path().join("wharf.toml")).unwrap();
    let o = wharf(dir.path(), &["--backend", "nosuch", "ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown backend `nosuch`"), "{}", stderr(&o));

    std::fs::write(dir.path().join("wharf.toml"), "[backends.s3]\nplugin = \"aws_s5\"\n").unwrap();
    let o = wharf(dir.path(), &["--backend", "s3", "ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("no plugin `aws_s5`"), "{}", stderr(&o));

    std::fs::write(
        dir.path().join("wharf.toml"),
        "[backends.local_filesystem]\nsha256 = \"00\"\n",
    )
    .unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("pins 00"), "{}", stderr(&o));

    // A key the adapter's `open` rejects is a configuration error too.
    std::fs::write(
        dir.path().join("wharf.toml"),
        r#"
[backends.local_filesystem.config]
root = "/data"
no_such_key = "1"
[[backends.local_filesystem.grants.dirs]]
host = "d"
guest = "/data"
create = true
"#,
    )
    .unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no_such_key") && stderr(&o).contains("open"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn escaping_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["../../etc/passwd", "/etc/passwd", "models/../../x"] {
        let o = wharf(dir.path(), &["stat", bad]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("invalid"), "{bad}: {}", stderr(&o));
    }
}

#[test]
fn plugin_that_is_not_a_component_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/broken.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("plugins/junk.wasm"), b"hello").unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        "plugin_dir = \"plugins\"\n[backends.broken]\n[backends.junk]\n",
    )
    .unwrap();
    let o = wharf(dir.path(), &["--backend", "broken", "ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("broken.wasm") && stderr(&o).contains("core WebAssembly module"),
        "{}",
        stderr(&o)
    );
    let o = wharf(dir.path(), &["--backend", "junk", "ls"]);
    assert!(
        stderr(&o).contains("junk.wasm") && stderr(&o).contains("not a WebAssembly component"),
        "{}",
        stderr(&o)
    );
    // The built-in backend still works next to broken plugins.
    let o = wharf(dir.path(), &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wharf(dir.path(), &["health"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "health must report the broken backends as down"
    );
}

/// `plugins verify` passes a good component and fails a broken one, with
/// the reason of every failed case.
#[test]
fn plugins_verify_reports_each_case() {
    let dir = tempfile::tempdir().unwrap();
    let good = guest_wasm("wharf-adapter-local-filesystem");
    let o = wharf(
        dir.path(),
        &["plugins", "verify", good.to_str().unwrap(), "--large-object", "16MiB"],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("29 passed, 0 failed"), "{out}");

    // The misbehave fixture cannot write, lies in `exists` and returns
    // oversized chunks.
    let broken = guest_wasm("wharf-fixture-misbehave");
    let o = wharf(
        dir.path(),
        &[
            "plugins",
            "verify",
            broken.to_str().unwrap(),
            "--large-object",
            "16MiB",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("verify --json prints rows");
    let row = |case: &str| {
        rows.iter()
            .find(|r| r["case"] == case)
            .unwrap_or_else(|| panic!("no row {case}"))
    };
    assert_eq!(row("round_trip_empty")["outcome"], "fail");
    assert!(
        row("round_trip_empty")["reason"]
            .as_str()
            .unwrap()
            .contains("misbehave: write"),
        "{rows:?}"
    );
    assert_eq!(row("escaping_paths_rejected")["outcome"], "pass");
    assert_eq!(row("health_reports_ok")["outcome"], "pass");
    assert!(rows.iter().filter(|r| r["outcome"] == "fail").count() >= 10, "{rows:?}");
}

/// `wharf ls | head -1`: a closed pipe ends the process quietly (SIGPIPE),
/// not with a panic.
#[cfg(unix)]
#[test]
fn closed_pipe_is_not_a_panic() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wharf-data/many")).unwrap();
    for i in 0..3000 {
        std::fs::write(dir.path().join(format!("wharf-data/many/f{i:04}")), b"").unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("ls")
        .current_dir(dir.path())
        .env_remove("WHARF_CONFIG")
        .env_remove("WHARF_DATA_DIR")
        .envs(test_env(dir.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("many/f0000"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(13),
        "expected SIGPIPE, got {:?}: {err}",
        out.status
    );
}

/// `plugins verify -c KEY=VALUE` hands the value to `open` (it used to
/// panic on a clash with the global `--config`), and `--backend NAME` takes
/// that backend's config values and grants from the file.
#[test]
fn plugins_verify_takes_config_values_and_a_configured_backend() {
    let dir = tempfile::tempdir().unwrap();
    let good = guest_wasm("wharf-adapter-local-filesystem");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    // `root` names the guest directory the grant maps: another than /data.
    let o = wharf(
        dir.path(),
        &[
            "plugins",
            "verify",
            good.to_str().unwrap(),
            "-c",
            "root=/models",
            "--dir",
            &format!("{}:/models", store.display()),
            "--only",
            "round_trip_one_byte",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    // An unknown key is the adapter's `invalid`, reported, not a panic.
    let o = wharf(
        dir.path(),
        &[
            "plugins",
            "verify",
            good.to_str().unwrap(),
            "-c",
            "no_such_key=1",
            "--only",
            "round_trip_one_byte",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("no_such_key"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // The same from a configured backend (relative grant, as written in a
    // wharf.toml next to it).
    std::fs::write(
        dir.path().join("wharf.toml"),
        "[backends.mine]\nplugin = \"local_filesystem\"\n[backends.mine.config]\nroot = \"/models\"\n\
         [[backends.mine.grants.dirs]]\nhost = \"store\"\nguest = \"/models\"\n",
    )
    .unwrap();
    let o = wharf(
        dir.path(),
        &[
            "--backend",
            "mine",
            "plugins",
            "verify",
            good.to_str().unwrap(),
            "--only",
            "round_trip",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(!out.contains(" 0 passed"), "{out}");
    assert!(!stderr(&o).contains("scratch directory"), "{}", stderr(&o));
}
