//! Writes the seed corpora of the wire and cache targets into
//! `fuzz/corpus/<target>/`: Redis replies and PostgreSQL messages built by
//! hand from the protocol docs in the shapes the adapters receive, HTTP
//! responses of the object stores, and cache entries filled by the cache
//! layer itself. `cargo run -p wharf-fuzz --example wire_seeds`.

use std::path::Path;
use std::sync::Arc;
use wharf::layers::{Cache, Layer};
use wharf::{InMemory, ObjectPath};
use wharf_fuzz::{put, read_all};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A RESP bulk string.
fn bulk(b: &[u8]) -> Vec<u8> {
    cat(&[format!("${}\r\n", b.len()).as_bytes(), b, b"\r\n"])
}

/// A RESP array.
fn arr(items: &[Vec<u8>]) -> Vec<u8> {
    cat(&[format!("*{}\r\n", items.len()).as_bytes(), &items.concat()])
}

fn resp() {
    let etag = b"9f86d081884c7d659a2feaa0c55ad015";
    let nil = b"$-1\r\n".to_vec();
    // 0: the replies to AUTH and SELECT.
    write("resp", "handshake-ok", b"\x00+OK\r\n+OK\r\n");
    write(
        "resp",
        "handshake-wrongpass",
        b"\x00-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n",
    );
    write(
        "resp",
        "handshake-select-noperm",
        b"\x00+OK\r\n-NOPERM this user has no permissions to access the 'select' command\r\n",
    );
    // 1: replies as they come: GET, SCAN, the list script's page, errors, INFO.
    write("resp", "get", &cat(&[b"\x01", &bulk(b"hello"), &nil, b":1\r\n"]));
    let keys = arr(&[bulk(b"wharf:index"), bulk(b"wharf:manifest:models/a")]);
    write("resp", "scan", &cat(&[b"\x01", &arr(&[bulk(b"17"), keys])]));
    let entries = arr(&[
        bulk(b"models/a"),
        b":1234\r\n".to_vec(),
        bulk(etag),
        bulk(b"1733380000000"),
        bulk(b"models/b"),
        b":0\r\n".to_vec(),
        bulk(b""),
        nil.clone(),
    ]);
    write(
        "resp",
        "list-page",
        &cat(&[b"\x01", &arr(&[bulk(b"models/b"), entries])]),
    );
    write(
        "resp",
        "errors",
        b"\x01-NOSCRIPT No matching script. Please use EVAL.\r\n-LOADING Redis is loading the dataset in memory\r\n\
          -MOVED 3999 127.0.0.1:6381\r\n",
    );
    let info = bulk(b"# Server\r\nredis_version:7.2.4\r\nredis_mode:standalone\r\n");
    write("resp", "info", &cat(&[b"\x01", &info, b"+PONG\r\n"]));
    // 2: HMGET of a manifest (100 bytes in chunks of 40), then the
    // GETRANGE replies for bytes 10..100.
    let manifest = arr(&[
        bulk(b"100"),
        bulk(b"40"),
        bulk(b"3"),
        bulk(etag),
        bulk(b"1733380000000"),
    ]);
    let chunks = [bulk(&[b'a'; 30]), bulk(&[b'b'; 40]), bulk(&[b'c'; 20])].concat();
    write("resp", "manifest-read", &cat(&[b"\x02", &manifest, &chunks]));
    let missing = arr(&[nil.clone(), nil.clone(), nil.clone(), nil.clone(), nil.clone()]);
    write("resp", "manifest-missing", &cat(&[b"\x02", &missing]));
    // 3: bulk replies read piecewise.
    write(
        "resp",
        "bulk-pieces",
        &cat(&[b"\x03", &bulk(b"0123456789"), b"$0\r\n\r\n", &nil]),
    );
}

/// A PostgreSQL backend message.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    cat(&[&[kind], &(body.len() as u32 + 4).to_be_bytes(), body])
}

/// An authentication request (`R`) of `code`.
fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    msg(b'R', &cat(&[&code.to_be_bytes(), extra]))
}

