use super::{Ctx, exit, print_json, progress, with_progress};
use clap::Args;
use std::path::PathBuf;
use wharf::{Error, ErrorKind, LoadOptions, ModelStorageInfo};

/// `wharf get <storage-path>` or `wharf get --info info.json`.
#[derive(Args)]
pub(crate) struct Get {
    /// The model's storage_path (as printed by `wharf put`).
    #[arg(required_unless_present = "info")]
    storage_path: Option<String>,
    /// Read backend and path from a ModelStorageInfo JSON file instead.
    #[arg(long, conflicts_with = "storage_path")]
    info: Option<PathBuf>,
    /// Where to write: a file for one-file models (`-` for stdout; a
    /// character device or FIFO is written in place), a new directory for
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
        let (backend, path, expected, expected_size) = match (&self.info, &self.storage_path) {
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
                    Some(info.size_bytes),
                )
            }
            (None, Some(p)) => (ctx.backend.clone(), p.clone(), None, None),
            (None, None) => unreachable!("clap requires one of them"),
        };
        let service = ctx.host.service(&backend).await?;
        // What is expected comes from the caller's record, and is checked
        // against the bytes read, not against the stored manifest.
        let opts = LoadOptions {
            expect_checksum: expected,
            expect_size: expected_size,
            overwrite: self.force,
        };
        if self.output.as_deref() == Some(std::path::Path::new("-")) {
            let mut out = tokio::io::stdout();
            let info = service.load_to_writer(&path, &mut out, &opts).await?;
            eprintln!("wrote {} bytes to stdout, sha256 verified", info.size_bytes);
            return Ok(exit::OK);
        }
        let info = service.info(&path).await?;
        let dest = match self.output {
            Some(o) => o,
            None if !info.is_directory && info.files.len() == 1 => {
                PathBuf::from(info.files[0].path.rsplit('/').next().unwrap_or("model"))
            }
            None => PathBuf::from(path.rsplit('/').next().unwrap_or("model")),
        };
        let bar = progress(info.size_bytes);
        let service = with_progress(service, &bar);
        let loaded = service.load_to_path_with(&path, &dest, &opts).await;
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
