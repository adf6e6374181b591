//! The `database` adapter against a real PostgreSQL 15 on 127.0.0.1
//! (scripts/servers.sh starts it: scram-sha-256 password auth). `psql`
//! looks at the tables from outside to check what is stored and what is
//! not.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wharf::conformance::{self, DataStream};
use wharf::{Adapter, ByteRange, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{cutting_proxy, read_hash, server_env, write_stream};

struct Pg {
    addr: String,
    user: String,
    password: String,
    db: String,
}

fn pg() -> Pg {
    Pg {
        addr: server_env("WHARF_TEST_PG_ADDR"),
        user: server_env("WHARF_TEST_PG_USER"),
        password: server_env("WHARF_TEST_PG_PASSWORD"),
        db: server_env("WHARF_TEST_PG_DB"),
    }
}

/// A host with one backend `pg`: `config` is its whole config table,
/// `grant` its TCP grant.
fn host_with(config: &str, grant: &str) -> wharf::Host {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.pg]
plugin = "database"
[backends.pg.config]
{config}
[backends.pg.grants]
tcp = ["{grant}"]
"#
    );
    wharf_tests::host_from_toml(&toml, dir.path())
}

/// The config table for the test server with `password`, plus `extra` lines.
fn config(s: &Pg, password: &str, extra: &str) -> String {
    format!(
        "address = \"{}\"\nuser = \"{}\"\npassword = \"{password}\"\ndbname = \"{}\"\n{extra}",
        s.addr, s.user, s.db
    )
}

async fn adapter(extra: &str) -> Arc<dyn Adapter> {
    let s = pg();
    host_with(&config(&s, &s.password, extra), &s.addr)
        .adapter("pg")
        .await
        .unwrap()
}

/// A table prefix no other test or run uses.
fn fresh_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t_{name}_{}_{}_", std::process::id(), nanos % 1_000_000_000)
}

/// Runs SQL with psql as the test user; its trimmed, unaligned output.
fn psql(sql: &str) -> String {
    let s = pg();
    let (host, port) = s.addr.rsplit_once(':').unwrap();
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", host, "-p", port, "-U", &s.user, "-d", &s.db, "-c", sql])
        .env("PGPASSWORD", &s.password)
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn drop_tables(prefix: &str) {
    psql(&format!("DROP TABLE IF EXISTS {prefix}objects, {prefix}chunks"));
}

/// Rows in `<prefix>objects` and `<prefix>chunks`.
fn row_counts(prefix: &str) -> (u64, u64) {
    let out = psql(&format!(
        "SELECT (SELECT count(*) FROM {prefix}objects) || ' ' || (SELECT count(*) FROM {prefix}chunks)"
    ));
    let (o, c) = out.split_once(' ').unwrap();
    (o.parse().unwrap(), c.parse().unwrap())
}

/// Waits (at most 10 s) until no wharf session on the tables of `prefix`
/// holds a transaction open: an aborted or cut write has really been
/// rolled back, not just hidden.
fn no_open_transaction(prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wharf' \
             AND xact_start IS NOT NULL AND pid <> pg_backend_pid() AND query LIKE '%{prefix}%'"
        ));
        if open == "0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{open} wharf transactions still open after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let adapter = adapter("").await;
    let report = conformance::run(adapter, wharf_tests::suite_options()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // Every case applies but pending uploads (a write is one transaction).
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );
}

/// A wrong password is `denied`; the message names the user, never the
/// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_denied() {
    let s = pg();
    let wrong = "definitely-not-the-password";
    let adapter = host_with(&config(&s, wrong, ""), &s.addr).adapter("pg").await.unwrap();
    let e = adapter.stat(&ObjectPath::parse("x").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let text = e.to_string();
    assert!(text.contains(&s.user), "{text}");
    assert!(text.contains("28P01"), "{text}");
    assert!(!text.contains(wrong), "the password leaked: {text}");
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(!e.to_string().contains(wrong), "the password leaked: {e}");
}

