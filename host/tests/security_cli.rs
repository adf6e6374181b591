//! The `wharf` binary against an attacker who controls something outside
//! the process: the compile cache, the bytes and manifests in storage, a
//! `wharf.toml` in the working directory, paths it writes to, names it
//! prints. Each test is one way around the sandbox or the integrity checks
//! that used to work.

mod common;

use common::{guest_wasm, stderr, test_env, wharf, wharf_implicit, write_model};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Overwrites an ELF's `.text` section with a NOP sled that ends in
/// `exit_group(42)`: real x86-64 machine code that any call into the
/// compiled component would run.
fn plant_exit_42(elf: &mut [u8]) {
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..4], b"\x7fELF", "a compiled component is an ELF file");
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(elf, 0x28),
        u16_at(elf, 0x3a),
        u16_at(elf, 0x3c),
        u16_at(elf, 0x3e),
    );
    let section = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(elf, section(shstrndx) + 24);
    let text = (0..shnum)
        .map(section)
        .find(|&h| {
            let name = strtab + u32_at(elf, h);
            elf[name..].starts_with(b".text\0")
        })
        .expect("a .text section");
    let (off, size) = (u64_at(elf, text + 24), u64_at(elf, text + 32));
    // mov edi, 42; mov eax, 231 (exit_group); syscall
    let exit: [u8; 12] = [0xbf, 42, 0, 0, 0, 0xb8, 231, 0, 0, 0, 0x0f, 0x05];
    assert!(size > exit.len());
    elf[off..off + size].fill(0x90);
    elf[off + size - exit.len()..off + size].copy_from_slice(&exit);
}

fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

/// The local_filesystem backend as the default has it, pinned.
fn pinned_local(pin: &str) -> String {
    format!(
        "[backends.local_filesystem]\nsha256 = \"{pin}\"\n[backends.local_filesystem.config]\nroot = \"/data\"\n\
         [[backends.local_filesystem.grants.dirs]]\nhost = \"wharf-data\"\nguest = \"/data\"\n"
    )
}

/// The sha256 of the built-in's embedded bytes, as `plugins inspect` says
/// (read from the binary, not from a guest build another test process may
/// be rewriting at that moment).
fn builtin_sha256(dir: &Path, name: &str) -> String {
    let o = wharf(dir, &["plugins", "inspect", name]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let sha = out
        .lines()
        .find_map(|l| l.strip_prefix("sha256:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no sha256 in `plugins inspect {name}`: {out}"));
    assert_eq!(sha.len(), 64, "{out}");
    sha
}

/// Item 1: a `.cwasm` planted in the cache (through `$WHARF_CACHE_DIR` or
/// `cache_dir`, with the plugin pinned) is never executed: wharf compiles
/// the pinned bytes again and the planted code does not run.
#[test]
fn planted_machine_code_in_the_compile_cache_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let pin = builtin_sha256(dir.path(), "local_filesystem");
    std::fs::write(
        dir.path().join("wharf.toml"),
        format!("cache_dir = \"cache\"\n{}", pinned_local(&pin)),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("wharf-data")).unwrap();
    std::fs::write(dir.path().join("wharf-data/listed.txt"), b"x").unwrap();
    let first = wharf(dir.path(), &["ls"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let files = cwasm_files(&cache);
    assert_eq!(files.len(), 1, "one compiled component cached: {files:?}");

    // Plant machine code where wharf will look, keeping whatever header the
    // file has (the ELF starts wherever it starts). Each run that refuses it
    // compiles afresh and replaces it, so plant again before each.
    let plant = || {
        let files = cwasm_files(&cache);
        assert_eq!(files.len(), 1, "{files:?}");
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let elf_at = bytes
            .windows(4)
            .position(|w| w == b"\x7fELF")
            .expect("an ELF inside the entry");
        plant_exit_42(&mut bytes[elf_at..]);
        std::fs::write(&files[0], &bytes).unwrap();
    };
    for via_env in [false, true] {
        plant();
        let o = if via_env {
            // The same cache through the environment variable.
            std::fs::write(dir.path().join("wharf.toml"), pinned_local(&pin)).unwrap();
            common::wharf_with(dir.path(), &["ls"], &[("WHARF_CACHE_DIR", cache.to_str().unwrap())])
        } else {
            wharf(dir.path(), &["ls"])
        };
        assert_ne!(o.status.code(), Some(42), "the planted machine code ran");
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("listed.txt"));
        assert!(
            stderr(&o).contains("authentication check"),
            "the refusal is logged: {}",
            stderr(&o)
        );
    }
}

/// Item 1: a wrong pin is refused before anything is compiled or cached.
#[test]
fn wrong_pin_is_refused_before_anything_is_compiled() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        format!(
            "cache_dir = \"cache\"\n[backends.local_filesystem]\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("pins abab"), "{}", stderr(&o));
    assert!(
        cwasm_files(&dir.path().join("cache")).is_empty(),
        "nothing was compiled into the cache"
    );
}

fn put(dir: &Path, args: &[&str]) -> serde_json::Value {
    let o = wharf(dir, args);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.join("info.json"), &o.stdout).unwrap();
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The stored file of a one-file model, and its manifest.
fn stored(dir: &Path, storage_path: &str) -> (PathBuf, PathBuf) {
    let base = dir.join("wharf-data").join(storage_path);
    let upload = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir())
        .unwrap()
        .path();
    let file = std::fs::read_dir(&upload).unwrap().flatten().next().unwrap().path();
    (file, base.join("wharf.json"))
}

