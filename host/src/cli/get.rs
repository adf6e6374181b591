use super::{Ctx, exit, print_json, with_bar};
use clap::Args;
use std::path::{Path, PathBuf};
use wharf::{Error, ErrorKind, Expected, LoadOptions, ModelStorageInfo, StorageService};

/// `wharf get <storage-path>` or `wharf get --info info.json`.
#[derive(Args)]
pub(crate) struct Get {
    /// The model's storage_path (as printed by `wharf put`), or a
    /// reference: MODEL@N, MODEL@latest, MODEL@ALIAS.
    #[arg(required_unless_present = "info")]
    storage_path: Option<String>,
    /// Read backend, path and the expected size and sha256 from a
    /// ModelStorageInfo JSON file instead: one `wharf put` printed, or the
    /// platform's own five-field record naming one object.
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

/// Reads a record the caller kept. Only the platform's five fields are
/// required; the algorithm, when given, must be sha256.
pub(crate) fn read_record(file: &Path) -> wharf::Result<ModelStorageInfo> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(format!("reading `{}`", file.display()), e))?;
    let info: ModelStorageInfo = serde_json::from_str(&text).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            format!("`{}` is not ModelStorageInfo JSON: {e}", file.display()),
        )
    })?;
    if !info.checksum_algorithm.eq_ignore_ascii_case("sha256") {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "`{}` records a {} checksum; wharf verifies sha256 only",
                file.display(),
                info.checksum_algorithm
            ),
        ));
    }
    let hex = info.checksum.len() == 64 && info.checksum.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("`{}`: checksum is not a sha256 in hex (64 digits)", file.display()),
        ));
    }
    Ok(info)
}

impl Get {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let (service, path, record) = match (&self.info, &self.storage_path) {
            (Some(file), _) => {
                let info = read_record(file)?;
                let backend = match &ctx.explicit_backend {
                    Some(b) => b.clone(),
                    None => ctx.host.backend_for(&info)?,
                };
                (ctx.host.service(&backend).await?, info.storage_path.clone(), Some(info))
            }
            (None, Some(p)) => {
                // A reference is resolved once: an alias moved meanwhile
                // cannot mix two versions.
                let service = ctx.service().await?;
                let path = service.resolve(p).await?;
                (service, path, None)
            }
            (None, None) => unreachable!("clap requires one of them"),
        };
        if let Some(r) = &record
            && r.is_object_record()
        {
            // The platform's record names the object itself; a record that
            // lost wharf's fields but names a model prefix still loads.
            match self.get_object(&service, r).await {
                Err(e) if e.kind() == ErrorKind::NotFound && service.exists(&r.storage_path).await? => {}
                done => return done,
            }
        }
        // What is expected comes from the caller's record, and is checked
        // against the bytes read, not against the stored manifest.
        let opts = LoadOptions {
            expect_checksum: record.as_ref().map(|r| r.checksum.clone()),
            expect_size: record.as_ref().map(|r| r.size_bytes),
            overwrite: self.force,
        };
        if self.output.as_deref() == Some(Path::new("-")) {
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
        let info = with_bar(info.size_bytes, service, async |s| {
            s.load_to_path_with(&path, &dest, &opts).await
        })
        .await?;
        if ctx.json {
            print_json(&info);
        } else {
            eprintln!("wrote {} ({} bytes, sha256 verified)", dest.display(), info.size_bytes);
        }
        Ok(exit::OK)
    }

    /// Loads the one object a five-field record names, verified against it.
    async fn get_object(&self, service: &StorageService, r: &ModelStorageInfo) -> wharf::Result<u8> {
        let expect = Expected {
            size: Some(r.size_bytes),
            sha256: Some(r.checksum.clone()),
        };
        if self.output.as_deref() == Some(Path::new("-")) {
            let mut out = tokio::io::stdout();
            let done = service
                .read_object_into(&r.storage_path, None, &expect, &mut out)
                .await?;
            eprintln!("wrote {} bytes to stdout, sha256 verified", done.size_bytes);
            return Ok(exit::OK);
        }
        let dest = self
            .output
            .clone()
            .unwrap_or_else(|| PathBuf::from(r.storage_path.rsplit('/').next().unwrap_or("object")));
        let (done, target) = with_bar(r.size_bytes, service.clone(), async |s| {
            s.load_object_to_path(&r.storage_path, &dest, &expect, self.force).await
        })
        .await?;
        eprintln!(
            "wrote {} ({} bytes, sha256 verified)",
            target.display(),
            done.size_bytes
        );
        Ok(exit::OK)
    }
}
