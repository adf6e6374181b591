use super::{Ctx, exit, print_json};
use clap::Args;
use wharf::{ErrorKind, ObjectPath};

/// `wharf stat <path>`.
#[derive(Args)]
pub(crate) struct Stat {
    /// A model's storage_path or reference (MODEL@N, MODEL@latest,
    /// MODEL@ALIAS), or any object's path.
    path: String,
}

impl Stat {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        match service.info(&self.path).await {
            Ok(info) => print_json(&info),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let meta = service.adapter().stat(&ObjectPath::parse(&self.path)?).await?;
                print_json(&meta);
            }
            Err(e) => return Err(e),
        }
        Ok(exit::OK)
    }
}