/// An address the backend's grant does not cover is refused by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_not_granted_is_denied() {
    let s = pg();
    let adapter = host_with(&config(&s, &s.password, ""), "127.0.0.1:1")
        .adapter("pg")
        .await
        .unwrap();
    let e = adapter.stat(&ObjectPath::parse("x").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants.tcp"), "{e}");
    assert!(e.to_string().contains(&s.addr), "{e}");
}

/// A server that is not there is `unreachable` (nothing was sent, so any
/// operation may be retried) and named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_unreachable() {
    let s = pg();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = format!(
        "address = \"{addr}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        s.user, s.password
    );
    let adapter = host_with(&cfg, &addr).adapter("pg").await.unwrap();
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains(&addr), "{e}");
    assert!(!e.to_string().contains(&s.password), "the password leaked: {e}");
}

/// Config mistakes are `invalid` and name the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    let s = pg();
    let base = format!("user = \"{}\"\npassword = \"{}\"\n", s.user, s.password);
    let addr = format!("address = \"{}\"\n", s.addr);
    for (cfg, needle) in [
        (format!("{base}{addr}colour = \"blue\""), "colour"),
        (
            format!("{base}{addr}table_prefix = \"Robert'); DROP TABLE x;--\""),
            "table_prefix",
        ),
        (format!("{base}{addr}chunk_size = \"1KiB\""), "chunk_size"),
        (format!("{base}{addr}chunk_size = \"lots\""), "chunk_size"),
        (format!("{base}address = \"no-port\""), "address"),
        (format!("{base}host = \"127.0.0.1\"\nport = \"99999\""), "port"),
        (format!("{base}{addr}host = \"127.0.0.1\""), "address"),
        (format!("password = \"{}\"\n{addr}", s.password), "user"),
        (base.clone(), "address"),
    ] {
        let e = host_with(&cfg, &s.addr)
            .adapter("pg")
            .await
            .err()
            .unwrap_or_else(|| panic!("{cfg} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(needle), "{needle}: {e}");
        assert!(!e.to_string().contains(&s.password), "the password leaked: {e}");
    }
    // A database that does not exist is a config mistake too.
    let cfg = format!("{base}{addr}dbname = \"no_such_database\"");
    let adapter = host_with(&cfg, &s.addr).adapter("pg").await.unwrap();
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("dbname"), "{e}");
}

/// `host` + `port` work as well as `address`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_port_config() {
    let s = pg();
    let (h, p) = s.addr.rsplit_once(':').unwrap();
    let cfg = format!(
        "host = \"{h}\"\nport = \"{p}\"\nuser = \"{}\"\npassword = \"{}\"\ndbname = \"{}\"\n",
        s.user, s.password, s.db
    );
    let adapter = host_with(&cfg, &s.addr).adapter("pg").await.unwrap();
    let health = adapter.health().await.unwrap();
    assert!(health.contains("PostgreSQL 15"), "{health}");
    assert!(health.contains(&s.addr), "{health}");
}

/// An aborted write, a dropped writer and a write whose `finish` fails
/// leave no row in either table, and no transaction open on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_leave_no_rows() {
    let prefix = fresh_prefix("abort");
    let adapter = adapter(&format!("table_prefix = \"{prefix}\"\nchunk_size = \"1MiB\"")).await;
    let path = ObjectPath::parse("models/aborted.bin").unwrap();

    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(1, 5 << 20);
    while let Some(c) = data.next_chunk(1 << 20) {
        w.append(c).await.unwrap();
    }
    w.abort().await.unwrap();
    no_open_transaction(&prefix);
    assert_eq!(row_counts(&prefix), (0, 0));

    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(2, 3 << 20);
    while let Some(c) = data.next_chunk(1 << 20) {
        w.append(c).await.unwrap();
    }
    drop(w);
    no_open_transaction(&prefix);
    assert_eq!(row_counts(&prefix), (0, 0));
    assert!(!adapter.exists(&path).await.unwrap());

    // A create that loses to another writer after sending its data.
    let mut loser = adapter.write(&path, PutMode::Create, None).await.unwrap();
    let mut data = DataStream::new(3, 3 << 20);
    while let Some(c) = data.next_chunk(1 << 20) {
        loser.append(c).await.unwrap();
    }
    let (_, winner) = write_stream(&*adapter, &path, (2 << 20) + 5, 4).await;
    let e = loser.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    no_open_transaction(&prefix);
    assert_eq!(row_counts(&prefix), (1, 3), "only the winner's 3 chunk rows");
    assert_eq!(adapter.stat(&path).await.unwrap().etag, winner.etag);

    // A stale update after its data went: the object stays as it was.
    let mut stale = adapter
        .write(&path, PutMode::Update(winner.etag.clone().unwrap()), None)
        .await
        .unwrap();
    stale
        .append(DataStream::new(5, 2 << 20).next_chunk(2 << 20).unwrap())
        .await
        .unwrap();
    let (_, newer) = write_stream(&*adapter, &path, 10, 6).await;
    let e = stale.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    no_open_transaction(&prefix);
    assert_eq!(row_counts(&prefix), (1, 1), "the overwrite deleted the old chunks");
    assert_eq!(adapter.stat(&path).await.unwrap().etag, newer.etag);

    adapter.delete(&path).await.unwrap();
    assert_eq!(row_counts(&prefix), (0, 0), "delete removes the row and its chunks");
    drop_tables(&prefix);
}

