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
    assert!(
        status.success(),
        "building the guest adapters for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)"
    );
    target_dir.join("wasm32-wasip2").join("guest")
}
