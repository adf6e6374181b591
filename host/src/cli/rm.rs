use super::{Ctx, exit};
use clap::Args;
use wharf::{Error, ErrorKind};

/// `wharf rm <storage-path>`.
#[derive(Args)]
pub(crate) struct Rm {
    /// The model's storage_path, or a reference: MODEL@N, MODEL@latest,
    /// MODEL@ALIAS. A version an alias names is refused (exit 4).
    storage_path: String,
}

impl Rm {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        if !service.delete(&self.storage_path).await? {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no model at `{}`", self.storage_path),
            ));
        }
        if !ctx.json {
            eprintln!("deleted {}", self.storage_path);
        }
        Ok(exit::OK)
    }
}
