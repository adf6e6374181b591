//! The model registry through the `wharf` binary: numbered versions,
//! aliases, references, deletes, `gc`; and concurrent processes saving one
//! model and moving one alias on PostgreSQL and redis (the servers
//! scripts/servers.sh starts).

mod common;

use common::{stderr, wharf, write_model};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn versions(dir: &Path, model: &str) -> Vec<Value> {
    ok_json(&wharf(dir, &["--json", "versions", model]))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn numbered_versions_aliases_references_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_model(&d.join("m.onnx"), 20_000);
    write_model(&d.join("m2.onnx"), 30_000);
    for n in 1..=3 {
        let info = ok_json(&wharf(
            d,
            &["put", if n == 2 { "m2.onnx" } else { "m.onnx" }, "--model", "det"],
        ));
        assert_eq!(info["version"], n.to_string());
        assert_eq!(info["storage_path"], format!("models/det/{n}"));
    }
    // An explicit version still works, and is listed after the numbers.
    ok_json(&wharf(
        d,
        &["put", "m.onnx", "--model", "det", "--model-version", "exp-a"],
    ));
    ok_json(&wharf(d, &["put", "m.onnx", "--model", "other"]));

    let v = versions(d, "det");
    let names: Vec<&str> = v.iter().map(|e| e["version"].as_str().unwrap()).collect();
    assert_eq!(names, ["1", "2", "3", "exp-a"]);
    assert_eq!(v[1]["size_bytes"], 30_000);
    assert_eq!(v[1]["format"], "onnx");
    assert!(v[0]["created_at"].as_str().unwrap().ends_with('Z'));

    let models = ok_json(&wharf(d, &["--json", "models"]));
    assert_eq!(models, serde_json::json!(["det", "other"]));
    assert_eq!(
        ok_json(&wharf(d, &["--json", "models", "ot"])),
        serde_json::json!(["other"])
    );

    // Aliases.
    assert!(wharf(d, &["alias", "set", "det", "production", "2"]).status.success());
    assert!(wharf(d, &["alias", "set", "det", "staging", "3"]).status.success());
    let missing = wharf(d, &["alias", "set", "det", "canary", "9"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
    for bad in ["latest", "12", "a b"] {
        let o = wharf(d, &["alias", "set", "det", bad, "1"]);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", stderr(&o));
    }
    let aliases = ok_json(&wharf(d, &["--json", "alias", "ls", "det"]));
    assert_eq!(aliases, serde_json::json!({"production": "2", "staging": "3"}));
    assert_eq!(versions(d, "det")[1]["aliases"], serde_json::json!(["production"]));

    // References wherever a storage path goes.
    let get = wharf(d, &["get", "det@production", "-o", "prod.onnx"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(
        std::fs::read(d.join("prod.onnx")).unwrap(),
        std::fs::read(d.join("m2.onnx")).unwrap()
    );
    let cat = wharf(d, &["cat", "det@latest"]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert_eq!(cat.stdout, std::fs::read(d.join("m.onnx")).unwrap());
    let stat = ok_json(&wharf(d, &["stat", "det@2"]));
    assert_eq!(stat["storage_path"], "models/det/2");
    let gone = wharf(d, &["get", "det@nosuch", "-o", "x.onnx"]);
    assert_eq!(gone.status.code(), Some(3), "{}", stderr(&gone));

    // A version an alias names cannot be deleted; moving the alias first
    // lets it go, and its number is never handed out again.
    let refused = wharf(d, &["rm", "det@production"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("production"), "{}", stderr(&refused));
    assert!(wharf(d, &["get", "det@2", "-o", "still.onnx"]).status.success());
    assert!(wharf(d, &["alias", "set", "det", "production", "1"]).status.success());
    let rm = wharf(d, &["rm", "det@2"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert_eq!(wharf(d, &["get", "det@2", "-o", "no.onnx"]).status.code(), Some(3));
    assert_eq!(
        wharf(d, &["alias", "set", "det", "staging", "2"]).status.code(),
        Some(3)
    );
    let names: Vec<String> = versions(d, "det")
        .iter()
        .map(|e| e["version"].as_str().unwrap().into())
        .collect();
    assert_eq!(names, ["1", "3", "exp-a"]);
    // The deleted version's files are gone; its slot stays as a tombstone.
    let tomb: Value =
        serde_json::from_slice(&std::fs::read(d.join("wharf-data/models/det/2/wharf.json")).unwrap()).unwrap();
    assert_eq!(tomb["wharf_tombstone"], 1);
    let explicit = wharf(d, &["put", "m.onnx", "--model", "det", "--model-version", "2"]);
    assert_eq!(explicit.status.code(), Some(4), "{}", stderr(&explicit));
    assert!(stderr(&explicit).contains("never reused"), "{}", stderr(&explicit));
    let next = ok_json(&wharf(d, &["put", "m.onnx", "--model", "det"]));
    assert_eq!(next["version"], "4");

    // Removing the alias frees the version; `@latest` follows deletes.
    assert!(wharf(d, &["alias", "rm", "det", "staging"]).status.success());
    assert_eq!(wharf(d, &["alias", "rm", "det", "staging"]).status.code(), Some(3));
    assert!(wharf(d, &["rm", "det@latest"]).status.success());
    assert!(wharf(d, &["rm", "det@3"]).status.success());
    assert_eq!(ok_json(&wharf(d, &["stat", "det@latest"]))["version"], "1");
    let plain = wharf(d, &["versions", "det"]);
    assert!(String::from_utf8_lossy(&plain.stdout).contains("production"));
}

#[test]
fn gc_removes_orphaned_uploads_and_keeps_what_versions_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_model(&d.join("m.onnx"), 40_000);
    ok_json(&wharf(d, &["put", "m.onnx", "--model", "det"]));
    ok_json(&wharf(
        d,
        &["put", "m.onnx", "--model", "det", "--model-version", "named"],
    ));
    // What a save killed before its commit leaves: files, no manifest.
    let orphan = d.join("wharf-data/models/det/_wharf/uploads/00000000deadbeef");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("m.onnx"), vec![7u8; 12_345]).unwrap();
    let orphan2 = d.join("wharf-data/models/det/crashed/0000000000c0ffee");
    std::fs::create_dir_all(&orphan2).unwrap();
    std::fs::write(orphan2.join("m.onnx"), vec![1u8; 100]).unwrap();
    // Not wharf's: never touched.
    std::fs::create_dir_all(d.join("wharf-data/models/det/notes")).unwrap();
    std::fs::write(d.join("wharf-data/models/det/notes/readme.txt"), b"mine").unwrap();

    // Young: the default grace period keeps it.
    let kept = ok_json(&wharf(d, &["--json", "gc"]));
    assert_eq!(kept["objects"], 0, "{kept}");
    let dry = ok_json(&wharf(d, &["--json", "gc", "--older-than", "0s", "--dry-run"]));
    assert_eq!(dry["objects"], 2, "{dry}");
    assert!(orphan.join("m.onnx").exists());
    let done = ok_json(&wharf(d, &["--json", "gc", "--older-than", "0s"]));
    assert_eq!(done["objects"], 2, "{done}");
    assert_eq!(done["bytes"], 12_345 + 100, "{done}");
    assert!(!orphan.join("m.onnx").exists());
    assert!(!orphan2.join("m.onnx").exists());
    assert!(d.join("wharf-data/models/det/notes/readme.txt").exists());
    for r in ["det@1", "models/det/named"] {
        let get = wharf(d, &["get", r, "-o", "-"]);
        assert!(get.status.success(), "{r}: {}", stderr(&get));
    }
    let again = ok_json(&wharf(d, &["--json", "gc", "--older-than", "0s"]));
    assert_eq!(again["objects"], 0, "{again}");
}

/// A config naming moto, s3s-fs, PostgreSQL and redis under a prefix of
/// their own.
fn server_config(dir: &Path, prefix: &str) {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run ./scripts/test.sh"));
    let pg = env("WHARF_TEST_PG_ADDR");
    std::fs::write(
        dir.join("wharf.toml"),
        format!(
            r#"
[backends.s3s]
plugin = "aws_s3"
[backends.s3s.config]
endpoint = "{}"
bucket = "wharf-test"
access_key_id = "{}"
secret_access_key = "{}"
prefix = "{prefix}/"
[backends.s3s.grants]
http = ["http://127.0.0.1:*"]

[backends.moto]
plugin = "aws_s3"
[backends.moto.config]
endpoint = "{}"
bucket = "wharf-test"
access_key_id = "moto"
secret_access_key = "moto"
prefix = "{prefix}/"
[backends.moto.grants]
http = ["http://127.0.0.1:*"]

[backends.pg]
plugin = "database"
[backends.pg.config]
address = "{pg}"
user = "{}"
password = "{}"
dbname = "{}"
table_prefix = "{prefix}_"
[backends.pg.grants]
tcp = ["{pg}"]

[backends.redis]
plugin = "redis"
[backends.redis.config]
address = "{redis}"
password = "{redis_password}"
prefix = "{prefix}:"
[backends.redis.grants]
tcp = ["{redis}"]
"#,
            env("WHARF_TEST_S3S_URL"),
            env("WHARF_TEST_S3S_ACCESS_KEY"),
            env("WHARF_TEST_S3S_SECRET_KEY"),
            env("WHARF_TEST_MOTO_URL"),
            env("WHARF_TEST_PG_USER"),
            env("WHARF_TEST_PG_PASSWORD"),
            env("WHARF_TEST_PG_DB"),
            redis = env("WHARF_TEST_REDIS_ADDR"),
            redis_password = env("WHARF_TEST_REDIS_PASSWORD"),
        ),
    )
    .unwrap();
}

/// Runs `script` in `n` shells at once, each told its index as `$1`;
/// returns each shell's output.
fn parallel(dir: &Path, n: usize, script: &str) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new("bash")
                .args(["-c", script, "worker", &i.to_string()])
                .envs(common::test_env(dir))
                .env("WHARF", env!("CARGO_BIN_EXE_wharf"))
                .env_remove("WHARF_DATA_DIR")
                .current_dir(dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

fn concurrent_on(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prefix = format!("reg{}{}", std::process::id(), backend);
    server_config(d, &prefix);
    write_model(&d.join("m.onnx"), 5_000);
    let (procs, saves) = (8, 20);
    // Each save prints its version; a failed save prints FAIL.
    let outs = parallel(
        d,
        procs,
        &format!(
            r#"for i in $(seq {saves}); do
                 v=$("$WHARF" --config wharf.toml -b {backend} put m.onnx --model det | grep '"version"') || {{ echo FAIL; continue; }}
                 echo "$v"
               done"#
        ),
    );
    let mut numbers = Vec::new();
    for o in &outs {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.contains("FAIL"), "{text}\n{}", stderr(o));
        for line in text.lines() {
            let n: u64 = line.split('"').nth(3).unwrap().parse().unwrap();
            numbers.push(n);
        }
    }
    numbers.sort();
    let expect: Vec<u64> = (1..=(procs * saves) as u64).collect();
    assert_eq!(numbers, expect, "unique and dense");
    let listed = ok_json(&wharf(d, &["-b", backend, "--json", "versions", "det"]));
    assert_eq!(listed.as_array().unwrap().len(), procs * saves);

    // 4 processes move one alias 50 times each, each to its own versions:
    // every move is applied or reported as a conflict (exit 4), nothing
    // else, and the alias ends on a version one of the applied moves set.
    let outs = parallel(
        d,
        4,
        &format!(
            r#"for i in $(seq 50); do
                 v=$(( ($1 * 50 + i) % {total} + 1 ))
                 err=$("$WHARF" --config wharf.toml -b {backend} alias set det prod "$v" 2>&1 >/dev/null)
                 echo "$? $v $(echo $err | tr '\n' ' ')"
               done"#,
            total = procs * saves
        ),
    );
    let (mut applied, mut conflicts) = (Vec::new(), 0);
    for o in &outs {
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut parts = line.splitn(3, ' ');
            let (code, v, err) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
            match code {
                "0" => applied.push(v.to_string()),
                "4" => conflicts += 1,
                other => panic!("alias set det prod {v} exited {other}: {err}"),
            }
        }
    }
    assert_eq!(applied.len() + conflicts, 200);
    assert!(!applied.is_empty());
    let aliases = ok_json(&wharf(d, &["-b", backend, "--json", "alias", "ls", "det"]));
    let now = aliases["prod"].as_str().unwrap();
    assert!(applied.iter().any(|v| v == now), "{now} was never set");
    eprintln!(
        "{backend}: {} saves unique and dense; alias moves: {} applied, {conflicts} conflicts",
        procs * saves,
        applied.len()
    );
}

// Not on the S3 test servers: s3s-fs's conditional PUT checks for the
// object before it streams the body and renames a temporary file into
// place (s3s-fs 0.14.1, src/s3.rs put_object), and moto checks and stores
// in separate steps of a threaded server, so two concurrent create-only
// PUTs can both succeed on either (both were seen handing out one number
// twice). wharf relies on S3's own atomic If-None-Match (and MinIO's,
// R2's); the README's guarantees table says so.
#[test]
fn concurrent_saves_and_alias_moves_on_redis() {
    concurrent_on("redis");
}

#[test]
fn concurrent_saves_and_alias_moves_on_postgres() {
    concurrent_on("pg");
}
