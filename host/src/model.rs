//! The domain model the ML platform already speaks: `StorageBackend`,
//! `SerializationFormat`, `ModelStorageInfo`, with the same JSON names.

use crate::adapter::Encoding;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A backend's name. Open: a plugin directory may add any name; these are
/// the well-known ones.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StorageBackend(String);

impl StorageBackend {
    /// A directory on this machine (the default).
    pub const LOCAL_FILESYSTEM: &'static str = "local_filesystem";
    /// Amazon S3 and S3-compatible stores.
    pub const AWS_S3: &'static str = "aws_s3";
    /// Azure Blob Storage.
    pub const AZURE_BLOB: &'static str = "azure_blob";
    /// Google Cloud Storage.
    pub const GCP_STORAGE: &'static str = "gcp_storage";
    /// MLflow's artifact store.
    pub const MLFLOW: &'static str = "mlflow";
    /// Hugging Face Hub repositories.
    pub const HUGGINGFACE_HUB: &'static str = "huggingface_hub";
    /// PostgreSQL.
    pub const DATABASE: &'static str = "database";
    /// Redis.
    pub const REDIS: &'static str = "redis";
    /// The eight well-known names.
    pub const WELL_KNOWN: [&'static str; 8] = [
        Self::LOCAL_FILESYSTEM,
        Self::AWS_S3,
        Self::AZURE_BLOB,
        Self::GCP_STORAGE,
        Self::MLFLOW,
        Self::HUGGINGFACE_HUB,
        Self::DATABASE,
        Self::REDIS,
    ];