/// The connection dies in the middle of a write: the write fails as
/// `transient`, the server rolls the transaction back, nothing is visible;
/// the next write through the same proxy works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_leaves_nothing() {
    let s = pg();
    let prefix = fresh_prefix("cut");
    let (proxy, cut) = cutting_proxy(s.addr.clone(), 20 << 20).await;
    let cfg = format!(
        "address = \"{proxy}\"\nuser = \"{}\"\npassword = \"{}\"\ndbname = \"{}\"\ntable_prefix = \"{prefix}\"\n",
        s.user, s.password, s.db
    );
    let adapter = host_with(&cfg, &proxy).adapter("pg").await.unwrap();
    let path = ObjectPath::parse("big.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(2, 64 << 20);
    let mut failure = None;
    while let Some(chunk) = data.next_chunk(8 << 20) {
        if let Err(e) = w.append(chunk).await {
            failure = Some(e);
            break;
        }
    }
    let e = match failure {
        Some(e) => e,
        None => w.finish().await.expect_err("the write survived a cut connection"),
    };
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains(&proxy), "the error names the address: {e}");
    no_open_transaction(&prefix);
    assert_eq!(row_counts(&prefix), (0, 0));
    assert!(!adapter.exists(&path).await.unwrap());

    let (written, _) = write_stream(&*adapter, &path, 3 << 20, 3).await;
    assert_eq!(read_hash(&*adapter, &path).await, written);
    drop_tables(&prefix);
}

/// Opening with a new prefix creates both tables once, even when many
/// first writers race; opening again changes nothing; the stored layout is
/// plain bytea rows that SQL reads back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_creation_is_idempotent() {
    let prefix = fresh_prefix("schema");
    let extra = format!("table_prefix = \"{prefix}\"\nchunk_size = \"64KiB\"");
    let exists = format!("SELECT count(*) FROM pg_class WHERE relname IN ('{prefix}objects', '{prefix}chunks')");
    assert_eq!(psql(&exists), "0");

    let racers: Vec<_> = (0..8)
        .map(|i| {
            let extra = extra.clone();
            tokio::spawn(async move {
                let adapter = adapter(&extra).await;
                let path = ObjectPath::parse(&format!("racer/{i}")).unwrap();
                write_stream(&*adapter, &path, 1000 + i, i).await
            })
        })
        .collect();
    for r in racers {
        r.await.unwrap();
    }
    assert_eq!(psql(&exists), "2");
    assert_eq!(
        psql(&format!(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = '{prefix}chunks'::regclass AND attname = 'data'"
        )),
        "e",
        "chunk data is stored uncompressed"
    );
    assert_eq!(
        psql(&format!(
            "SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
             WHERE attrelid = '{prefix}objects'::regclass AND attname = 'path'"
        )),
        "C"
    );

    // Opened again: same tables, data still there.
    let adapter = adapter(&extra).await;
    adapter.health().await.unwrap();
    assert_eq!(row_counts(&prefix).0, 8);

    // 200 KiB + 7 in 64 KiB rows: 4 rows, and SQL sees the same bytes.
    let path = ObjectPath::parse("layout/model.bin").unwrap();
    let size = (200 << 10) + 7;
    let (written, meta) = write_stream(&*adapter, &path, size, 11).await;
    let sql = format!(
        "SELECT count(*) || ' ' || sum(length(data)) || ' ' || encode(sha256(string_agg(data, ''::bytea ORDER BY seq)), 'hex') \
         FROM {prefix}chunks c JOIN {prefix}objects o USING (upload_id) WHERE o.path = 'layout/model.bin'"
    );
    let sha = written.split(' ').next().unwrap();
    assert_eq!(psql(&sql), format!("4 {size} {sha}"));
    assert_eq!(
        psql(&format!(
            "SELECT etag FROM {prefix}objects WHERE path = 'layout/model.bin'"
        )),
        meta.etag.unwrap()
    );
    drop_tables(&prefix);
}

