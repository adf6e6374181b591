//! What the platform keeps and hands back: kinds and names in
//! `ModelStorageInfo`, its own five-field records, default versions, single
//! objects (`cat`, `cp`) and folders that come back exactly.

mod common;

use common::{stderr, wharf, write_model};
use serde_json::{Value, json};
use std::path::Path;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

fn json_of(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// A config with a second backend, `lab`, of the local_filesystem kind
/// (the built-in `local_filesystem` backend is always there too).
fn two_local_backends(dir: &Path) {
    std::fs::create_dir_all(dir.join("lab-data")).unwrap();
    std::fs::write(
        dir.join("wharf.toml"),
        r#"
[backends.lab]
plugin = "local_filesystem"
[backends.lab.config]
root = "/data"
[[backends.lab.grants.dirs]]
host = "lab-data"
guest = "/data"
create = true
"#,
    )
    .unwrap();
}

#[test]
fn storage_backend_is_the_kind_and_the_name_is_its_own_field() {
    let dir = tempfile::tempdir().unwrap();
    two_local_backends(dir.path());
    write_model(&dir.path().join("m.onnx"), 50_000);
    let info = json_of(&wharf(
        dir.path(),
        &["-b", "lab", "put", "m.onnx", "--model", "m", "--model-version", "1"],
    ));
    assert_eq!(info["storage_backend"], "local_filesystem");
    assert_eq!(info["backend_name"], "lab");
    assert!(dir.path().join("lab-data/models/m/1/wharf.json").is_file());

    // Picked by its name, not by the default backend.
    std::fs::write(dir.path().join("full.json"), info.to_string()).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "full.json", "-o", "a.onnx"]);
    assert!(get.status.success(), "{}", stderr(&get));

    // Without a usable name, two backends of the kind: refused, both named.
    for name in [Value::Null, json!("gone")] {
        let mut rec = info.clone();
        rec["backend_name"] = name.clone();
        std::fs::write(dir.path().join("rec.json"), rec.to_string()).unwrap();
        let get = wharf(dir.path(), &["get", "--info", "rec.json", "-o", "b.onnx"]);
        assert_eq!(get.status.code(), Some(6), "{}", stderr(&get));
        let err = stderr(&get);
        assert!(err.contains("lab") && err.contains("local_filesystem"), "{err}");
        if name == "gone" {
            assert!(err.contains("`gone` is not configured"), "{err}");
        }
        assert!(!dir.path().join("b.onnx").exists());
    }
    // `--backend` settles it.
    let get = wharf(dir.path(), &["-b", "lab", "get", "--info", "rec.json", "-o", "c.onnx"]);
    assert!(get.status.success(), "{}", stderr(&get));

    // With one backend of the kind, the kind alone finds it.
    let solo = tempfile::tempdir().unwrap();
    write_model(&solo.path().join("m.onnx"), 10_000);
    let mut info = json_of(&wharf(
        solo.path(),
        &["put", "m.onnx", "--model", "m", "--model-version", "1"],
    ));
    assert_eq!(info["backend_name"], "local_filesystem");
    info.as_object_mut().unwrap().remove("backend_name");
    std::fs::write(solo.path().join("rec.json"), info.to_string()).unwrap();
    let get = wharf(solo.path(), &["get", "--info", "rec.json", "-o", "back.onnx"]);
    assert!(get.status.success(), "{}", stderr(&get));
}

