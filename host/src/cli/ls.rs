use super::{Ctx, exit, printable};
use clap::Args;

/// `wharf ls [prefix]`.
#[derive(Args)]
pub(crate) struct Ls {
    /// Only objects whose path starts with this.
    #[arg(default_value = "")]
    prefix: String,
    /// Stop after this many objects.
    #[arg(long)]
    max: Option<usize>,
}

impl Ls {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let adapter = ctx.host.adapter(&ctx.backend).await?;
        let mut cursor: Option<String> = None;
        let mut shown = 0usize;
        // Page by page: never the whole listing in memory.
        loop {
            let page = adapter.list(&self.prefix, cursor.as_deref(), 1000).await?;
            for e in &page.entries {
                if self.max.is_some_and(|m| shown >= m) {
                    return Ok(exit::OK);
                }
                if ctx.json {
                    println!("{}", serde_json::to_string(e).expect("serializable"));
                } else {
                    println!("{:>14}  {}", e.size, printable(&e.path));
                }
                shown += 1;
            }
            match page.next_cursor {
                Some(c) if !page.entries.is_empty() => cursor = Some(c),
                _ => return Ok(exit::OK),
            }
        }
    }
}
