//! The encryption layer's age format against the reference
//! implementations: the `age` CLI (Go, Debian's package) and rage through
//! pyrage (`tests/clients/age_client.py`). Each decrypts what wharf
//! stored, and wharf reads (whole and by ranges at chunk edges) what each
//! encrypted; keys made by `age-keygen` work in wharf and keys made by
//! wharf in `age`.

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use wharf::layers::{AgeIdentity, AgeRecipient, Encryption, Layer};
use wharf::{Adapter, ByteRange, ErrorKind, InMemory, ObjectPath, PutMode};
use wharf_tests::python_client;

const CHUNK: usize = 64 << 10;
/// Around the payload's chunk edges, and an empty object.
const SIZES: [usize; 6] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5];

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn sha(b: &[u8]) -> String {
    format!("{:x} {}", Sha256::digest(b), b.len())
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn put(a: &dyn Adapter, path: &str, bytes: &[u8]) {
    let mut w = a
        .write(
            &ObjectPath::parse(path).unwrap(),
            PutMode::Overwrite,
            Some(bytes.len() as u64),
        )
        .await
        .unwrap();
    for c in bytes.chunks(100_000) {
        w.append(c.to_vec().into()).await.unwrap();
    }
    w.finish().await.unwrap();
}

async fn get(a: &dyn Adapter, path: &str, range: Option<ByteRange>) -> wharf::Result<Vec<u8>> {
    let mut r = a.read(&ObjectPath::parse(path).unwrap(), range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// A key pair made by `age-keygen`: the identity file and its recipient.
fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let file = dir.join(name);
    run(Command::new("age-keygen").arg("-o").arg(&file));
    let recipient = String::from_utf8(run(Command::new("age-keygen").arg("-y").arg(&file))).unwrap();
    (file, recipient.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_and_rage_read_what_wharf_writes_and_wharf_reads_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let (cli_file, cli_recipient) = keygen(dir.path(), "cli.age");
    let ours = AgeIdentity::generate();
    let ours_file = dir.path().join("ours.age");
    std::fs::write(&ours_file, format!("# made by wharf\n{}\n", ours.to_secret_string())).unwrap();
    let cli_identity = AgeIdentity::parse_file(&std::fs::read_to_string(&cli_file).unwrap()).unwrap();
    assert_eq!(cli_identity[0].recipient().to_string(), cli_recipient);

    let store = InMemory::new();
    let inner: Arc<dyn Adapter> = Arc::new(store.clone());
    // Written to both keys; each reference reads with one of them.
    let writer = Encryption::new()
        .with_recipients([AgeRecipient::parse(&cli_recipient).unwrap(), ours.recipient()])
        .wrap(inner.clone());
    let reader = Encryption::new()
        .with_identities(cli_identity.clone())
        .wrap(inner.clone());
    for (k, n) in SIZES.into_iter().enumerate() {
        let plain = data(n, k as u8);
        put(&*writer, "w.bin", &plain).await;
        let stored_file = dir.path().join(format!("w{k}.age"));
        std::fs::write(&stored_file, get(&*inner, "w.bin", None).await.unwrap()).unwrap();
        let by_cli = run(Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&ours_file)
            .arg(&stored_file));
        assert!(by_cli == plain, "age -d of {n} bytes");
        let by_rage = python_client(
            "age_client.py",
            &["decrypt", cli_file.to_str().unwrap(), stored_file.to_str().unwrap()],
            &[],
        );
        assert_eq!(by_rage, sha(&plain), "pyrage of {n} bytes");
    }

    // Theirs, read by wharf whole and by ranges.
    for (k, n) in SIZES.into_iter().enumerate() {
        let plain = data(n, 100 + k as u8);
        let plain_file = dir.path().join(format!("p{k}"));
        std::fs::write(&plain_file, &plain).unwrap();
        let by_cli = dir.path().join(format!("c{k}.age"));
        run(Command::new("age")
            .args(["-r", &cli_recipient, "-r", &ours.recipient().to_string(), "-o"])
            .arg(&by_cli)
            .arg(&plain_file));
        let by_rage = dir.path().join(format!("r{k}.age"));
        python_client(
            "age_client.py",
            &[
                "encrypt",
                plain_file.to_str().unwrap(),
                by_rage.to_str().unwrap(),
                &cli_recipient,
            ],
            &[],
        );
        for file in [&by_cli, &by_rage] {
            put(&*inner, "theirs.bin", &std::fs::read(file).unwrap()).await;
            assert!(
                get(&*reader, "theirs.bin", None).await.unwrap() == plain,
                "{n} bytes from {file:?}"
            );
            let stat = reader.stat(&ObjectPath::parse("theirs.bin").unwrap()).await.unwrap();
            assert_eq!(stat.size, n as u64);
            for (s, e) in [
                (0, 1),
                (CHUNK - 1, CHUNK + 1),
                (n.saturating_sub(1), n),
                (CHUNK, 3 * CHUNK),
            ] {
                let (s, e) = (s.min(n), e.min(n));
                let range = ByteRange {
                    start: s as u64,
                    end: Some(e as u64),
                };
                let got = get(&*reader, "theirs.bin", Some(range)).await.unwrap();
                assert!(got == plain[s..e], "{n} bytes from {file:?}, {s}..{e}");
            }
        }
    }
    // age's ASCII armor is not the binary format: refused, not misread.
    let plain_file = dir.path().join("p0");
    let armored = run(Command::new("age").args(["-a", "-r", &cli_recipient]).arg(&plain_file));
    put(&*inner, "armored.bin", &armored).await;
    let e = get(&*reader, "armored.bin", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
}

/// The layer over `inner` with `passphrase`, spending at most
/// `work_factor` on a read.
fn passphrase(inner: &Arc<dyn Adapter>, passphrase: &str, work_factor: u8) -> Arc<dyn Adapter> {
    Encryption::new()
        .with_passphrase(passphrase)
        .unwrap()
        .with_work_factor(work_factor)
        .unwrap()
        .wrap(inner.clone())
}

/// age's scrypt recipient: rage decrypts wharf's passphrase objects and
/// wharf reads rage's (written at rage's own work factor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_objects_cross_with_rage() {
    let dir = tempfile::tempdir().unwrap();
    let store = InMemory::new();
    let inner: Arc<dyn Adapter> = Arc::new(store.clone());
    let layer = passphrase(&inner, "correct horse battery", 12);
    let plain = data(CHUNK * 2 + 17, 7);
    put(&*layer, "p.bin", &plain).await;
    let stored = dir.path().join("p.age");
    std::fs::write(&stored, get(&*inner, "p.bin", None).await.unwrap()).unwrap();
    let out = python_client(
        "age_client.py",
        &["decrypt-passphrase", "correct horse battery", stored.to_str().unwrap()],
        &[],
    );
    assert_eq!(out, sha(&plain));

    let plain_file = dir.path().join("plain");
    std::fs::write(&plain_file, &plain).unwrap();
    let theirs = dir.path().join("theirs.age");
    python_client(
        "age_client.py",
        &[
            "encrypt-passphrase",
            plain_file.to_str().unwrap(),
            theirs.to_str().unwrap(),
            "correct horse battery",
        ],
        &[],
    );
    put(&*inner, "theirs.bin", &std::fs::read(&theirs).unwrap()).await;
    // rage picks its work factor by timing (about 1 s here, 18 or more):
    // a reader that spends at most 12 refuses it, one allowing 22 reads.
    let e = get(&*layer, "theirs.bin", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let patient = passphrase(&inner, "correct horse battery", 22);
    assert!(get(&*patient, "theirs.bin", None).await.unwrap() == plain);
    let wrong = Encryption::new().with_passphrase("wrong").unwrap().wrap(inner.clone());
    let e = get(&*wrong, "theirs.bin", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}
