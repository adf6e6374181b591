//! The compiled-component cache, and why it cannot be used to run code.
//!
//! A `.cwasm` is native machine code that wasmtime maps and jumps into, so
//! whoever can write a cache file can run code as the user. Every entry is
//! therefore authenticated: `WHARFCW1`, then an HMAC-SHA256 tag, then the
//! bytes wasmtime produced. The tag covers the wasm's sha256, the engine's
//! compatibility hash and the bytes, under a 32-byte key that only this user
//! can read (`$XDG_STATE_HOME/wharf/cache.key`, mode 0600, never inside the
//! cache). A file that fails the check, is a symbolic link, or is writable by
//! others is ignored and recompiled over; a copied entry of another
//! component fails because the tag binds the name. Entries are read into
//! memory, checked, and deserialized from that same memory, so nothing can
//! change between the check and the use.

use crate::ownership::{open_nofollow, owned_and_private, private_dir, write_private};
use ring::hmac;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"WHARFCW1";
const TAG_LEN: usize = 32;
/// Larger cache entries are not read (the largest built-in is ~30 MiB).
const MAX_ENTRY: u64 = 1 << 30;

/// `$WHARF_CACHE_KEY`, else `$XDG_STATE_HOME/wharf/cache.key`, else
/// `~/.local/state/wharf/cache.key`.
pub fn default_cache_key_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WHARF_CACHE_KEY") {
        return Some(PathBuf::from(p));
    }
    crate::config::state_dir().map(|d| d.join("cache.key"))
}

/// An authenticated on-disk cache of compiled components.
pub(crate) struct CompileCache {
    dir: PathBuf,
    key: hmac::Key,
    /// Names the key in file names, so users (or test runs) with different
    /// keys sharing one directory do not overwrite each other's entries.
    key_id: String,
}

impl CompileCache {
    /// Opens the cache in `dir` with the key in `key_file` (created if
    /// missing). `None`, with a warning, when either cannot be trusted:
    /// the host then compiles in memory every time.
    pub(crate) fn open(dir: &Path, key_file: &Path) -> Option<Self> {
        let key = match load_or_create_key(key_file) {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!(key = %key_file.display(), "not using the compiled-component cache: {why}");
                return None;
            }
        };
        if let Err(why) = private_dir(dir) {
            tracing::warn!(dir = %dir.display(), "not using the compiled-component cache: {why}");
            return None;
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let key_id = hex::encode(&hmac::sign(&key, b"wharf cache key id").as_ref()[..4]);
        Some(CompileCache {
            dir: dir.to_path_buf(),
            key,
            key_id,
        })
    }

    fn file(&self, wasm_sha256: &str, engine_hash: u64) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{engine_hash:016x}-{}.cwasm", self.key_id))
    }

    fn tag(&self, wasm_sha256: &str, engine_hash: u64, bytes: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"wharf compiled component v1\0");
        ctx.update(wasm_sha256.as_bytes());
        ctx.update(&engine_hash.to_le_bytes());
        ctx.update(bytes);
        ctx.sign()
    }

    /// The cached component, if an authentic entry exists.
    pub(crate) fn load(&self, engine: &Engine, wasm_sha256: &str, engine_hash: u64) -> Option<Component> {
        let file = self.file(wasm_sha256, engine_hash);
        let entry = match read_entry(&file) {
            Ok(Some(e)) => e,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(file = %file.display(), "ignoring compiled-component cache entry: {why}; recompiling");
                return None;
            }
        };
        let (tag, body) = entry[MAGIC.len()..].split_at(TAG_LEN);
        if !constant_time_eq(self.tag(wasm_sha256, engine_hash, body).as_ref(), tag) {
            tracing::warn!(
                file = %file.display(),
                "compiled-component cache entry fails its authentication check (not written by this user's wharf for this component); recompiling"
            );
            return None;
        }
        // SAFETY: `body` is exactly what this user's wharf wrote for this
        // wasm sha256 and engine (the HMAC under the user's private key says
        // so), and it lives in our own memory, so it cannot change after the
        // check. wasmtime also checks the engine settings recorded inside.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(file = %file.display(), "unusable compiled-component cache entry: {e:#}; recompiling");
                None
            }
        }
    }

    /// Stores a freshly compiled component; failures are only warnings.
    pub(crate) fn store(&self, wasm_sha256: &str, engine_hash: u64, bytes: &[u8]) {
        let file = self.file(wasm_sha256, engine_hash);
        let tag = self.tag(wasm_sha256, engine_hash, bytes);
        if let Err(e) = write_private(&file, &[MAGIC, tag.as_ref(), bytes]) {
            tracing::warn!(dir = %self.dir.display(), "cannot cache compiled component: {e}");
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a whole entry, refusing links, foreign owners, loose modes and
/// anything without the header. `Ok(None)`: no entry.
fn read_entry(file: &Path) -> Result<Option<Vec<u8>>, String> {
    let mut f = match open_nofollow(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it ({e})")),
    };
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    owned_and_private(&meta, 0o022)?;
    if meta.len() > MAX_ENTRY || meta.len() < (MAGIC.len() + TAG_LEN) as u64 {
        return Err(format!("implausible size {}", meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut f)
        .take(MAX_ENTRY)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if !bytes.starts_with(MAGIC) {
        return Err("no wharf header (written by an older wharf, or by something else)".into());
    }
    Ok(Some(bytes))
}

/// The key file: 32 random bytes, created 0600 (in a 0700 directory) if it
/// does not exist; refused if it is a link, someone else's, or readable or
/// writable by others.
fn load_or_create_key(file: &Path) -> Result<[u8; 32], String> {
    match open_nofollow(file) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(|e| e.to_string())?;
            if !meta.is_file() {
                return Err("the key is not a regular file".into());
            }
            owned_and_private(&meta, 0o077)?;
            let mut key = [0u8; 32];
            let mut rest = Vec::new();
            f.read_exact(&mut key).map_err(|e| format!("reading the key: {e}"))?;
            f.read_to_end(&mut rest).map_err(|e| format!("reading the key: {e}"))?;
            if !rest.is_empty() {
                return Err("the key file is longer than 32 bytes".into());
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = file.parent().ok_or("the key file has no directory")?;
            private_dir(dir)?;
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| e.to_string())?;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
            }
            match o.open(file) {
                Ok(mut f) => {
                    f.write_all(&key)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| format!("writing the key: {e}"))?;
                    Ok(key)
                }
                // Another wharf created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(file),
                Err(e) => Err(format!("creating the key: {e}")),
            }
        }
        Err(e) => Err(format!("cannot open the key ({e})")),
    }
}
