//! Files and directories only this user controls: the checks behind the
//! compile cache, the plugin directory and implicitly found configs.

use std::path::Path;

/// Opens a file for reading without following a symbolic link at its last
/// component.
pub fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW);
    }
    o.open(path)
}

/// Creates `dir` (0700) if missing; refuses one that is a link, someone
/// else's, or writable by others.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("creating `{}`: {e}", dir.display()))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err(format!("`{}` is not a directory (a symbolic link?)", dir.display()));
    }
    owned_and_private(&meta, 0o022).map_err(|why| format!("`{}`: {why}", dir.display()))
}

/// The file belongs to this user (or root) and has none of `forbidden` mode bits.
#[cfg(unix)]
pub fn owned_and_private(meta: &std::fs::Metadata, forbidden: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!("owned by uid {}, not by this user (uid {me})", meta.uid()));
    }
    if meta.mode() & forbidden != 0 {
        return Err(format!(
            "its mode {:o} gives other users access (allowed: {:o})",
            meta.mode() & 0o777,
            0o777 & !forbidden
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn owned_and_private(_meta: &std::fs::Metadata, _forbidden: u32) -> Result<(), String> {
    Ok(())
}

/// Replaces `file` atomically with `parts`: written to a new 0600 file next
/// to it (created, never opened through a link), synced, then renamed over.
pub fn write_private(file: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::Write;
    let name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = file.with_file_name(format!(
        ".{name}.tmp-{}-{:x}",
        std::process::id(),
        crate::runtime::rand_u64()
    ));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let result = (|| {
        let mut f = o.open(&tmp)?;
        for p in parts {
            f.write_all(p)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
