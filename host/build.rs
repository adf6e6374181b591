//! Builds the built-in adapters for wasm32-wasip2 and embeds them.
//!
//! Like wasmtime's test-programs: an inner `cargo build` with its own target
//! directory, so it never fights the outer build for a lock.

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

/// (backend name, crate name) of every built-in adapter.
const BUILTINS: &[(&str, &str)] = &[("local_filesystem", "wharf-adapter-local-filesystem")];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let crates: Vec<&str> = BUILTINS.iter().map(|(_, c)| *c).collect();
    let wasm_dir = build_guests(&root, &crates);

    let mut code = String::from("/// Adapters compiled into this binary: (backend name, component).\n");
    code.push_str("pub(crate) const BUILTINS: &[(&str, &[u8])] = &[\n");
    for (backend, krate) in BUILTINS {
        let file = wasm_dir.join(format!("{}.wasm", krate.replace('-', "_")));
        let copy = out_dir.join(format!("{backend}.wasm"));
        std::fs::copy(&file, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
        writeln!(
            code,
            "    ({backend:?}, include_bytes!({:?})),",
            copy.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), code).unwrap();

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("adapters").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
}

/// Runs `cargo build --target wasm32-wasip2 --profile guest -p ...` and
/// returns the directory holding the `.wasm` files.
fn build_guests(root: &PathBuf, crates: &[&str]) -> PathBuf {
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
