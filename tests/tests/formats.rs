//! Format detection on real artifacts: `tests/corpus/make_corpus.py` writes
//! them with the libraries that own each format (the test venv's Python,
//! `WHARF_TEST_PYTHON`), and every one is saved through `save_file` /
//! `save_dir` (local reads: head and tail) and `save_stream` (the head
//! only), whose recorded `format` must be the one in [`EXPECTED`]. A test
//! venv without the libraries fails here; nothing is skipped. The
//! expectations live here, not in the script that makes the files.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use wharf::detect::DETECT_HEAD;
use wharf::{InMemory, SaveOptions, SerializationFormat, StorageService};
use wharf_tests::server_env;

/// Every artifact the script writes (folders end in `/`) and its format.
const EXPECTED: &[(&str, &str)] = &[
    // scikit-learn estimators through pickle.dump, protocols 0 to 5.
    ("sklearn/iforest_p0.pkl", "scikit_learn_pickle"),
    ("sklearn/iforest_p1.pkl", "scikit_learn_pickle"),
    ("sklearn/iforest_p2.pkl", "scikit_learn_pickle"),
    ("sklearn/iforest_p3.pkl", "scikit_learn_pickle"),
    ("sklearn/iforest_p4.pkl", "scikit_learn_pickle"),
    ("sklearn/iforest_p5.pkl", "scikit_learn_pickle"),
    ("sklearn/logreg_p4", "scikit_learn_pickle"),
    // Pickles of other things, whatever their names.
    ("pickle/dict_p0.pkl", "pickle"),
    ("pickle/dict_p2.pkl", "pickle"),
    ("pickle/dict_p5.pkl", "pickle"),
    ("pickle/dict_p4.bin", "pickle"),
    ("pickle/array_p5", "pickle"),
    // joblib: arrays written raw in the stream (pickle.load fails on them).
    ("joblib/iforest.joblib", "joblib"),
    ("joblib/iforest.pkl", "joblib"),
    ("joblib/iforest", "joblib"),
    // joblib.dump of a dict without arrays is a plain pickle.
    ("joblib/plain_dict.joblib", "pickle"),
    // Each compressor joblib has, under three names.
    ("joblib/iforest_zlib.joblib", "joblib"),
    ("joblib/iforest_zlib.pkl", "joblib"),
    ("joblib/iforest_zlib", "joblib"),
    ("joblib/iforest_gzip.joblib", "joblib"),
    ("joblib/iforest_gzip.pkl", "joblib"),
    ("joblib/iforest_gzip", "joblib"),
    ("joblib/iforest_bz2.joblib", "joblib"),
    ("joblib/iforest_bz2.pkl", "joblib"),
    ("joblib/iforest_bz2", "joblib"),
    ("joblib/iforest_xz.joblib", "joblib"),
    ("joblib/iforest_xz.pkl", "joblib"),
    ("joblib/iforest_xz", "joblib"),
    ("joblib/iforest_lzma.joblib", "joblib"),
    ("joblib/iforest_lzma.pkl", "joblib"),
    ("joblib/iforest_lzma", "joblib"),
    ("joblib/iforest_lz4.joblib", "joblib"),
    ("joblib/iforest_lz4.pkl", "joblib"),
    ("joblib/iforest_lz4", "joblib"),
    // ONNX: skl2onnx at IR 10 and 4, model_version set, onnx.helper at IR 8.
    ("onnx/logreg.onnx", "onnx"),
    ("onnx/logreg_ir4.onnx", "onnx"),
    ("onnx/logreg_versioned", "onnx"),
    ("onnx/relu_ir8.bin", "onnx"),
    ("safetensors/model.safetensors", "safetensors"),
    ("safetensors/weights", "safetensors"),
    ("gguf/tiny.gguf", "gguf"),
    ("flax/params", "jax_params"),
    ("flax/params.msgpack", "jax_params"),
    ("mlflow/sklearn_model/", "mlflow_model"),
    ("tf/savedmodel/", "tensorflow_savedmodel"),
    // A SavedModel's saved_model.pb alone: its loader wants the folder.
    ("tf/saved_model.pb", "unknown"),
    ("tf/model.keras", "keras"),
    ("skops/logreg.skops", "skops"),
    ("xgboost/model.json", "xgboost"),
    ("xgboost/model.ubj", "xgboost"),
    ("lightgbm/model.txt", "lightgbm"),
    // Written by hand following torch's documented layouts (no torch wheel here).
    ("torch/state_dict.pt", "pytorch_state_dict"),
    ("torch/state_dict_sized.bin", "pytorch_state_dict"),
    ("torch/script.pt", "torchscript"),
    ("torch/legacy.pth", "pytorch_state_dict"),
    ("hf/bert/", "huggingface"),
    // None of these.
    ("other/notes.txt", "unknown"),
    ("other/random.bin", "unknown"),
    ("other/empty", "unknown"),
    ("other/text.gz", "unknown"),
    ("other/text.zlib", "unknown"),
    ("other/fake.onnx", "unknown"),
    ("other/archive.zip", "unknown"),
    ("other/broken.pkl", "unknown"),
    ("other/just_files/", "unknown"),
];

