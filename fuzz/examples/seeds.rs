//! Writes the seed corpus of every target into `fuzz/corpus/<target>/`:
//! valid inputs made by wharf itself (layer objects written through the
//! layer, a manifest written by `StorageService`), the example configs, and
//! the shapes of S3/Azure XML answers. `cargo run -p wharf-fuzz --example seeds`.

use std::path::Path;
use std::sync::Arc;
use wharf::layers::{Checksum, Compression, Layer};
use wharf::{InMemory, ObjectPath, SaveOptions, StorageService};
use wharf_fuzz::{encryption, put, read_all};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// The bytes `layer` stores for `plain`.
async fn stored_by(layer: &dyn Layer, plain: &[u8]) -> Vec<u8> {
    let store = InMemory::new();
    let layered = layer.wrap(Arc::new(store.clone()));
    put(&*layered, "o", plain).await;
    read_all(&store, &ObjectPath::parse("o").unwrap(), None).await.unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in ["wharf.toml", "full-stack.toml", "test-servers.toml"] {
        write("config", f, &std::fs::read(root.join("examples").join(f)).unwrap());
    }

    let store = InMemory::new();
    let service = StorageService::new(Arc::new(store.clone()));
    let opts = SaveOptions {
        path: Some("m".into()),
        ..Default::default()
    };
    service.save_stream("model.bin", &b"weights"[..], &opts).await.unwrap();
    let manifest = read_all(&store, &ObjectPath::parse("m/wharf.json").unwrap(), None)
        .await
        .unwrap();
    write("manifest", "saved", &manifest);

    for (name, head) in [
        ("onnx", &b"\x08\x07\x12\x05wharf"[..]),
        ("pickle", b"\x80\x04\x95\x10\x00\x00\x00"),
        ("safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}"),
        ("gguf", b"GGUF\x03\x00\x00\x00"),
        ("zip", b"PK\x03\x04archive/data.pkl"),
    ] {
        write("format_detection", name, head);
    }

    let plain: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (name, len) in [("empty", 0), ("small", 100), ("chunks", 5000)] {
        let p = &plain[..len];
        write(
            "checksum_layer",
            name,
            &stored_by(&Checksum::new().with_chunk_size(1024).unwrap(), p).await,
        );
        let c = Compression::new().with_frame_size(1024).unwrap();
        write("compression_layer", name, &stored_by(&c, p).await);
        write("encryption_layer", name, &stored_by(&encryption(), p).await);
    }

    write(
        "xml",
        "list",
        b"<?xml version=\"1.0\"?><ListBucketResult><Contents><Key>a&amp;b</Key><Size>3</Size></Contents>\
          <NextContinuationToken>t</NextContinuationToken></ListBucketResult>",
    );
    write(
        "xml",
        "azure",
        b"<EnumerationResults><Blobs><Blob><Name>x</Name></Blob></Blobs><NextMarker/></EnumerationResults>",
    );
    write(
        "xml",
        "error",
        b"<Error><Code>NoSuchKey</Code><Message>&lt;gone&gt;</Message></Error>",
    );
}