#[test]
fn five_field_records_load_the_object_they_name() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("detector.pkl"), 300_000);
    let bytes = std::fs::read(dir.path().join("detector.pkl")).unwrap();
    let cp = wharf(dir.path(), &["cp", "detector.pkl", ":models/detector.pkl"]);
    assert!(cp.status.success(), "{}", stderr(&cp));
    assert!(stderr(&cp).contains(&sha256_hex(&bytes)), "{}", stderr(&cp));

    let record = |checksum: &str, size: usize| {
        json!({
            "storage_backend": "local_filesystem",
            "storage_path": "models/detector.pkl",
            "format": "pickle",
            "size_bytes": size,
            "checksum": checksum,
        })
        .to_string()
    };
    std::fs::write(dir.path().join("legacy.json"), record(&sha256_hex(&bytes), bytes.len())).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "legacy.json", "-o", "back.pkl"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(std::fs::read(dir.path().join("back.pkl")).unwrap(), bytes);
    // Into a directory: under the object's name.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "legacy.json", "-o", "sub"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(std::fs::read(sub.join("detector.pkl")).unwrap(), bytes);
    // To stdout.
    let get = wharf(dir.path(), &["get", "--info", "legacy.json", "-o", "-"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(get.stdout, bytes);

    // A wrong checksum or size: exit 5, nothing written, no partial file.
    let mut wrong = sha256_hex(&bytes).into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    for (name, rec) in [
        (
            "bad-sum.json",
            record(std::str::from_utf8(&wrong).unwrap(), bytes.len()),
        ),
        ("bad-size.json", record(&sha256_hex(&bytes), bytes.len() + 1)),
    ] {
        std::fs::write(dir.path().join(name), rec).unwrap();
        let get = wharf(dir.path(), &["get", "--info", name, "-o", "out.pkl"]);
        assert_eq!(get.status.code(), Some(5), "{name}: {}", stderr(&get));
        let err = stderr(&get);
        assert!(
            err.contains("models/detector.pkl") && err.contains("local_filesystem"),
            "{err}"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n == "out.pkl" || n.contains("partial")),
            "{names:?}"
        );
    }

    // A record that is not sha256, or not a record at all: named, exit 1.
    let mut md5: Value = serde_json::from_str(&record(&sha256_hex(&bytes), bytes.len())).unwrap();
    md5["checksum_algorithm"] = json!("md5");
    std::fs::write(dir.path().join("md5.json"), md5.to_string()).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "md5.json", "-o", "x"]);
    assert_eq!(get.status.code(), Some(1), "{}", stderr(&get));
    assert!(stderr(&get).contains("sha256 only"), "{}", stderr(&get));
    std::fs::write(dir.path().join("junk.json"), r#"{"storage_path": 3}"#).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "junk.json", "-o", "x"]);
    assert_eq!(get.status.code(), Some(1), "{}", stderr(&get));
    assert!(stderr(&get).contains("junk.json"), "{}", stderr(&get));

    // The five fields of a model wharf saved (the prefix, the listing's
    // checksum) still load that model.
    let info = json_of(&wharf(
        dir.path(),
        &["put", "detector.pkl", "--model", "d", "--model-version", "1"],
    ));
    let five: serde_json::Map<String, Value> = info
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| ["storage_backend", "storage_path", "format", "size_bytes", "checksum"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    std::fs::write(dir.path().join("five.json"), Value::Object(five).to_string()).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "five.json", "-o", "model-back.pkl"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(std::fs::read(dir.path().join("model-back.pkl")).unwrap(), bytes);
}

#[test]
fn quick_saves_without_a_version_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.pkl"), 1000);
    std::fs::copy(dir.path().join("model.pkl"), dir.path().join("model.joblib")).unwrap();
    // Five saves of one model name within a second or two get the next
    // numbers, in order.
    for (n, file) in ["model.pkl", "model.joblib", "model.pkl", "model.joblib", "model.pkl"]
        .into_iter()
        .enumerate()
    {
        let info = json_of(&wharf(dir.path(), &["put", file]));
        assert_eq!(info["model_name"], "model");
        assert_eq!(info["version"], (n + 1).to_string());
        assert_eq!(info["storage_path"], format!("models/model/{}", n + 1));
    }
}

