//! Builds the built-in adapters for wasm32-wasip2 and embeds them.
//!
//! Like wasmtime's test-programs: an inner `cargo build` with its own target
//! directory, so it never fights the outer build for a lock.

use std::env;
use std::fmt::Write as _;
use std::path::PathBuf;

#[path = "../build-support/guests.rs"]
mod guests;

/// (backend name, crate name) of every built-in adapter.
const BUILTINS: &[(&str, &str)] = &[
    ("local_filesystem", "wharf-adapter-local-filesystem"),
    ("aws_s3", "wharf-adapter-aws-s3"),
    ("azure_blob", "wharf-adapter-azure-blob"),
    ("gcp_storage", "wharf-adapter-gcp-storage"),
    ("huggingface_hub", "wharf-adapter-huggingface-hub"),
    ("mlflow", "wharf-adapter-mlflow"),
    ("redis", "wharf-adapter-redis"),
    ("database", "wharf-adapter-database"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=WHARF_BUILTINS");
    let mut code = String::from("/// Adapters compiled into this binary: (backend name, component).\n");
    code.push_str("pub(crate) const BUILTINS: &[(&str, &[u8])] = &[\n");
    // `WHARF_BUILTINS=none`: a host with no built-in adapter, for builds
    // that need none (the fuzz targets) on a toolchain that may lack the
    // wasm32-wasip2 target (the nightly cargo-fuzz uses).
    let builtins = match env::var("WHARF_BUILTINS").as_deref() {
        Ok("none") => &[][..],
        _ => BUILTINS,
    };
    let crates: Vec<&str> = builtins.iter().map(|(_, c)| *c).collect();
    let wasm_dir = if crates.is_empty() {
        PathBuf::new()
    } else {
        guests::build_guests(&root, &crates)
    };
    for (backend, krate) in builtins {
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
    println!("cargo:rerun-if-changed={}", root.join("build-support").display());
}