    /// Validates a backend name: 1–64 of `a-z 0-9 _ -`, starting with a letter.
    pub fn new(name: &str) -> crate::Result<Self> {
        let ok = (1..=64).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok {
            Ok(StorageBackend(name.to_string()))
        } else {
            Err(crate::Error::config(format!(
                "backend name `{name}` must be 1-64 characters of a-z, 0-9, `_`, `-`, starting with a letter"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a model is serialized. Detected from content when not given (see
/// [`crate::detect`]). The first nine are the platform's own names; the rest
/// are wharf's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SerializationFormat {
    /// Python pickle that `pickle.load` reads (no scikit-learn class).
    Pickle,
    /// joblib dump that only `joblib.load` reads: compressed, or with numpy
    /// arrays written raw inside the pickle stream.
    Joblib,
    /// ONNX protobuf.
    Onnx,
    /// TensorFlow SavedModel directory.
    TensorflowSavedmodel,
    /// PyTorch `torch.save` archive (zip, or the legacy pickle format).
    PytorchStateDict,
    /// Hugging Face model directory.
    Huggingface,
    /// MLflow model directory (`MLmodel`).
    MlflowModel,
    /// A pickle (`pickle.load` reads it) of scikit-learn classes.
    ScikitLearnPickle,
    /// JAX / Flax parameters (msgpack).
    JaxParams,
    /// safetensors.
    Safetensors,
    /// GGUF.
    Gguf,
    /// Keras 3 `.keras` archive (`model.save("m.keras")`).
    Keras,
    /// skops archive (`skops.io.dump`).
    Skops,
    /// xgboost's own model file (`Booster.save_model`, JSON or UBJSON).
    Xgboost,
    /// LightGBM's text model (`Booster.save_model`).
    Lightgbm,
    /// TorchScript archive (`torch.jit.save`).
    Torchscript,
    /// Not recognised.
    #[default]
    Unknown,
}

impl SerializationFormat {
    /// All formats, for help texts.
    pub const ALL: [SerializationFormat; 17] = [
        Self::Pickle,
        Self::Joblib,
        Self::Onnx,
        Self::TensorflowSavedmodel,
        Self::PytorchStateDict,
        Self::Huggingface,
        Self::MlflowModel,
        Self::ScikitLearnPickle,
        Self::JaxParams,
        Self::Safetensors,
        Self::Gguf,
        Self::Keras,
        Self::Skops,
        Self::Xgboost,
        Self::Lightgbm,
        Self::Torchscript,
        Self::Unknown,
    ];

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pickle => "pickle",
            Self::Joblib => "joblib",
            Self::Onnx => "onnx",
            Self::TensorflowSavedmodel => "tensorflow_savedmodel",
            Self::PytorchStateDict => "pytorch_state_dict",
            Self::Huggingface => "huggingface",
            Self::MlflowModel => "mlflow_model",
            Self::ScikitLearnPickle => "scikit_learn_pickle",
            Self::JaxParams => "jax_params",
            Self::Safetensors => "safetensors",
            Self::Gguf => "gguf",
            Self::Keras => "keras",
            Self::Skops => "skops",
            Self::Xgboost => "xgboost",
            Self::Lightgbm => "lightgbm",
            Self::Torchscript => "torchscript",
            Self::Unknown => "unknown",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for SerializationFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored file of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredFile {
    /// Path relative to the model (`model.onnx`, `variables/variables.index`).
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// sha256 of the content, hex.
    pub checksum: String,
    /// Bytes the backend holds for it, when layers (compression,
    /// encryption, checksum frames) made that differ from `size_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size_bytes: Option<u64>,
    /// Whether the file was executable when saved (restored on load).
    #[serde(default, skip_serializing_if = "is_false")]
    pub executable: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

fn sha256_name() -> String {
    "sha256".into()
}

/// Where and how a model version is stored: the JSON the platform's
/// `ModelStorageInfo` reads, plus what reading it back needs.
///
/// Reading accepts the platform's own records, which have only the first
/// five fields; every other field is optional when read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStorageInfo {
    /// The backend's kind: the platform's `StorageBackend` value
    /// (`aws_s3`, `database`, ...), or a third-party plugin's name.
    pub storage_backend: StorageBackend,
    /// For a model wharf saved: its location in the backend, the prefix all
    /// its files and its manifest (`<storage_path>/wharf.json`) live under.
    /// In a record without `files` (the platform's own): the object itself.
    pub storage_path: String,
    /// How it is serialized.
    pub format: SerializationFormat,
    /// Total size of its files.
    pub size_bytes: u64,
    /// sha256, hex: of the file for a one-file model; for a folder, of the
    /// `sha256sum`-style listing (`<sha256>  <path>\n`, sorted by path),
    /// followed by its empty directories and executable files when it has
    /// any (see [`ModelStorageInfo::checksum_of`]).
    pub checksum: String,
    /// Always `sha256`.
    #[serde(default = "sha256_name")]
    pub checksum_algorithm: String,
    /// The configured backend that stored it (`[backends.<name>]`), which
    /// `get --info` reads from when it is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_name: Option<String>,
    /// The model's name, when saved under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// The version, when saved under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether it was saved from a folder.
    #[serde(default)]
    pub is_directory: bool,
    /// Its files, with their own sizes and checksums. Empty in a record
    /// that names one object (the platform's five-field records).
    #[serde(default)]
    pub files: Vec<StoredFile>,
    /// A folder's empty directories, relative, so they come back on load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<String>,
    /// When it was saved, RFC 3339 UTC; empty in a record that lacks it.
    #[serde(default)]
    pub created_at: String,
    /// What the backend's layers did to the stored bytes, outermost first
    /// (compression level, encryption key id, ...). Stored objects describe
    /// themselves, so reading needs no flags; this records it for people
    /// and lets a read through differently configured layers fail early.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<Encoding>,
    /// Bytes the backend holds for all files, when layers made that differ
    /// from `size_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size_bytes: Option<u64>,
}

impl ModelStorageInfo {
    /// The checksum of a model as recorded in `checksum`: a one-file
    /// model's is its file's sha256. A folder's is the sha256 of the
    /// `sha256sum` listing of its files (`<sha256>  <path>\n`, sorted by
    /// path), so `sha256sum -c` can check a loaded folder. A folder with
    /// empty directories or executable files adds a line for each
    /// (`dir  <path>/\n`, then `exec  <path>\n`, each sorted), so
    /// everything a load restores is covered; without them the checksum is
    /// what it always was.
    pub fn checksum_of(files: &[StoredFile], directories: &[String], is_directory: bool) -> String {
        use sha2::{Digest, Sha256};
        if !is_directory && files.len() == 1 {
            return files[0].checksum.clone();
        }
        let mut sorted: Vec<&StoredFile> = files.iter().collect();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        let mut h = Sha256::new();
        for f in &sorted {
            h.update(format!("{}  {}\n", f.checksum, f.path));
        }
        let mut dirs: Vec<&String> = directories.iter().collect();
        dirs.sort();
        for d in dirs {
            h.update(format!("dir  {d}/\n"));
        }
        for f in sorted.iter().filter(|f| f.executable) {
            h.update(format!("exec  {}\n", f.path));
        }
        hex::encode(h.finalize())
    }

    /// Whether this is a record of one object (no `files`: the platform's
    /// five-field records) rather than of a model wharf saved.
    pub fn is_object_record(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in SerializationFormat::ALL {
            assert_eq!(SerializationFormat::parse(f.as_str()), Some(f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
        }
    }

    #[test]
    fn json_uses_the_platform_names() {
        let info = ModelStorageInfo {
            storage_backend: StorageBackend::new("local_filesystem").unwrap(),
            storage_path: "models/a/1".into(),
            format: SerializationFormat::TensorflowSavedmodel,
            size_bytes: 3,
            checksum: "ab".into(),
            checksum_algorithm: "sha256".into(),
            backend_name: None,
            model_name: None,
            version: None,
            is_directory: false,
            files: vec![],
            directories: vec![],
            created_at: "2026-01-01T00:00:00Z".into(),
            encodings: vec![],
            stored_size_bytes: None,
        };
        let v: serde_json::Value = serde_json::to_value(&info).unwrap();
        for key in ["storage_backend", "storage_path", "format", "size_bytes", "checksum"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["format"], "tensorflow_savedmodel");
        assert_eq!(v["storage_backend"], "local_filesystem");
    }

    #[test]
    fn backend_names() {
        for n in StorageBackend::WELL_KNOWN {
            StorageBackend::new(n).unwrap();
        }
        assert!(StorageBackend::new("Bad Name").is_err());
        assert!(StorageBackend::new("../x").is_err());
    }
}
