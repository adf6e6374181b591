//! The crash harness: `wharf` processes killed with SIGKILL at random
//! points of a save, a transaction (`put --alias`) and an alias move, on
//! local_filesystem, S3 (s3s-fs and moto), PostgreSQL and redis. After each
//! kill every visible version must load (sha256 checked) and every alias
//! must name a visible version; at the end `wharf gc --older-than 0s` must
//! leave nothing unreferenced: no transaction record, and exactly the files
//! of the visible versions under the model.
//!
//! `WHARF_CRASH_KILLS` kills per backend (default 6, what CI runs; the
//! issue's long mode is 50).

#![cfg(unix)]

mod common;

use common::{stderr, test_env, write_model};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set: run ./scripts/test.sh"))
}

fn config(dir: &Path, prefix: &str) {
    let pg = env("WHARF_TEST_PG_ADDR");
    let redis = env("WHARF_TEST_REDIS_ADDR");
    std::fs::create_dir_all(dir.join("local")).unwrap();
    std::fs::write(
        dir.join("wharf.toml"),
        format!(
            r#"
[backends.local]
plugin = "local_filesystem"
[backends.local.config]
root = "/data"
[[backends.local.grants.dirs]]
host = "local"
guest = "/data"
create = true

[backends.s3s]
plugin = "aws_s3"
[backends.s3s.config]
endpoint = "{s3s}"
bucket = "wharf-test"
access_key_id = "{s3s_key}"
secret_access_key = "{s3s_secret}"
prefix = "{prefix}/"
part_size = "5MiB"
[backends.s3s.grants]
http = ["http://127.0.0.1:*"]

[backends.moto]
plugin = "aws_s3"
[backends.moto.config]
endpoint = "{moto}"
bucket = "wharf-test"
access_key_id = "moto"
secret_access_key = "moto"
prefix = "{prefix}/"
part_size = "5MiB"
[backends.moto.grants]
http = ["http://127.0.0.1:*"]

[backends.pg]
plugin = "database"
[backends.pg.config]
address = "{pg}"
user = "{pg_user}"
password = "{pg_password}"
dbname = "{pg_db}"
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
            s3s = env("WHARF_TEST_S3S_URL"),
            s3s_key = env("WHARF_TEST_S3S_ACCESS_KEY"),
            s3s_secret = env("WHARF_TEST_S3S_SECRET_KEY"),
            moto = env("WHARF_TEST_MOTO_URL"),
            pg_user = env("WHARF_TEST_PG_USER"),
            pg_password = env("WHARF_TEST_PG_PASSWORD"),
            pg_db = env("WHARF_TEST_PG_DB"),
            redis_password = env("WHARF_TEST_REDIS_PASSWORD"),
        ),
    )
    .unwrap();
}

fn cmd(dir: &Path, backend: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
    c.args(["--config", "wharf.toml", "-b", backend])
        .args(args)
        .envs(test_env(dir))
        .env_remove("WHARF_DATA_DIR")
        .current_dir(dir);
    c
}

fn run(dir: &Path, backend: &str, args: &[&str]) -> Output {
    cmd(dir, backend, args).output().unwrap()
}

fn ok_json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A small deterministic generator (xorshift), so a failing run can be
/// repeated from the seed it prints.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The visible versions (numbers) and aliases of `det`; checks every alias
/// names a visible version.
fn state(dir: &Path, backend: &str) -> (Vec<String>, Vec<(String, String)>) {
    let out = run(dir, backend, &["--json", "versions", "det"]);
    let versions: Vec<String> = if out.status.code() == Some(3) {
        Vec::new()
    } else {
        ok_json(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_string())
            .collect()
    };
    let aliases: Vec<(String, String)> = ok_json(&run(dir, backend, &["--json", "alias", "ls", "det"]))
        .as_object()
        .unwrap()
        .iter()
        .map(|(a, v)| (a.clone(), v.as_str().unwrap().to_string()))
        .collect();
    for (a, v) in &aliases {
        assert!(
            versions.contains(v),
            "{backend}: alias {a} names {v}, not a visible version ({versions:?})"
        );
    }
    (versions, aliases)
}

fn verify(dir: &Path, backend: &str, version: &str) {
    let out = run(dir, backend, &["get", &format!("det@{version}"), "-o", "-"]);
    assert!(
        out.status.success(),
        "{backend}: det@{version} does not load: {}",
        stderr(&out)
    );
}

