//! Which `wharf.toml` may be used without being named.
//!
//! A config names endpoints, plugins, a compile cache and `${env:}` /
//! `${file:}` references, so whoever writes it decides where this user's
//! secrets go and what code runs. A file named explicitly (`--config`,
//! `$WHARF_CONFIG`, a path given to an embedding program) is the user's
//! choice and used as it is. A `./wharf.toml` found in the working directory
//! (a cloned repository, a shared folder) is used only when both hold:
//! - like git's `safe.directory`: the file and its directory belong to this
//!   user (or root) and no one else can write them;
//! - like direnv's `allow`: this user approved exactly this content at this
//!   path ([`approve`], `wharf config trust`); any edit needs a new approval.
//!
//! Approvals are lines `<sha256>  <absolute path>` in
//! `$XDG_STATE_HOME/wharf/trusted-configs` (0600).

use crate::error::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What [`approve`] and [`withdraw`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The file, absolute.
    pub file: PathBuf,
    /// sha256 of its content, hex.
    pub sha256: String,
}

/// Approves `file` for use when it is found in the working directory,
/// after checking it is this user's alone and parses.
pub fn approve(file: &Path) -> Result<Approval> {
    change(file, true)
}

/// Withdraws the approval of `file`.
pub fn withdraw(file: &Path) -> Result<Approval> {
    change(file, false)
}

fn change(file: &Path, add: bool) -> Result<Approval> {
    let abs = std::fs::canonicalize(file).map_err(|e| Error::io(format!("`{}`", file.display()), e))?;
    let text = std::fs::read(&abs).map_err(|e| Error::io(format!("reading `{}`", abs.display()), e))?;
    if add {
        ownership(&abs)?;
        // Approving a file that does not parse would only defer the error.
        let s = String::from_utf8(text.clone())
            .map_err(|_| Error::new(ErrorKind::Config, format!("`{}` is not UTF-8", abs.display())))?;
        crate::Config::parse(&s, &abs.display().to_string())?;
    }
    let digest = hex::encode(Sha256::digest(&text));
    let store = store_file()?;
    let mut lines: Vec<String> = read_store(&store)?
        .into_iter()
        .filter(|(_, p)| p != &abs)
        .map(|(d, p)| format!("{d}  {}", p.display()))
        .collect();
    if add {
        lines.push(format!("{digest}  {}", abs.display()));
    }
    write_store(&store, &lines)?;
    Ok(Approval {
        file: abs,
        sha256: digest,
    })
}

/// Checks a `wharf.toml` found implicitly; returns its text if it may be used.
pub fn implicit(path: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(format!("`{}`", path.display()), e))?;
    let refuse = |why: String| {
        Error::new(
            ErrorKind::Config,
            format!(
                "`{}` was found in the working directory but is not used: {why}. A config decides where credentials are \
             sent and what code runs, so one found implicitly must be yours and approved: review it and run \
             `wharf config trust` (again after every edit), or name it with --config",
                abs.display()
            ),
        )
    };
    ownership(&abs).map_err(|e| refuse(e.message().to_string()))?;
    let text = std::fs::read(&abs).map_err(|e| Error::io(format!("reading `{}`", abs.display()), e))?;
    let digest = hex::encode(Sha256::digest(&text));
    let store = store_file()?;
    let approved = read_store(&store)?;
    match approved.iter().find(|(_, p)| p == &abs) {
        Some((d, _)) if *d == digest => {}
        Some(_) => return Err(refuse("it changed since it was approved".into())),
        None => return Err(refuse("it was never approved".into())),
    }
    String::from_utf8(text).map_err(|_| Error::new(ErrorKind::Config, format!("`{}` is not UTF-8", abs.display())))
}

/// The file and its directory belong to this user and only they can write them.
fn ownership(abs: &Path) -> Result<()> {
    let dir = abs.parent().unwrap_or(Path::new("/"));
    for p in [abs, dir] {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(format!("`{}`", p.display()), e))?;
        crate::ownership::owned_and_private(&meta, 0o022)
            .map_err(|why| Error::new(ErrorKind::Config, format!("`{}` is {why}", p.display())))?;
    }
    Ok(())
}

fn store_file() -> Result<PathBuf> {
    crate::config::state_dir()
        .map(|d| d.join("trusted-configs"))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "neither $XDG_STATE_HOME nor $HOME is set: nowhere to keep approved configs",
            )
        })
}

fn read_store(file: &Path) -> Result<Vec<(String, PathBuf)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading `{}`", file.display()), e)),
    };
    // The list itself must be ours alone, or anyone could approve for us.
    let meta = std::fs::symlink_metadata(file).map_err(|e| Error::io(format!("`{}`", file.display()), e))?;
    crate::ownership::owned_and_private(&meta, 0o022).map_err(|why| {
        Error::new(
            ErrorKind::Config,
            format!("the approved-config list `{}` is {why}", file.display()),
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(d, p)| (d.to_string(), PathBuf::from(p)))
        .collect())
}

fn write_store(file: &Path, lines: &[String]) -> Result<()> {
    let dir = file.parent().expect("state dir");
    crate::ownership::private_dir(dir).map_err(|why| Error::new(ErrorKind::Config, why))?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    crate::ownership::write_private(file, &[text.as_bytes()])
        .map_err(|e| Error::io(format!("writing `{}`", file.display()), e))
}
