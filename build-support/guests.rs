//! Shared by host/build.rs and tests/build.rs: builds guest crates for
//! wasm32-wasip2, the way wasmtime builds its test programs (an inner
//! `cargo build` with its own target directory, so it never fights the
//! outer build for a lock). Included with `#[path]`, not a crate.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cargo build --target wasm32-wasip2 --profile guest -p ...` and
/// returns the directory holding the `.wasm` files.
pub fn build_guests(root: &Path, crates: &[&str]) -> PathBuf {
    ensure_target();
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
    let status = cmd.status().expect("running cargo to build the guest adapters");
    assert!(status.success(), "building the guest adapters for wasm32-wasip2 failed");
    target_dir.join("wasm32-wasip2").join("guest")
}

const TARGET: &str = "wasm32-wasip2";

/// Makes sure the toolchain building us has the wasm32-wasip2 standard
/// library. rustup installs a toolchain file's `targets` only when it installs
/// the toolchain itself, so a machine that already had 1.95 lacks it; add it
/// here (seconds) instead of failing minutes later inside the guest build.
fn ensure_target() {
    if target_installed() {
        return;
    }
    // Set by rustup's proxies: the toolchain this build runs with.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Some(t) = &toolchain {
        add.args(["--toolchain", t]);
    }
    let manual = match &toolchain {
        Some(t) => format!("rustup target add {TARGET} --toolchain {t}"),
        None => format!("rustup target add {TARGET}"),
    };
    println!("cargo:warning=the {TARGET} target is missing; running `{manual}`");
    match add.status() {
        Ok(s) if s.success() && target_installed() => {}
        Ok(s) => {
            panic!("the {TARGET} target is not installed and `{manual}` failed ({s}); run it by hand, then build again")
        }
        Err(e) => panic!(
            "the {TARGET} target is not installed and rustup could not be run ({e}). \
             Install the target's standard library for this toolchain (with rustup: `{manual}`), then build again"
        ),
    }
}

/// Whether `rustc` has a standard library for the target.
fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("running rustc --print target-libdir");
    if !out.status.success() {
        return false;
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // The directory exists once the target's rust-std component is installed.
    std::fs::read_dir(&dir)
        .map(|mut entries| entries.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-"))))
        .unwrap_or(false)
}