#[test]
fn cat_and_cp_move_single_objects() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("blob.bin"), &bytes).unwrap();
    let up = wharf(
        dir.path(),
        &["--json", "cp", "blob.bin", "local_filesystem:data/blob.bin"],
    );
    let done = json_of(&up);
    assert_eq!(done["size_bytes"], bytes.len());
    assert_eq!(done["checksum"], sha256_hex(&bytes));
    // Create-only unless --force.
    let again = wharf(dir.path(), &["cp", "blob.bin", ":data/blob.bin"]);
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));
    let again = wharf(dir.path(), &["cp", "--force", "blob.bin", ":data/blob.bin"]);
    assert!(again.status.success(), "{}", stderr(&again));

    let cat = wharf(dir.path(), &["cat", "data/blob.bin"]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert_eq!(cat.stdout, bytes);
    for (range, want) in [
        ("10-19", &bytes[10..20]),
        ("199990-", &bytes[199_990..]),
        ("-5", &bytes[bytes.len() - 5..]),
        ("0-0", &bytes[..1]),
    ] {
        let cat = wharf(dir.path(), &["cat", "data/blob.bin", "--range", range]);
        assert!(cat.status.success(), "{range}: {}", stderr(&cat));
        assert_eq!(cat.stdout, want, "{range}");
    }
    let past = wharf(dir.path(), &["cat", "data/blob.bin", "--range", "200000-"]);
    assert_eq!(past.status.code(), Some(1), "{}", stderr(&past));
    let missing = wharf(dir.path(), &["cat", "data/none.bin"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));

    let down = wharf(
        dir.path(),
        &["cp", ":data/blob.bin", "back.bin", "--sha256", &sha256_hex(&bytes)],
    );
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(std::fs::read(dir.path().join("back.bin")).unwrap(), bytes);
    // An existing file stays unless --force.
    let down = wharf(dir.path(), &["cp", ":data/blob.bin", "back.bin"]);
    assert_eq!(down.status.code(), Some(4), "{}", stderr(&down));
    // A wrong expectation writes nothing.
    let wrong = sha256_hex(b"something else");
    let down = wharf(dir.path(), &["cp", ":data/blob.bin", "other.bin", "--sha256", &wrong]);
    assert_eq!(down.status.code(), Some(5), "{}", stderr(&down));
    assert!(!dir.path().join("other.bin").exists());
    let down = wharf(dir.path(), &["cp", ":data/blob.bin", "other.bin", "--size", "5"]);
    assert_eq!(down.status.code(), Some(5), "{}", stderr(&down));
    assert!(!dir.path().join("other.bin").exists());
    // Both local, or both remote: named.
    let both = wharf(dir.path(), &["cp", "blob.bin", "copy.bin"]);
    assert_eq!(both.status.code(), Some(1), "{}", stderr(&both));
    assert!(stderr(&both).contains("BACKEND:PATH"), "{}", stderr(&both));
}

#[cfg(unix)]
#[test]
fn folders_come_back_exactly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("saved");
    for d in ["assets", "variables", "extra/deeper/empty"] {
        std::fs::create_dir_all(m.join(d)).unwrap();
    }
    std::fs::write(m.join("saved_model.pb"), b"\x08\x01").unwrap();
    std::fs::write(m.join("variables/variables.index"), b"index").unwrap();
    std::fs::write(m.join(".hidden"), b"kept").unwrap();
    std::fs::write(m.join("variables/.meta"), b"also kept").unwrap();
    std::fs::write(m.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(m.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let info = json_of(&wharf(
        dir.path(),
        &["put", "saved", "--model", "tf", "--model-version", "1"],
    ));
    assert_eq!(info["directories"], json!(["assets", "extra/deeper/empty"]));
    let files: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&".hidden") && files.contains(&"variables/.meta"),
        "{files:?}"
    );
    std::fs::write(dir.path().join("info.json"), info.to_string()).unwrap();

    let get = wharf(dir.path(), &["get", "--info", "info.json", "-o", "back"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let diff = std::process::Command::new("diff")
        .args(["-r", "saved", "back"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    for d in ["assets", "extra/deeper/empty"] {
        assert!(dir.path().join("back").join(d).is_dir(), "{d}");
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
    assert_ne!(mode(&dir.path().join("back/run.sh")) & 0o111, 0);
    assert_eq!(mode(&dir.path().join("back/saved_model.pb")) & 0o111, 0);

    // A manifest edited to drop what the record covers (here the empty
    // directories and the executable bit, checksum recomputed to match)
    // is caught against the caller's record.
    let manifest_path = dir.path().join("wharf-data/models/tf/1/wharf.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    manifest["info"].as_object_mut().unwrap().remove("directories");
    for f in manifest["info"]["files"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("executable");
    }
    let mut listing: Vec<(String, String)> = manifest["info"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["checksum"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listing.sort();
    let text: String = listing.iter().map(|(p, c)| format!("{c}  {p}\n")).collect();
    manifest["info"]["checksum"] = json!(sha256_hex(text.as_bytes()));
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let get = wharf(dir.path(), &["get", "--info", "info.json", "-o", "tampered"]);
    assert_eq!(get.status.code(), Some(5), "{}", stderr(&get));
    assert!(!dir.path().join("tampered").exists());

    // Symbolic links are refused, naming the link; nothing is stored.
    std::os::unix::fs::symlink("saved_model.pb", m.join("link.pb")).unwrap();
    let put = wharf(dir.path(), &["put", "saved", "--model", "tf", "--model-version", "2"]);
    assert_eq!(put.status.code(), Some(1), "{}", stderr(&put));
    assert!(
        stderr(&put).contains("link.pb") && stderr(&put).contains("symbolic link"),
        "{}",
        stderr(&put)
    );
    assert!(!dir.path().join("wharf-data/models/tf/2").exists());
}
