//! The README describes the code as it is: every adapter crate, example
//! adapter, layer and top-level folder that exists is named where a reader
//! looks for it. A new one that the README misses fails here.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no `## {heading}` section"));
    let rest = &readme[start + heading.len() + 4..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn dirs(of: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(of)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "target" && n != "node_modules" && n != "__pycache__")
        .collect();
    v.sort();
    v
}

#[test]
fn layout_names_every_crate_and_folder() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let layout = section(&readme, "Layout");
    for adapter in dirs(&root().join("adapters")) {
        assert!(
            layout.contains(&format!("adapters/{adapter}")),
            "README Layout misses adapters/{adapter}"
        );
    }
    for top in dirs(root()) {
        assert!(layout.contains(&format!("{top}/")), "README Layout misses {top}/");
    }
}

#[test]
fn backend_table_names_every_built_in_adapter() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = section(&readme, "Built-in backends");
    let build = std::fs::read_to_string(root().join("host/build.rs")).unwrap();
    let names: Vec<&str> = build
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert!(names.len() >= 8, "built-ins read from host/build.rs: {names:?}");
    for name in names {
        assert!(
            table.contains(&format!("| `{name}` |")),
            "README backend table misses `{name}`"
        );
    }
    for example in dirs(&root().join("adapters/examples")) {
        assert!(
            section(&readme, "Writing an adapter").contains(&format!("adapters/examples/{example}")),
            "README's Writing an adapter misses adapters/examples/{example}"
        );
    }
}

#[test]
fn layer_table_names_every_configurable_layer() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = section(&readme, "Middleware");
    let config = std::fs::read_to_string(root().join("host/src/config.rs")).unwrap();
    // The `layer = "..."` names wharf.toml accepts: `LayerConfig::kind`.
    let kinds: Vec<&str> = config
        .lines()
        .filter(|l| l.trim().starts_with("LayerConfig::"))
        .filter_map(|l| l.split_once("=> \"").map(|(_, k)| k.trim_end_matches("\",")))
        .collect();
    assert!(kinds.len() >= 7, "layer kinds read from config.rs: {kinds:?}");
    for kind in kinds {
        assert!(
            table.contains(&format!("| `{kind}` |")),
            "README layer table misses `{kind}`"
        );
    }
}

/// Every field `put` can print is in the ModelStorageInfo table.
#[test]
fn every_model_storage_info_field_is_documented() {
    use wharf::{Encoding, ModelStorageInfo, SerializationFormat, StorageBackend, StoredFile};
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let text = section(&readme, "How a model is stored");
    let file = StoredFile {
        path: "a".into(),
        size_bytes: 1,
        checksum: "c".into(),
        stored_size_bytes: Some(2),
        executable: true,
    };
    let info = ModelStorageInfo {
        storage_backend: StorageBackend::new("aws_s3").unwrap(),
        storage_path: "p".into(),
        format: SerializationFormat::Onnx,
        size_bytes: 1,
        checksum: "c".into(),
        checksum_algorithm: "sha256".into(),
        backend_name: Some("b".into()),
        model_name: Some("m".into()),
        version: Some("1".into()),
        is_directory: true,
        files: vec![file.clone()],
        directories: vec!["d".into()],
        created_at: "t".into(),
        encodings: vec![Encoding::Compression {
            algorithm: "zstd".into(),
            level: 3,
        }],
        stored_size_bytes: Some(2),
    };
    let fields = |v: serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for key in fields(serde_json::to_value(&info).unwrap())
        .into_iter()
        .chain(fields(serde_json::to_value(&file).unwrap()))
    {
        assert!(
            text.contains(&format!("`{key}`")),
            "README's ModelStorageInfo table misses `{key}`"
        );
    }
}

#[test]
fn format_table_names_every_format() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let formats = section(&readme, "Formats");
    for f in wharf::SerializationFormat::ALL {
        assert!(
            formats.contains(&format!("\n| `{}` |", f.as_str())),
            "README Formats misses `{f}`"
        );
    }
}
