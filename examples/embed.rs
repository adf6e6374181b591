//! Embedding wharf: a host with one backend and one middleware stack built
//! in code (no config file), a model saved and loaded back, verified.
//!
//! `cargo run --example embed`

use std::collections::BTreeMap;
use std::time::Duration;
use wharf::config::{BackendConfig, ConfigValue, DirGrantConfig, GrantsConfig};
use wharf::layers::{ConcurrencyLimit, Stack, Timeout};
use wharf::{Config, Host, SaveOptions, StorageService};

#[tokio::main]
async fn main() -> wharf::Result<()> {
    let work = std::env::temp_dir().join(format!("wharf-embed-{}", std::process::id()));
    let store = work.join("store");

    // One backend, `models`, run by the built-in local_filesystem adapter,
    // which may touch `store` (as `/data`) and nothing else.
    let mut config = Config::default();
    config.backends.insert(
        "models".into(),
        BackendConfig {
            plugin: Some("local_filesystem".into()),
            config: BTreeMap::from([("root".to_string(), ConfigValue::String("/data".into()))]),
            grants: GrantsConfig {
                dirs: vec![DirGrantConfig {
                    host: store.clone(),
                    guest: "/data".into(),
                    read_only: false,
                    create: true,
                }],
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let host = Host::new(config, &work)?;

    // Middleware, outermost first: at most 8 operations in flight, none
    // silent for more than 30 s.
    let adapter = Stack::new()
        .layer(ConcurrencyLimit::new(8))
        .layer(
            Timeout::new()
                .with_operation(Duration::from_secs(120))
                .with_idle(Duration::from_secs(30)),
        )
        .apply(host.adapter("models").await?);
    // `storage_backend` records the kind (the plugin, here
    // local_filesystem), as `Host::service` does; the adapter's own name
    // (`models`) goes in `backend_name`.
    let kind = host.backend_kind("models").expect("configured above");
    let service = StorageService::new(adapter).with_kind(kind);

    // A small safetensors file: an 8-byte header length, a JSON header, data.
    let header = br#"{"weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}"#;
    let mut model = (header.len() as u64).to_le_bytes().to_vec();
    model.extend_from_slice(header);
    model.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    let file = work.join("detector.safetensors");
    std::fs::write(&file, &model).map_err(|e| wharf::Error::io("writing the model", e))?;

    let opts = SaveOptions {
        model: Some("detector".into()),
        version: Some("1".into()),
        ..Default::default()
    };
    let info = service.save_file(&file, &opts).await?;
    println!("{}", serde_json::to_string_pretty(&info).expect("serializable"));

    let back = work.join("detector-back.safetensors");
    service.load_to_path(&info.storage_path, &back).await?;
    let same = std::fs::read(&back).map_err(|e| wharf::Error::io("reading it back", e))? == model;
    println!("loaded back from {}: identical = {same}", store.display());
    std::fs::remove_dir_all(&work).map_err(|e| wharf::Error::io("cleaning up", e))?;
    if !same {
        std::process::exit(1);
    }
    Ok(())
}
