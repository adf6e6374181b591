use super::{Ctx, exit, print_json, with_bar};
use clap::Args;
use std::path::PathBuf;
use wharf::{Error, ErrorKind, Expected, ObjectPath, PutMode};

/// `wharf cp SRC DST`: one side local, the other `[BACKEND]:PATH`.
#[derive(Args)]
pub(crate) struct Cp {
    /// A local file, or an object as `BACKEND:PATH` (`:PATH` for the
    /// default or `--backend` backend). A local path with a `:` in its
    /// first segment is written `./a:b`.
    source: String,
    /// Where to copy to, in the same forms.
    dest: String,
    /// Replace an object or file that exists at the destination.
    #[arg(long)]
    force: bool,
    /// When copying from a backend: the sha256 the object must have.
    /// Nothing is written locally unless it matches (exit 5).
    #[arg(long)]
    sha256: Option<String>,
    /// When copying from a backend: the size the object must have.
    #[arg(long)]
    size: Option<u64>,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side {
    Local(PathBuf),
    /// A backend (`None`: the default one) and an object path.
    Remote(Option<String>, String),
}

fn side(s: &str) -> Side {
    match s.split_once(':') {
        Some((b, p)) if !b.contains('/') && (b.is_empty() || wharf::StorageBackend::new(b).is_ok()) => {
            Side::Remote((!b.is_empty()).then(|| b.to_string()), p.to_string())
        }
        _ => Side::Local(PathBuf::from(s)),
    }
}

impl Cp {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let backend = |b: Option<String>| b.unwrap_or_else(|| ctx.backend.clone());
        match (side(&self.source), side(&self.dest)) {
            (Side::Local(src), Side::Remote(b, path)) => {
                if self.sha256.is_some() || self.size.is_some() {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        "--sha256 and --size check what is read from a backend; `wharf cp` prints the sha256 of what it uploads",
                    ));
                }
                let service = ctx.host.service(&backend(b)).await?;
                let p = ObjectPath::parse(&path)?;
                let mode = if self.force {
                    PutMode::Overwrite
                } else {
                    service.create_only_mode(&p).await?.ok_or_else(|| {
                        Error::new(
                            ErrorKind::AlreadyExists,
                            format!("`{path}` exists; pass --force to replace it"),
                        )
                        .at(service.adapter().name(), "write", Some(&path))
                    })?
                };
                let total = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
                let done = with_bar(total, service, async |s| s.save_object_file(&src, &path, mode).await).await?;
                if ctx.json {
                    print_json(&done);
                } else {
                    eprintln!("copied {} bytes to {path}, sha256 {}", done.size_bytes, done.checksum);
                }
                Ok(exit::OK)
            }
            (Side::Remote(b, path), Side::Local(dest)) => {
                let service = ctx.host.service(&backend(b)).await?;
                let total = service.adapter().stat(&ObjectPath::parse(&path)?).await?.size;
                let expect = Expected {
                    size: self.size,
                    sha256: self.sha256.clone(),
                };
                if dest.as_os_str() == "-" {
                    let mut out = tokio::io::stdout();
                    service.read_object_into(&path, None, &expect, &mut out).await?;
                    return Ok(exit::OK);
                }
                let (done, target) = with_bar(total, service, async |s| {
                    s.load_object_to_path(&path, &dest, &expect, self.force).await
                })
                .await?;
                if ctx.json {
                    print_json(&done);
                } else {
                    let checked = if expect.sha256.is_some() { ", verified" } else { "" };
                    eprintln!(
                        "copied {} bytes to {}, sha256 {}{checked}",
                        done.size_bytes,
                        target.display(),
                        done.checksum
                    );
                }
                Ok(exit::OK)
            }
            (Side::Local(_), Side::Local(_)) => Err(Error::new(
                ErrorKind::Invalid,
                "both sides are local paths; write an object as BACKEND:PATH or :PATH",
            )),
            (Side::Remote(..), Side::Remote(..)) => Err(Error::new(
                ErrorKind::Invalid,
                "copying between two objects is not supported; copy through a local file",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_told_apart() {
        assert_eq!(side(":models/a.pkl"), Side::Remote(None, "models/a.pkl".into()));
        assert_eq!(
            side("moto:models/a.pkl"),
            Side::Remote(Some("moto".into()), "models/a.pkl".into())
        );
        assert_eq!(side("model.pkl"), Side::Local("model.pkl".into()));
        assert_eq!(side("./a:b"), Side::Local("./a:b".into()));
        assert_eq!(side("/tmp/x:y"), Side::Local("/tmp/x:y".into()));
        assert_eq!(side("Bad Name:x"), Side::Local("Bad Name:x".into()));
    }
}
