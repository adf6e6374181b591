//! `wharf models`, `wharf versions`, `wharf alias`: the model registry.

use super::{Ctx, exit, print_json, printable};
use clap::{Args, Subcommand};
use wharf::{Error, ErrorKind};

/// `wharf models [PREFIX]`.
#[derive(Args)]
pub(crate) struct Models {
    /// Only models whose name starts with this.
    #[arg(default_value = "")]
    prefix: String,
}

impl Models {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        let models = service.models(&self.prefix).await?;
        if ctx.json {
            print_json(&models);
        } else {
            for m in models {
                println!("{}", printable(&m));
            }
        }
        Ok(exit::OK)
    }
}

/// `wharf versions MODEL`.
#[derive(Args)]
pub(crate) struct Versions {
    /// The model's name.
    model: String,
}

impl Versions {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        let versions = service.versions(&self.model).await?;
        if versions.is_empty() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("model `{}` has no versions", self.model),
            ));
        }
        if ctx.json {
            print_json(&versions);
            return Ok(exit::OK);
        }
        println!(
            "{:<24} {:<20} {:>14} {:<22} ALIASES",
            "VERSION", "CREATED", "SIZE", "FORMAT"
        );
        for v in versions {
            println!(
                "{:<24} {:<20} {:>14} {:<22} {}",
                printable(&v.version),
                v.created_at,
                v.size_bytes,
                v.format.as_str(),
                printable(&v.aliases.join(","))
            );
        }
        Ok(exit::OK)
    }
}

/// `wharf alias set|rm|ls`.
#[derive(Subcommand)]
pub(crate) enum Alias {
    /// Point MODEL@ALIAS at VERSION (atomic: of two concurrent moves one
    /// wins, the other exits 4 and changes nothing).
    Set {
        model: String,
        alias: String,
        version: String,
    },
    /// Remove MODEL@ALIAS.
    Rm { model: String, alias: String },
    /// List a model's aliases and the versions they name.
    Ls { model: String },
}

impl Alias {
    pub async fn execute(self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        match self {
            Alias::Set { model, alias, version } => {
                service.set_alias(&model, &alias, &version).await?;
                if ctx.json {
                    print_json(&serde_json::json!({ "model": model, "alias": alias, "version": version }));
                } else {
                    eprintln!("{model}@{alias} -> {version}");
                }
            }
            Alias::Rm { model, alias } => {
                if !service.remove_alias(&model, &alias).await? {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("model `{model}` has no alias `{alias}`"),
                    ));
                }
                if !ctx.json {
                    eprintln!("removed {model}@{alias}");
                }
            }
            Alias::Ls { model } => {
                let aliases = service.aliases(&model).await?;
                if ctx.json {
                    print_json(&aliases);
                } else {
                    for (a, v) in aliases {
                        println!("{}\t{}", printable(&a), printable(&v));
                    }
                }
            }
        }
        Ok(exit::OK)
    }
}
