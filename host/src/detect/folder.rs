//! Folders: a format is a layout its loader looks for, checked against the
//! content of the file that names it.
//!
//! - MLflow: `MLmodel` at the root, YAML with a top-level `flavors:` key
//!   (what `mlflow.pyfunc.load_model` reads first).
//! - TensorFlow SavedModel: `saved_model.pb` at the root holding a
//!   `SavedModel` message (or `saved_model.pbtxt`, its text form).
//! - Hugging Face: `config.json` at the root (a JSON object) and weights
//!   beside it that are safetensors, a torch.save archive or Flax msgpack,
//!   or a sharded checkpoint's `*.index.json`.

use super::{DETECT_HEAD, protobuf};
use crate::SerializationFormat;
use std::io::{self, Read};
use std::path::Path;

fn head(dir: &Path, rel: &str) -> io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(dir.join(rel))?;
    let size = f.metadata()?.len();
    let mut buf = Vec::new();
    (&mut f).take(DETECT_HEAD as u64).read_to_end(&mut buf)?;
    Ok((buf, size))
}

pub fn detect(dir: &Path, files: &[String]) -> io::Result<SerializationFormat> {
    use SerializationFormat as F;
    let has = |n: &str| files.iter().any(|f| f == n);
    if has("MLmodel") {
        let (text, _) = head(dir, "MLmodel")?;
        if String::from_utf8_lossy(&text)
            .lines()
            .any(|l| l.trim_end() == "flavors:")
        {
            return Ok(F::MlflowModel);
        }
    }
    if has("saved_model.pb") {
        let (pb, size) = head(dir, "saved_model.pb")?;
        if protobuf::is_saved_model(&pb, size) {
            return Ok(F::TensorflowSavedmodel);
        }
    } else if has("saved_model.pbtxt") {
        let (text, _) = head(dir, "saved_model.pbtxt")?;
        if String::from_utf8_lossy(&text)
            .trim_start()
            .starts_with("saved_model_schema_version:")
        {
            return Ok(F::TensorflowSavedmodel);
        }
    }
    if has("config.json") && is_json_object(&head(dir, "config.json")?) {
        for f in files.iter().filter(|f| !f.contains('/')) {
            let weights = if f.ends_with(".index.json") {
                is_json_object(&head(dir, f)?)
            } else if f.ends_with(".safetensors") || f.ends_with(".bin") || f.ends_with(".msgpack") {
                matches!(
                    SerializationFormat::detect_path(&dir.join(f))?,
                    F::Safetensors | F::PytorchStateDict | F::JaxParams
                )
            } else {
                false
            };
            if weights {
                return Ok(F::Huggingface);
            }
        }
    }
    Ok(F::Unknown)
}

fn is_json_object((bytes, size): &(Vec<u8>, u64)) -> bool {
    if bytes.len() as u64 == *size {
        matches!(serde_json::from_slice(bytes), Ok(serde_json::Value::Object(_)))
    } else {
        bytes.trim_ascii_start().starts_with(b"{")
    }
}
