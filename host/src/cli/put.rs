use super::{Ctx, exit, print_json, with_bar};
use clap::Args;
use std::path::PathBuf;
use wharf::{SaveOptions, SerializationFormat};

/// `wharf put <file|folder>`.
#[derive(Args)]
pub(crate) struct Put {
    /// A model file, or a folder such as a SavedModel directory.
    source: PathBuf,
    /// Model name; default: the file name without extension.
    #[arg(long)]
    model: Option<String>,
    /// Version; default: the model's next number (1, 2, ...), allocated
    /// atomically; on a backend without atomic create (mlflow), a new one
    /// named after the UTC time of the save plus a random suffix, e.g.
    /// 20261127T101500Z-3f9a0c1e.
    #[arg(long = "model-version")]
    version: Option<String>,
    /// Store at this path instead of models/<model>/<version>.
    #[arg(long, conflicts_with_all = ["model", "version"])]
    path: Option<String>,
    /// Serialization format; default: detected from the content.
    #[arg(long, value_parser = parse_format)]
    format: Option<SerializationFormat>,
    /// Point this alias of the model at the new version, in one
    /// transaction with the save: both become visible at once, or neither
    /// (repeatable).
    #[arg(long, requires = "model", conflicts_with = "path")]
    alias: Vec<String>,
}

fn parse_format(s: &str) -> Result<SerializationFormat, String> {
    SerializationFormat::parse(s).ok_or_else(|| {
        let all: Vec<&str> = SerializationFormat::ALL.iter().map(|f| f.as_str()).collect();
        format!("unknown format `{s}` (one of: {})", all.join(", "))
    })
}

impl Put {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let meta = std::fs::metadata(&self.source)
            .map_err(|e| wharf::Error::new(wharf::ErrorKind::NotFound, format!("`{}`: {e}", self.source.display())))?;
        let mut opts = SaveOptions {
            path: self.path,
            format: self.format,
            ..Default::default()
        };
        if opts.path.is_none() {
            let stem = self
                .source
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            opts.model = Some(self.model.unwrap_or_else(|| sanitize(&stem)));
            opts.version = self.version;
        }
        let total = if meta.is_dir() {
            dir_size(&self.source)
        } else {
            meta.len()
        };
        let aliases = self.alias;
        let info = with_bar(total, ctx.service().await?, async |service| {
            if aliases.is_empty() {
                return if meta.is_dir() {
                    service.save_dir(&self.source, &opts).await
                } else {
                    service.save_file(&self.source, &opts).await
                };
            }
            let mut tx = service.transaction()?;
            let staged = async {
                let info = if meta.is_dir() {
                    tx.save_dir(&self.source, &opts).await?
                } else {
                    tx.save_file(&self.source, &opts).await?
                };
                let model = info.model_name.clone().unwrap_or_default();
                let version = info.version.clone().unwrap_or_default();
                for a in &aliases {
                    tx.set_alias(&model, a, &version).await?;
                }
                Ok::<_, wharf::Error>(info)
            }
            .await;
            match staged {
                Ok(info) => tx.commit().await.map(|()| info),
                Err(e) => {
                    if let Err(r) = tx.rollback().await {
                        tracing::warn!("{r}; `wharf gc` removes what is left");
                    }
                    Err(e)
                }
            }
        })
        .await;
        print_json(&info?);
        Ok(exit::OK)
    }
}

fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        format!("model{out}")
    } else {
        out
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => dir_size(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
