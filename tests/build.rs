//! Builds the guest fixtures under `fixtures/` for wasm32-wasip2, the same
//! way host/build.rs builds the built-in adapters, and writes their paths
//! into `$OUT_DIR/fixtures.rs`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, crate name) of every fixture.
const FIXTURES: &[(&str, &str)] = &[("MISBEHAVE", "wharf-fixture-misbehave")];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let crates: Vec<&str> = FIXTURES.iter().map(|(_, c)| *c).collect();
    let wasm_dir = build_guests(&root, &crates);

    let mut code = String::new();
    for (name, krate) in FIXTURES {
        let file_name = format!("{}.wasm", krate.replace('-', "_"));
        let file = wasm_dir.join(&file_name);
        // A copy of our own, so a later guest build cannot change it under us.
        let copy = out_dir.join(&file_name);
        std::fs::copy(&file, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
        writeln!(code, "/// The `{krate}` component (absolute path).").unwrap();
        writeln!(code, "pub const {name}: &str = {:?};", copy.display().to_string()).unwrap();
    }
    std::fs::write(out_dir.join("fixtures.rs"), code).unwrap();

    println!("cargo:rerun-if-changed={}", manifest_dir.join("fixtures").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}

/// Runs `cargo build --target wasm32-wasip2 --profile guest -p ...` and
/// returns the directory holding the `.wasm` files. A copy of
/// host/build.rs's `build_guests`: same target directory, same scrubbing.
fn build_guests(root: &Path, crates: &[&str]) -> PathBuf {
    let target_dir = env::var_os("WHARF_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guests"));
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--target", "wasm32-wasip2", "--profile", "guest", "--locked"])
        .env("CARGO_TARGET_DIR", &target_dir);
    for c in crates {
        cmd.args(["-p", c]);
    }
    // Flags meant for the host build must not leak into the guest build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in env::vars_os() {
        if k.to_string_lossy().starts_with("CARGO_PROFILE_") {
            cmd.env_remove(k);
        }
    }
    let status = cmd.status().expect("running cargo to build the guest fixtures");
    assert!(
        status.success(),
        "building the guest fixtures for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    target_dir.join("wasm32-wasip2").join("guest")
}