/// Item 2: `get --info` checks the bytes against the caller's record, not
/// against whatever the stored manifest says about itself.
#[test]
fn get_info_verifies_against_the_callers_record() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.onnx"), 1 << 20);
    let info = put(
        dir.path(),
        &["put", "model.onnx", "--model", "m", "--model-version", "v1"],
    );
    let (file, manifest) = stored(dir.path(), "models/m/v1");

    // Replace the bytes, then make the manifest's per-file entry match them.
    let evil = b"not the model that was saved".to_vec();
    std::fs::write(&file, &evil).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let sha = hex::encode(Sha256::digest(&evil));
    m["info"]["files"][0]["checksum"] = sha.clone().into();
    m["info"]["files"][0]["size_bytes"] = evil.len().into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let o = wharf(dir.path(), &["get", "--info", "info.json", "-o", "out.onnx"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(!dir.path().join("out.onnx").exists());

    // A manifest made wholly consistent with the new bytes still fails
    // against the checksum the caller recorded.
    m["info"]["checksum"] = sha.into();
    m["info"]["size_bytes"] = evil.len().into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let o = wharf(dir.path(), &["get", "--info", "info.json", "-o", "out.onnx"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(info["checksum"].as_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out.onnx").exists());
}

/// Item 3: paths from a stored manifest are checked before anything is
/// created, and an existing file is never replaced without `--force`.
#[test]
fn outputs_are_checked_before_any_filesystem_effect() {
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.onnx"), 1 << 16);
    put(
        dir.path(),
        &["put", "model.onnx", "--model", "m", "--model-version", "v1"],
    );

    // `-o DIR` lands on DIR/model.onnx: an existing file there is kept.
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/model.onnx"), b"precious").unwrap();
    let o = wharf(dir.path(), &["get", "models/m/v1", "-o", "out"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("out/model.onnx")).unwrap(), b"precious");
    let o = wharf(dir.path(), &["get", "models/m/v1", "-o", "out", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("out/model.onnx")).unwrap(),
        std::fs::read(dir.path().join("model.onnx")).unwrap()
    );

    // A folder model whose manifest points outside the output.
    std::fs::create_dir_all(dir.path().join("folder/sub")).unwrap();
    std::fs::write(dir.path().join("folder/a.bin"), b"a").unwrap();
    std::fs::write(dir.path().join("folder/sub/b.bin"), b"b").unwrap();
    put(dir.path(), &["put", "folder", "--model", "f", "--model-version", "v1"]);
    let manifest = dir.path().join("wharf-data/models/f/v1/wharf.json");
    let original = std::fs::read(&manifest).unwrap();
    for evil in ["../escape/x.bin", "/tmp/wharf-escape-test/x.bin", "sub", "sub/b.bin"] {
        let mut m: serde_json::Value = serde_json::from_slice(&original).unwrap();
        m["info"]["files"][0]["path"] = evil.into();
        std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
        let o = wharf(dir.path(), &["get", "models/f/v1", "-o", "back"]);
        assert_eq!(o.status.code(), Some(5), "{evil}: {}", stderr(&o));
        assert!(stderr(&o).contains("not trustworthy"), "{evil}: {}", stderr(&o));
        assert!(
            !dir.path().join("escape").exists(),
            "{evil} created a directory outside"
        );
        assert!(!Path::new("/tmp/wharf-escape-test").exists());
        assert!(!dir.path().join("back").exists());
    }
}

/// Item 3: a FIFO (like `/dev/null`, a character device) is written in
/// place, never replaced by a regular file; `-o -` writes to stdout.
#[test]
fn special_outputs_are_written_in_place() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    write_model(&dir.path().join("model.onnx"), 1 << 20);
    put(
        dir.path(),
        &["put", "model.onnx", "--model", "m", "--model-version", "v1"],
    );
    let model = std::fs::read(dir.path().join("model.onnx")).unwrap();

    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Open the read end first (non-blocking), so the writer never waits.
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["get", "models/m/v1", "-o", "pipe", "--force"])
        .envs(test_env(dir.path()))
        .current_dir(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "no end of output within 60 s");
        match reader.read(&mut buf) {
            Ok(0) if child.try_wait().unwrap().is_some() => break,
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced by a regular file"
    );
    assert_eq!(got.len(), model.len());
    assert!(got == model);

    let o = wharf(dir.path(), &["get", "models/m/v1", "-o", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == model, "stdout carries the model");
}

/// Item 4: a `./wharf.toml` is used implicitly only when this user owns it,
/// nobody else can write it, and this user approved this exact content.
#[test]
fn implicit_config_needs_ownership_and_approval() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    // What a hostile repository could carry: a secret sent to its listener.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = format!(
        "default_backend = \"s3\"\n[backends.s3]\nplugin = \"aws_s3\"\n[backends.s3.config]\nbucket = \"b\"\n\
         endpoint = \"http://127.0.0.1:{port}\"\naccess_key_id = \"AKIA\"\nsecret_access_key = \"${{env:HOME}}\"\n\
         [backends.s3.grants]\nhttp = [\"http://127.0.0.1:{port}\"]\n"
    );
    std::fs::write(repo.join("wharf.toml"), &config).unwrap();
    let o = wharf_implicit(&repo, &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("never approved") && stderr(&o).contains("wharf config trust"),
        "{}",
        stderr(&o)
    );
    assert!(listener.accept().is_err(), "nothing may reach the listener");

    // Approved, then edited: refused again until approved again.
    std::fs::write(repo.join("wharf.toml"), "default_backend = \"local_filesystem\"\n").unwrap();
    let o = wharf_implicit(&repo, &["config", "trust"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wharf_implicit(&repo, &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(repo.join("wharf.toml"), &config).unwrap();
    let o = wharf_implicit(&repo, &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("changed since it was approved"), "{}", stderr(&o));

    // Writable by others: refused even when approved.
    std::fs::write(repo.join("wharf.toml"), "default_backend = \"local_filesystem\"\n").unwrap();
    assert!(wharf_implicit(&repo, &["config", "trust"]).status.success());
    std::fs::set_permissions(repo.join("wharf.toml"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = wharf_implicit(&repo, &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("mode 666"), "{}", stderr(&o));

    // Named explicitly, it is the user's choice.
    std::fs::set_permissions(repo.join("wharf.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = wharf_implicit(&repo, &["--config", "wharf.toml", "ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(listener.accept().is_err());
}

/// Item 5: values resolved from `${file:}` / `${env:}` never appear in what
/// wharf prints, whatever the adapter puts in its messages.
#[test]
fn resolved_secrets_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), "s3cr3t-root-value\nsecond-line-of-it\n").unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        "[backends.local_filesystem.config]\nroot = \"${file:secret.txt}\"\n",
    )
    .unwrap();
    let o = common::wharf_with(dir.path(), &["ls"], &[("RUST_LOG", "trace")]);
    assert!(!o.status.success());
    let all = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    assert!(!all.contains("s3cr3t") && !all.contains("second-line"), "{all}");
    assert!(all.contains("[redacted]"), "{all}");
}

/// Item 7: `metrics_file` never truncates a file it did not write and never
/// follows a link (a metrics file pointed at `Cargo.lock` used to empty it).
#[test]
fn metrics_file_never_clobbers_what_it_points_at() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Cargo.lock"), "precious").unwrap();
    std::fs::write(dir.path().join("project.txt"), "also precious").unwrap();
    std::os::unix::fs::symlink("project.txt", dir.path().join("m.lock")).unwrap();
    for target in ["Cargo.lock", "m.json"] {
        std::fs::write(dir.path().join("wharf.toml"), format!("metrics_file = \"{target}\"\n")).unwrap();
        let o = wharf(dir.path(), &["ls"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Cargo.lock")).unwrap(),
        "precious"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("project.txt")).unwrap(),
        "also precious"
    );
}

/// Item 7: names from storage cannot drive the terminal.
#[test]
fn listed_names_cannot_carry_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("wharf-data")).unwrap();
    std::fs::write(dir.path().join("wharf-data/evil\x1b]0;owned\x07\x1b[2Jname"), b"x").unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(out.contains("evil\\u{1b}]0;owned"), "{out}");
}

/// Item 7: a plugin directory others can write is refused; a plugin that
/// replaces a built-in is named in the log.
#[test]
fn plugin_directory_must_be_private_and_shadowing_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        guest_wasm("wharf-adapter-local-filesystem"),
        plugins.join("local_filesystem.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("wharf.toml"), "plugin_dir = \"plugins\"\n").unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("replaces the built-in"), "{}", stderr(&o));

    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("plugin directory"), "{}", stderr(&o));
}