fn crash_on(backend: &str) {
    let kills: u64 = std::env::var("WHARF_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let prefix = format!("crash{}{backend}", nanos % 1_000_000_000);
    config(d, &prefix);
    // Big enough for several S3 parts (multipart) and a noticeable save.
    write_model(&d.join("big.onnx"), 24 << 20);
    write_model(&d.join("small.onnx"), 100_000);
    let seed = nanos | 1;
    eprintln!("{backend}: seed {seed}");
    let mut rng = Rng(seed);
    // One committed version for alias moves to start from.
    ok_json(&run(
        d,
        backend,
        &["put", "small.onnx", "--model", "det", "--alias", "prod"],
    ));
    let (mut killed, mut finished) = (0, 0);
    for _ in 0..kills {
        let (versions, _) = state(d, backend);
        let args: Vec<String> = match rng.next() % 3 {
            0 => ["put", "big.onnx", "--model", "det"].map(String::from).to_vec(),
            1 => [
                "put", "big.onnx", "--model", "det", "--alias", "prod", "--alias", "next",
            ]
            .map(String::from)
            .to_vec(),
            _ => {
                let v = &versions[(rng.next() % versions.len() as u64) as usize];
                vec!["alias".into(), "set".into(), "det".into(), "prod".into(), v.clone()]
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = cmd(d, backend, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % 500));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap(); // SIGKILL
                killed += 1;
            }
        }
        child.wait().unwrap();
        let (versions, _) = state(d, backend);
        if let Some(last) = versions.last() {
            verify(d, backend, last);
        }
    }
    let (versions, _) = state(d, backend);
    for v in &versions {
        verify(d, backend, v);
    }
    let report = ok_json(&run(d, backend, &["--json", "gc", "--older-than", "0s"]));
    // Nothing unreferenced: no transaction record, and under the model
    // only manifests, tombstones, aliases and the visible versions' files.
    let ls = |prefix: &str| -> Vec<String> {
        let out = run(d, backend, &["--json", "ls", prefix]);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let records = ls("_wharf/tx/");
    assert!(
        records.is_empty(),
        "{backend}: transaction records left: {records:?}; gc said {report}"
    );
    let expected_files: usize = versions
        .iter()
        .map(|v| {
            ok_json(&run(d, backend, &["stat", &format!("det@{v}")]))["files"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    let objects = ls("models/det/");
    let data: BTreeSet<&String> = objects
        .iter()
        .filter(|p| !p.ends_with("/wharf.json") && !p.contains("/_wharf/aliases/"))
        .collect();
    assert_eq!(
        data.len(),
        expected_files,
        "{backend}: {data:?} for versions {versions:?}; gc said {report}"
    );
    let (versions_after, _) = state(d, backend);
    assert_eq!(versions, versions_after, "gc changed what is visible");
    // Nothing pending is left either (S3 multipart uploads, temporary
    // files): a second look finds nothing to remove.
    let again = ok_json(&run(d, backend, &["--json", "gc", "--older-than", "0s", "--dry-run"]));
    assert_eq!(again["objects"], 0, "{backend}: a second gc finds {again}");
    assert_eq!(again["pending_uploads"], 0, "{backend}: a second gc finds {again}");
    if matches!(backend, "local" | "moto") {
        assert!(
            again["pending_unsupported"].is_null(),
            "{backend} lists pending uploads: {again}"
        );
    }
    if backend == "local" {
        // On disk, counted without wharf: only the listed objects, no
        // temporary file.
        let listed: BTreeSet<String> = ls("").into_iter().collect();
        let mut on_disk = BTreeSet::new();
        let root = d.join("local");
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                    on_disk.insert(rel);
                }
            }
        }
        assert_eq!(on_disk, listed, "local: files on disk that are not objects");
    }
    eprintln!(
        "{backend}: {kills} runs, {killed} killed mid-way, {finished} finished; {} versions visible and verified; gc removed {} objects and {} pending uploads ({} bytes); nothing unreferenced left",
        versions.len(),
        report["objects"],
        report["pending_uploads"],
        report["bytes"]
    );
}

#[test]
fn killed_on_local_filesystem() {
    crash_on("local");
}

#[test]
fn killed_on_s3s() {
    crash_on("s3s");
}

#[test]
fn killed_on_moto() {
    crash_on("moto");
}

#[test]
fn killed_on_postgres() {
    crash_on("pg");
}

#[test]
fn killed_on_redis() {
    crash_on("redis");
}