fn make_corpus(out: &Path) -> BTreeSet<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/make_corpus.py");
    let run = std::process::Command::new(server_env("WHARF_TEST_PYTHON"))
        .arg(&script)
        .arg(out)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        run.status.success(),
        "make_corpus.py failed (the venv needs scripts/requirements-test.txt): {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generated_artifact_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let written = make_corpus(tmp.path());
    let expected: BTreeSet<String> = EXPECTED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(written, expected, "the script's artifacts and this table differ");

    let service = StorageService::new(Arc::new(InMemory::new()));
    let mut wrong = Vec::new();
    for (i, (name, want)) in EXPECTED.iter().enumerate() {
        let local = tmp.path().join(name);
        let opts = SaveOptions {
            path: Some(format!("models/m{i}")),
            ..SaveOptions::default()
        };
        let got = if name.ends_with('/') {
            service.save_dir(&local, &opts).await
        } else {
            service.save_file(&local, &opts).await
        }
        .unwrap_or_else(|e| panic!("saving {name}: {e}"))
        .format;
        if got.as_str() != *want {
            wrong.push(format!("{name}: {got}, expected {want} (save_file/save_dir)"));
        }
        if name.ends_with('/') {
            continue;
        }
        // Every file of the corpus fits in DETECT_HEAD, so the head-only
        // entry points must agree with the local-file ones.
        let want_stream = *want;
        let bytes = std::fs::read(&local).unwrap();
        let opts = SaveOptions {
            path: Some(format!("streams/m{i}")),
            ..SaveOptions::default()
        };
        let file = local.file_name().unwrap().to_string_lossy().into_owned();
        let got = service
            .save_stream(&file, std::io::Cursor::new(bytes.clone()), &opts)
            .await
            .unwrap_or_else(|e| panic!("saving {name} as a stream: {e}"))
            .format;
        if got.as_str() != want_stream {
            wrong.push(format!("{name}: {got}, expected {want_stream} (save_stream)"));
        }
        // The in-memory entry point the fuzz target uses, and the head-only one.
        let head = &bytes[..bytes.len().min(DETECT_HEAD)];
        let got = SerializationFormat::detect_bytes(&bytes);
        if got.as_str() != *want {
            wrong.push(format!("{name}: {got}, expected {want} (detect_bytes)"));
        }
        let got = SerializationFormat::detect_file(head, bytes.len() as u64);
        if got.as_str() != want_stream {
            wrong.push(format!("{name}: {got}, expected {want_stream} (detect_file)"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} detected wrong:\n{}",
        wrong.len(),
        EXPECTED.len(),
        wrong.join("\n")
    );
}
