//! What the CLI tests share: running the `wharf` binary as a user would.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::Path;
use std::process::{Command, Output};

pub fn wharf(dir: &Path, args: &[&str]) -> Output {
    wharf_with(dir, args, &[])
}

/// Runs `wharf` in `dir` as a user would, with its own state directory. A
/// `wharf.toml` the test wrote there is named with `--config` (the implicit
/// one must be approved first; `security_cli.rs` tests that rule).
pub fn wharf_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    if dir.join("wharf.toml").is_file() {
        cmd.args(["--config", "wharf.toml"]);
    }
    cmd.args(args)
        .envs(test_env(dir))
        .envs(env.iter().copied())
        .current_dir(dir)
        .env_remove("WHARF_CONFIG")
        .env_remove("WHARF_DATA_DIR")
        .output()
        .expect("wharf runs")
}

/// The environment of every test run: metrics and state in the test's
/// directory, the compile cache and its key shared by all tests.
pub fn test_env(dir: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    vec![
        ("WHARF_METRICS_FILE", dir.join("metrics.json")),
        ("XDG_STATE_HOME", dir.join(".state")),
        ("WHARF_CACHE_DIR", target.join("wharf-test-cache")),
        ("WHARF_CACHE_KEY", target.join("wharf-test-cache.key")),
    ]
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[path = "../../../build-support/guests.rs"]
mod guests;

/// Builds guest crates for wasm32-wasip2 (already built by the build scripts
/// in a full test run, so this is a no-op check then).
pub fn guest_wasm(krate: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    guests::build_guests(root, &[krate]).join(format!("{}.wasm", krate.replace('-', "_")))
}

/// Runs `wharf` in `dir` without naming a config: a `./wharf.toml` there is
/// found implicitly.
pub fn wharf_implicit(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .envs(test_env(dir))
        .current_dir(dir)
        .env_remove("WHARF_CONFIG")
        .env_remove("WHARF_DATA_DIR")
        .output()
        .expect("wharf runs")
}

/// A real ONNX ModelProto of exactly `len` bytes (at least 32): ir_version 8,
/// a producer name, a graph with one initializer whose raw_data is
/// pseudo-random.
pub fn write_model(path: &Path, len: usize) {
    fn varint(mut n: usize, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    let frame = |producer: &str, raw: usize| {
        let mut tensor = vec![0x4a];
        varint(raw, &mut tensor);
        let mut graph = vec![0x2a];
        varint(tensor.len() + raw, &mut graph);
        let mut head = vec![0x08, 0x08, 0x12, producer.len() as u8];
        head.extend_from_slice(producer.as_bytes());
        head.push(0x3a);
        varint(graph.len() + tensor.len() + raw, &mut head);
        head.extend_from_slice(&graph);
        head.extend_from_slice(&tensor);
        head
    };
    // A varint's length can jump past `len`; a longer name closes the gap.
    let (mut v, raw) = ["wharf", "wharf-", "wharf--", "wharf---"]
        .iter()
        .flat_map(|p| (len.saturating_sub(32)..len).map(move |raw| (*p, raw)))
        .find_map(|(p, raw)| {
            let f = frame(p, raw);
            (f.len() + raw == len).then_some((f, raw))
        })
        .expect("a model of that length can be framed");
    let mut x: u32 = 1;
    for _ in 0..raw {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.push((x >> 24) as u8);
    }
    std::fs::write(path, v).unwrap();
}