/// Item 7: an adapter refusing its config in `open` is a configuration
/// error (exit 6), and `stat` of an object path answers its metadata.
#[test]
fn open_config_errors_exit_6_and_stat_takes_object_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wharf.toml"),
        "[backends.local_filesystem.config]\nroot = \"/data\"\nbogus = \"1\"\n",
    )
    .unwrap();
    let o = wharf(dir.path(), &["ls"]);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("bogus"), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("wharf.toml")).unwrap();

    write_model(&dir.path().join("model.onnx"), 1000);
    put(
        dir.path(),
        &["put", "model.onnx", "--model", "m", "--model-version", "v1"],
    );
    let o = wharf(dir.path(), &["stat", "models/m/v1/wharf.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(meta["path"], "models/m/v1/wharf.json");
}

/// Item 7: `plugins verify` grants a fresh private directory, never one
/// that already existed under a predictable name.
#[test]
fn verify_scratch_directory_is_fresh_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let good = guest_wasm("wharf-adapter-local-filesystem");
    let o = wharf(
        dir.path(),
        &["plugins", "verify", good.to_str().unwrap(), "--only", "health"],
    );
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let scratch = all
        .split_whitespace()
        .find(|w| w.contains("wharf-verify-"))
        .unwrap_or_else(|| panic!("the scratch directory is named: {all}"));
    let name = Path::new(scratch).file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !name
            .trim_start_matches("wharf-verify-")
            .chars()
            .all(|c| c.is_ascii_digit()),
        "the name is not predictable from a pid: {name}"
    );
    assert!(!Path::new(scratch).exists(), "removed after verification");
}