fn data_row(cols: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = (cols.len() as u16).to_be_bytes().to_vec();
    for c in cols {
        match c {
            Some(c) => body.extend_from_slice(&cat(&[&(c.len() as i32).to_be_bytes(), c])),
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    msg(b'D', &body)
}

fn postgres() {
    let ready = msg(b'Z', b"I");
    let params = cat(&[
        &msg(b'S', b"server_version\x0016.4\0"),
        &msg(b'S', b"client_encoding\0UTF8\0"),
        &msg(b'K', &cat(&[&4242u32.to_be_bytes(), &0xdead_beefu32.to_be_bytes()])),
    ]);
    let row = data_row(&[
        Some(&1234i64.to_be_bytes()),
        Some(b"00000000deadbeef"),
        Some(b"\x01"),
        Some(&(1i32 << 20).to_be_bytes()),
        None,
    ]);
    let answer = cat(&[
        &msg(b'1', b""),
        &msg(b'2', b""),
        &row,
        &msg(b'C', b"SELECT 1\0"),
        &ready,
    ]);
    let ok = auth(0, b"");
    let startup_done = cat(&[&ok, &params, &ready]);
    write(
        "postgres_wire",
        "cleartext",
        &cat(&[b"\x00", &auth(3, b""), &startup_done, &answer]),
    );
    write(
        "postgres_wire",
        "md5",
        &cat(&[b"\x00", &auth(5, b"\x93\x1c\x7a\x02"), &startup_done, &answer]),
    );
    let server_first = b"r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=d2hhcmYtc2FsdC0xNmJ5dA==,i=4096";
    write(
        "postgres_wire",
        "scram",
        &cat(&[
            b"\x00",
            &auth(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            &auth(11, server_first),
            &auth(12, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            &startup_done,
        ]),
    );
    let refused = msg(
        b'E',
        b"SFATAL\0C28P01\0Mpassword authentication failed for user \"wharf\"\0\0",
    );
    write(
        "postgres_wire",
        "auth-failed",
        &cat(&[b"\x00", &auth(10, b"SCRAM-SHA-256\0\0"), &refused]),
    );
    let error = msg(
        b'E',
        b"SERROR\0VERROR\0C42P01\0Mrelation \"wharf_objects\" does not exist\0Fparse_relation.c\0\0",
    );
    let notice = msg(b'N', b"SNOTICE\0C00000\0Mhi\0\0");
    write(
        "postgres_wire",
        "answers",
        &cat(&[
            b"\x01",
            &answer,
            &msg(b'1', b""),
            &error,
            &ready,
            &msg(b'C', b"INSERT 0 1\0"),
            &ready,
            &msg(b'I', b""),
            &notice,
            &ready,
        ]),
    );
    // A DataRow announcing 2 GiB (the length check's regression).
    write("postgres_wire", "huge-length", b"\x01D\x7f\xff\xff\xff\x00\x01");
}

fn http() {
    let date = "Fri, 27 Nov 2026 01:30:00 GMT";
    let seeds = [
        (
            "partial",
            format!(
                "206\ncontent-range: bytes 0-9/100\ncontent-length: 10\netag: \"0x8DB1\"\nlast-modified: {date}\n\n0123456789"
            ),
        ),
        (
            "ok",
            format!("200\ncontent-length: 5\ndate: {date}\nx-ms-creation-time: 2026-11-27T01:30:00.1234567Z\n\nhello"),
        ),
        (
            "error",
            "404\ncontent-type: application/xml\n\n<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message></Error>"
                .into(),
        ),
        ("throttled", "503\nretry-after: 120\ncontent-length: 0\n\n".into()),
        ("head", "304\netag: \"abc\"\n\n".into()),
        (
            "short",
            "200\ncontent-length: 100\nx-goog-updated: 2026-11-27T01:30:00Z\n\n\x07partial body".into(),
        ),
    ];
    for (name, text) in seeds {
        write("http_response", name, text.as_bytes());
    }
}

/// The `.meta` record the cache layer writes for `cache_entry`'s object of
/// `size` bytes.
async fn cached_meta(size: usize) -> Vec<u8> {
    let object: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let store = InMemory::new();
    put(&store, "m/model.bin", &object).await;
    let cached = Cache::new(dir.path(), 64 << 20).unwrap().wrap(Arc::new(store));
    read_all(&*cached, &ObjectPath::parse("m/model.bin").unwrap(), None)
        .await
        .unwrap();
    let meta = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "meta"))
        .unwrap();
    std::fs::read(meta.path()).unwrap()
}

async fn cache() {
    let small = cached_meta(1000).await;
    write("cache_entry", "meta-valid", &cat(&[b"\x00", &small]));
    let mut bad = String::from_utf8(small.clone()).unwrap();
    let digest = bad.find("\"chunks\":[\"").unwrap() + 11;
    bad.replace_range(digest..digest + 8, "00000000");
    write("cache_entry", "meta-bad-digest", &cat(&[b"\x00", bad.as_bytes()]));
    write(
        "cache_entry",
        "meta-valid-big",
        &cat(&[b"\x80", &cached_meta((1 << 20) + 37).await]),
    );
    let mut object: Vec<u8> = (0..1000).map(|i| (i * 31 % 251) as u8).collect();
    write("cache_entry", "data-short", &cat(&[b"\x01", &object[..999]]));
    object[500] ^= 1;
    write("cache_entry", "data-flipped", &cat(&[b"\x01", &object]));
    // Both files: the record padded to a multiple of 4, its length / 4 first.
    let mut meta = small;
    meta.resize(meta.len().div_ceil(4) * 4, b' ');
    write(
        "cache_entry",
        "both",
        &cat(&[b"\x02", &[(meta.len() / 4) as u8], &meta, &object]),
    );
    write("cache_entry", "patch", b"\x03\x00\x00\x01");
    write("cache_entry", "patch-big", &cat(&[b"\x83", &[0; 256], b"\x10"]));
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    resp();
    postgres();
    http();
    cache().await;
}