/// Ranges across many chunk rows, edges inside rows and on their borders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_across_chunk_rows() {
    let adapter = adapter("chunk_size = \"64KiB\"").await;
    let path = ObjectPath::parse(&format!("{}ranges.bin", wharf_tests::unique("ranges"))).unwrap();
    let size = (1 << 20) + 12_345;
    let all = DataStream::new(9, size).next_chunk(size as usize).unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, Some(size)).await.unwrap();
    w.append(all.clone()).await.unwrap();
    w.finish().await.unwrap();
    let chunk = 64 << 10;
    for (start, end) in [
        (0, Some(1)),
        (chunk - 1, Some(chunk + 1)),
        (chunk, Some(2 * chunk)),
        (100, Some(5 * chunk + 17)),
        (3 * chunk + 5, None),
        (size - 1, None),
        (size - 10, Some(size + 100)),
        (size, None),
        (size + 5, Some(size + 10)),
    ] {
        let mut r = adapter.read(&path, Some(ByteRange { start, end })).await.unwrap();
        let mut got = Vec::new();
        while let Some(c) = r.next_chunk(100_000).await.unwrap() {
            got.extend_from_slice(&c);
        }
        let lo = (start as usize).min(all.len());
        let hi = end.map_or(all.len(), |e| (e as usize).min(all.len())).max(lo);
        assert!(got == all[lo..hi], "range {start}..{end:?}: {} bytes", got.len());
    }
    adapter.delete(&path).await.unwrap();
}

/// An objects row edited behind the adapter's back to a chunk size it never
/// writes is refused when read, not trusted (a chunk_size of 1 would queue
/// millions of statements).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_chunk_size_is_refused() {
    let prefix = fresh_prefix("tamper");
    let adapter = adapter(&format!("table_prefix = \"{prefix}\"")).await;
    let path = ObjectPath::parse("tampered.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, Some(5)).await.unwrap();
    w.append(bytes::Bytes::from_static(b"hello")).await.unwrap();
    w.finish().await.unwrap();
    psql(&format!("UPDATE {prefix}objects SET chunk_size = 1"));
    let err = match adapter.read(&path, None).await {
        Ok(_) => panic!("a read of a row with chunk_size 1 was served"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.message().contains("chunk_size 1"), "{err}");
    drop_tables(&prefix);
}

/// 2 GiB, past the 1 GB cap of one bytea value, in bounded memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_round_trip() {
    let adapter = adapter("").await;
    let path = ObjectPath::parse(&format!("{}two-gib.bin", wharf_tests::unique("big"))).unwrap();
    let size = 2u64 << 30;
    let started = Instant::now();
    let (written, meta) = write_stream(&*adapter, &path, size, 2).await;
    let wrote = started.elapsed();
    assert_eq!(meta.size, size);
    let started = Instant::now();
    let read = read_hash(&*adapter, &path).await;
    println!("2 GiB: write {wrote:?}, read {:?}", started.elapsed());
    assert_eq!(read, written);
    assert_eq!(adapter.stat(&path).await.unwrap().size, size);
    adapter.delete(&path).await.unwrap();
    assert!(!adapter.exists(&path).await.unwrap());
}
