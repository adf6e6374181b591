//! Builds the guest fixtures under `fixtures/` for wasm32-wasip2, the same
//! way host/build.rs builds the built-in adapters, and writes their paths
//! into `$OUT_DIR/fixtures.rs`.

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "../build-support/guests.rs"]
mod guests;

/// (constant name, crate name) of every fixture.
const FIXTURES: &[(&str, &str)] = &[
    ("MISBEHAVE", "wharf-fixture-misbehave"),
    ("LEGACY", "wharf-fixture-legacy"),
    ("FLAWED", "wharf-fixture-flawed"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let crates: Vec<&str> = FIXTURES.iter().map(|(_, c)| *c).collect();
    let wasm_dir = guests::build_guests(&root, &crates);

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
    println!("cargo:rerun-if-changed={}", root.join("build-support").display());
}
