use super::{Ctx, exit, print_json, progress, with_progress};
use clap::Args;
use std::path::PathBuf;
use wharf::{Error, ErrorKind, ModelStorageInfo};

/// `wharf get <storage-path>` or `wharf get --info info.json`.
#[derive(Args)]
pub(crate) struct Get {
    /// The model's storage_path (as printed by `wharf put`).
    #[arg(required_unless_present = "info")]
    storage_path: Option<String>,
    /// Read backend and path from a ModelStorageInfo JSON file instead.
    #[arg(long, conflicts_with = "storage_path")]
    info: Option<PathBuf>,
    /// Where to write: a file for one-file models, a new directory for
    /// folders. Default: the file's name (or the folder's) in the current
    /// directory.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

impl Get {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let (backend, path, expected) = match (&self.info, &self.storage_path) {
            (Some(file), _) => {
                let text =
                    std::fs::read_to_string(file).map_err(|e| Error::io(format!("reading `{}`", file.display()), e))?;
                let info: ModelStorageInfo = serde_json::from_str(&text).map_err(|e| {
                    Error::new(
                        ErrorKind::Invalid,
                        format!("`{}` is not ModelStorageInfo JSON: {e}", file.display()),
                    )
                })?;
                (
                    info.storage_backend.as_str().to_string(),
                    info.storage_path.clone(),
                    Some(info.checksum),
                )
            }
            (None, Some(p)) => (ctx.backend.clone(), p.clone(), None),
            (None, None) => unreachable!("clap requires one of them"),
        };
        let service = ctx.host.service(&backend).await?;
        let info = service.info(&path).await?;
        if let Some(want) = expected
            && want != info.checksum
        {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("`{path}` holds checksum {}, the info file says {want}", info.checksum),
            ));
        }
        let dest = match self.output {
            Some(o) => o,
            None if !info.is_directory && info.files.len() == 1 => {
                PathBuf::from(info.files[0].path.rsplit('/').next().unwrap_or("model"))
            }
            None => PathBuf::from(path.rsplit('/').next().unwrap_or("model")),
        };
        if dest.is_file() && !self.force {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "`{}` exists; pass --force to replace it or -o to choose another path",
                    dest.display()
                ),
            ));
        }
        let bar = progress(info.size_bytes);
        let service = with_progress(service, &bar);
        let loaded = service.load_to_path(&path, &dest).await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let info = loaded?;
        if ctx.json {
            print_json(&info);
        } else {
            eprintln!("wrote {} ({} bytes, sha256 verified)", dest.display(), info.size_bytes);
        }
        Ok(exit::OK)
    }
}
