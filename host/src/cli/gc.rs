//! `wharf gc`.

use super::{Ctx, exit, print_json, printable};
use clap::Args;
use std::time::Duration;
use wharf::GcOptions;

/// `wharf gc [--older-than 24h] [--dry-run]`.
#[derive(Args)]
pub(crate) struct Gc {
    /// Only what is older than this: a save or transaction still running
    /// is younger (`0s` takes everything, running saves too).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    older_than: Duration,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    wharf_units::parse_duration(s)
}

impl Gc {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        let report = service
            .gc(&GcOptions {
                older_than: self.older_than,
                dry_run: self.dry_run,
            })
            .await?;
        if ctx.json {
            print_json(&report);
            return Ok(exit::OK);
        }
        for i in &report.items {
            println!("{:<22} {:>14}  {}", i.why, i.bytes, printable(&i.path));
        }
        eprintln!(
            "{} {} objects and {} pending uploads, {} bytes ({} looked at)",
            if report.dry_run { "would remove" } else { "removed" },
            report.objects,
            report.pending_uploads,
            report.bytes,
            report.scanned
        );
        if let Some(why) = &report.pending_unsupported {
            eprintln!("pending uploads not looked at: {why}");
        }
        Ok(exit::OK)
    }
}
