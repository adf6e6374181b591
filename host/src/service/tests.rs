//! The service over [`InMemory`](crate::InMemory): what callers outside the
//! CLI (embedders, the Python package) rely on.

use super::*;
use crate::InMemory;

fn service() -> StorageService {
    StorageService::new(Arc::new(InMemory::new()))
}

fn opts(model: &str, version: &str) -> SaveOptions {
    SaveOptions {
        model: Some(model.into()),
        version: Some(version.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn file_object_names_the_stored_object_of_a_one_file_model() {
    let s = service();
    let info = s
        .save_stream("m.bin", &b"hello model"[..], &opts("m", "1"))
        .await
        .unwrap();
    let (path, file) = s.file_object(&info.storage_path, None).await.unwrap();
    assert!(path.as_str().starts_with("models/m/1/"), "{path}");
    assert!(path.as_str().ends_with("/m.bin"), "{path}");
    assert_eq!(file.checksum, info.checksum);
    // The object is readable on its own, as a seekable reader reads it.
    let mut r = s.adapter().read(&path, None).await.unwrap();
    assert_eq!(r.next_chunk(100).await.unwrap().unwrap().as_ref(), b"hello model");
    // By name too; an unknown name is not-found.
    assert_eq!(s.file_object(&info.storage_path, Some("m.bin")).await.unwrap().0, path);
    let e = s.file_object(&info.storage_path, Some("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = s.file_object("models/none/1", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn file_object_of_a_folder_model_needs_a_name() {
    let s = service();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
    std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
    let info = s.save_dir(dir.path(), &opts("f", "1")).await.unwrap();
    let e = s.file_object(&info.storage_path, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("name one of them"), "{e}");
    let (path, f) = s.file_object(&info.storage_path, Some("b.txt")).await.unwrap();
    assert!(path.as_str().ends_with("/b.txt"));
    assert_eq!(f.size_bytes, 1);
}
