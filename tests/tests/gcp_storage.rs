//! The `gcp_storage` adapter against gcp-storage-emulator on 127.0.0.1
//! (scripts/servers.sh starts it), reached through a queueing proxy (see
//! `gcs_url`), plus a token endpoint and a recording proxy these tests run
//! themselves.
//!
//! The emulator ignores `ifGenerationMatch`: see
//! `racing_creates_both_win_on_the_emulator` and the crate docs of
//! adapters/gcp-storage for what that leaves untested here.

use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
// tokio's `sync` feature comes with the wharf dependency.
use tokio::sync::Semaphore;
use wharf::conformance::{self, DataStream, Outcome, SuiteOptions};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{RACING_CASES, assert_only_races_lost, python_client, read_hash, server_env, unique, write_stream};

/// Connections the queue in front of the emulator lets through at once.
/// The emulator serves one request at a time with a listen backlog of 5;
/// the suite writes 16 objects at once, and connections beyond the backlog
/// wait in SYN retransmission until they time out or are reset.
const EMULATOR_CONNECTIONS: usize = 4;

/// The emulator's URL, behind a queue (one per test process, on its own
/// thread so it outlives each test's runtime): every test talks to this.
fn gcs_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let upstream = authority(&server_env("WHARF_TEST_GCS_URL")).to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let limit = Arc::new(Semaphore::new(EMULATOR_CONNECTIONS));
                let (url, _) = proxy(upstream, Some(limit)).await;
                tx.send(url).unwrap();
                std::future::pending::<()>().await
            })
        });
        rx.recv().unwrap()
    })
    .clone()
}

/// `host:port` of an `http://host:port[/path]` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap()
}

/// The `http://host:port` of a URL: what `grants.http` lists.
fn grant_of(url: &str) -> String {
    format!("http://{}", authority(url))
}

/// Once per test process: the bucket drops deleted objects at once. The
/// emulator rewrites its whole metadata file (soft-deleted objects
/// included) on every write, so kept deletions slow down every later run
/// until its connection backlog (5) overflows under the suite's 16
/// concurrent writes.
fn disable_soft_delete() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        client(&["no-soft-delete"]);
    });
}

/// A host with one backend `gcs`: `config` adds lines to its config table
/// (bucket is set), `http` is its HTTP grant, `dirs` extra grant tables.
fn host(config: &str, http: &[String], dirs: &str) -> wharf::Host {
    disable_soft_delete();
    let base = tempfile::tempdir().unwrap();
    let http = http.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ");
    let toml = format!(
        r#"
[backends.gcs]
plugin = "gcp_storage"
[backends.gcs.config]
bucket = "{bucket}"
{config}
[backends.gcs.grants]
http = [{http}]
{dirs}
"#,
        bucket = server_env("WHARF_TEST_BUCKET"),
    );
    wharf_tests::host_from_toml(&toml, base.path())
}

/// An anonymous backend on the emulator under `prefix`; `extra` adds config lines.
async fn adapter(prefix: &str, extra: &str) -> Arc<dyn Adapter> {
    let url = gcs_url();
    let config = format!("endpoint = \"{url}\"\nanonymous = \"true\"\nprefix = \"{prefix}\"\n{extra}");
    host(&config, &[grant_of(&url)], "").adapter("gcs").await.unwrap()
}

/// Runs the plain-requests client script; its stdout.
fn client(args: &[&str]) -> String {
    let env = [
        ("WHARF_GCS_ENDPOINT", gcs_url()),
        ("WHARF_GCS_BUCKET", server_env("WHARF_TEST_BUCKET")),
    ];
    python_client("gcp_storage.py", args, &env)
}

fn path(p: &str) -> ObjectPath {
    ObjectPath::parse(p).unwrap()
}

/// The whole suite. Every case applies: the adapter claims ranges, create,
/// update and copy, as GCS has them. The two racing cases fail here, every
/// run: the emulator ignores `ifGenerationMatch`, so every writer that
/// passed the adapter's early check wins (on GCS one does; see
/// `racing_creates_both_win_on_the_emulator`). The large streamed case is 256 MiB,
/// not the default 1 GiB: the emulator (Python) is the slowest server
/// here, and with 1 GiB this file took six minutes of CI (365 s; 169 s now,
/// on a busy machine). The adapter's side of a large upload (chunks,
/// session resumption, bounded memory) is the same at 256 MiB. Likewise
/// the pagination case writes 500 keys, not 2,500: the emulator answers
/// every page with the whole prefix (it ignores `maxResults`), so its cost
/// grows with keys × pages, and 500 keys still make ten pages (200 s of a
/// busy CI run with 2,500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let adapter = adapter(&unique("conformance"), "").await;
    let start = Instant::now();
    let options = SuiteOptions {
        large_object: 256 << 20,
        list_keys: 500,
        ..SuiteOptions::default()
    };
    let report = conformance::run(adapter, options).await.unwrap();
    println!("{report}\n(whole suite: {:.1?})", start.elapsed());
    let failed: Vec<&str> = report.failures().iter().map(|c| c.name).collect();
    assert_eq!(failed, RACING_CASES, "{report}");
    assert_only_races_lost(&report);
    let not_applicable: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotApplicable(_)))
        .map(|c| c.name)
        .collect();
    // Resumable upload sessions cannot be listed.
    assert_eq!(not_applicable, ["pending_upload_listed_and_aborted"], "{report}");
    assert_eq!(report.passed(), 26, "{report}");
}

/// What wharf writes (a resumable upload of many chunks), plain JSON-API
/// requests read byte for byte, and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_client() {
    let prefix = unique("cross");
    let adapter = adapter(&prefix, "chunk_size = \"1MiB\"").await;
    let by_wharf = path("by-wharf/model.bin");
    let (written, _) = write_stream(&*adapter, &by_wharf, (20 << 20) + 123, 7).await;
    assert_eq!(client(&["get", &format!("{prefix}by-wharf/model.bin")]), written);

    let uploaded = client(&["put", &format!("{prefix}by-requests/model.bin"), "18874371", "9"]);
    let by_requests = path("by-requests/model.bin");
    assert_eq!(read_hash(&*adapter, &by_requests).await, uploaded);
    assert_eq!(adapter.stat(&by_requests).await.unwrap().size, 18_874_371);
}

/// A token endpoint on 127.0.0.1: answers every exchange with `token`
/// (or refuses it when `refuse`), and records each request body.
async fn token_endpoint(token: &'static str, refuse: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let Some(body) = read_request_body(&mut conn).await else {
                continue;
            };
            seen.lock().unwrap().push(body);
            let (status, answer) = if refuse {
                (
                    "400 Bad Request",
                    r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.to_string(),
                )
            } else {
                (
                    "200 OK",
                    format!(r#"{{"access_token":"{token}","expires_in":3600,"token_type":"Bearer"}}"#),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
        }
    });
    (url, bodies)
}

/// The body of one HTTP/1.1 request with a `content-length`.
async fn read_request_body(conn: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut piece = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&piece[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())?;
    while buf.len() < head_end + length {
        let n = conn.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&piece[..n]);
    }
    Some(String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned())
}

/// A proxy to `upstream` (`host:port`) that records the request head of
/// each connection (the emulator speaks HTTP/1.0: one request per
/// connection) and, with `limit`, lets that many connections through at once.
async fn proxy(upstream: String, limit: Option<Arc<Semaphore>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, seen, limit) = (upstream.clone(), seen.clone(), limit.clone());
            tokio::spawn(async move {
                let _permit = match limit {
                    Some(l) => Some(l.acquire_owned().await.unwrap()),
                    None => None,
                };
                if let Ok(server) = TcpStream::connect(&upstream).await {
                    forward(client, server, &seen).await;
                }
            });
        }
    });
    (url, heads)
}

/// Copies both ways until both sides are done, recording the first request
/// head. What the server answers is read as fast as it comes, whatever the
/// client takes: the emulator writes an answer whole before it serves the
/// next request, so a client that stops reading one (the conformance
/// suite's reader overtaken by an overwrite) would hold up every other.
async fn forward(client: TcpStream, server: TcpStream, seen: &Mutex<Vec<String>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let (answer, mut answered) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n @ 1..) = sr.read(&mut buf).await {
            if answer.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let down = tokio::spawn(async move {
        while let Some(piece) = answered.recv().await {
            if cw.write_all(&piece).await.is_err() {
                break;
            }
        }
    });
    let mut head = Vec::new();
    let mut recorded = false;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !recorded {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head[..i]).into_owned());
                recorded = true;
            }
        }
        if sw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = sw.shutdown().await;
    let _ = down.await;
}

/// The JWT of an exchange body `grant_type=…&assertion=<jwt>`.
fn assertion_of(body: &str) -> &str {
    body.split('&')
        .find_map(|kv| kv.strip_prefix("assertion="))
        .expect("the exchange carries an assertion")
}

const SA_EMAIL: &str = "wharf-test@wharf-test.iam.gserviceaccount.com";

/// A backend authenticated by a fresh service-account key whose
/// `token_uri` is `token_url`, reaching the emulator through `storage_url`.
/// Returns the backend and the directory holding key.json and public.pem.
async fn service_account_backend(
    storage_url: &str,
    token_url: &str,
    prefix: &str,
    chunk: &str,
) -> (Arc<dyn Adapter>, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    client(&["keygen", keys.path().to_str().unwrap(), token_url, SA_EMAIL]);
    let config = format!(
        "endpoint = \"{storage_url}\"\nservice_account_key = \"/secrets/key.json\"\nprefix = \"{prefix}\"\nchunk_size = \"{chunk}\""
    );
    let dirs = format!(
        "[[backends.gcs.grants.dirs]]\nhost = \"{}\"\nguest = \"/secrets\"\nread_only = true\n",
        keys.path().display()
    );
    let adapter = host(&config, &[grant_of(storage_url), grant_of(token_url)], &dirs)
        .adapter("gcs")
        .await
        .unwrap();
    (adapter, keys)
}

/// A service-account key works end to end: the adapter signs an RS256 JWT
/// that verifies with the key's public half, trades it at `token_uri`, and
/// sends the token on every storage request. The token is cached in the
/// backend, which the host keeps warm between operations: one exchange per
/// token lifetime, however many operations and requests (a resumable write
/// sends five here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_key_flow() {
    const TOKEN: &str = "ya29.wharf-test-access-token";
    let (token_url, exchanges) = token_endpoint(TOKEN, false).await;
    let (proxy_url, heads) = proxy(authority(&gcs_url()).to_string(), None).await;
    let (adapter, keys) = service_account_backend(&proxy_url, &token_url, &unique("sa"), "256KiB").await;
    assert_eq!(exchanges.lock().unwrap().len(), 0, "opening the backend needs no token");

    // One write operation: a session, three chunks and the last one.
    let p = path("model.bin");
    let (written, _) = write_stream(&*adapter, &p, (1 << 20) - 7, 3).await;
    assert_eq!(exchanges.lock().unwrap().len(), 1, "one exchange for the whole write");
    let requests_of_write = heads.lock().unwrap().len();
    assert_eq!(requests_of_write, 5, "{:?}", heads.lock().unwrap());

    assert_eq!(read_hash(&*adapter, &p).await, written);
    assert_eq!(adapter.stat(&p).await.unwrap().size, (1 << 20) - 7);
    assert_eq!(
        exchanges.lock().unwrap().len(),
        1,
        "the read and the stat run in the warm instance and use its token"
    );
    // A thousand more operations: still the one exchange.
    for _ in 0..1000 {
        adapter.stat(&p).await.unwrap();
    }
    assert_eq!(exchanges.lock().unwrap().len(), 1, "one exchange per 1,000 operations");
    let heads = heads.lock().unwrap().clone();
    for head in &heads {
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("authorization: bearer {TOKEN}").to_ascii_lowercase()),
            "a storage request without the token: {head}"
        );
    }

    let public = keys.path().join("public.pem");
    for body in exchanges.lock().unwrap().iter() {
        assert!(
            body.starts_with("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&"),
            "{body}"
        );
        let verified = client(&["verify-jwt", public.to_str().unwrap(), assertion_of(body)]);
        let jwt: serde_json::Value = serde_json::from_str(&verified).unwrap();
        assert_eq!(jwt["header"]["alg"], "RS256", "{jwt}");
        assert_eq!(jwt["header"]["kid"], "wharf-test-key", "{jwt}");
        let claims = &jwt["claims"];
        assert_eq!(claims["iss"], SA_EMAIL, "{jwt}");
        assert_eq!(claims["aud"], token_url.as_str(), "{jwt}");
        assert_eq!(
            claims["scope"], "https://www.googleapis.com/auth/devstorage.read_write",
            "{jwt}"
        );
        let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
        assert_eq!(exp - iat, 3600, "{jwt}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!((now - iat).abs() < 300, "iat {iat} is not now ({now})");
    }
}

/// A refused exchange is `denied`, names the service account, and carries
/// neither the signed assertion nor the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_key_is_denied_without_secrets() {
    let (token_url, exchanges) = token_endpoint("unused", true).await;
    let (adapter, keys) = service_account_backend(&gcs_url(), &token_url, &unique("sa-refused"), "8MiB").await;
    let e = adapter.stat(&path("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let text = e.to_string();
    assert!(text.contains(SA_EMAIL) && text.contains("invalid_grant"), "{text}");
    let bodies = exchanges.lock().unwrap().clone();
    let jwt = assertion_of(&bodies[0]);
    assert!(
        !text.contains(jwt.split('.').nth(2).unwrap()),
        "the assertion leaked: {text}"
    );
    let key_file = std::fs::read_to_string(keys.path().join("key.json")).unwrap();
    let key: serde_json::Value = serde_json::from_str(&key_file).unwrap();
    let pem_line = key["private_key"].as_str().unwrap().lines().nth(1).unwrap();
    assert!(!text.contains(pem_line), "the key leaked: {text}");
}

/// An endpoint the backend's grant does not cover is refused by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_not_granted_is_denied() {
    let url = gcs_url();
    let config = format!(
        "endpoint = \"{url}\"\nanonymous = \"true\"\nprefix = \"{}\"",
        unique("denied")
    );
    let adapter = host(&config, &["http://127.0.0.1:1".to_string()], "")
        .adapter("gcs")
        .await
        .unwrap();
    let e = adapter.stat(&path("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants.http"), "{e}");
}

/// `abort()` after three chunks (a resumable session with two of them
/// sent) leaves no object and nothing in a listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_upload_leaves_nothing() {
    let adapter = adapter(&unique("abort"), "chunk_size = \"1MiB\"").await;
    let p = path("big.bin");
    let mut w = adapter.write(&p, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(1, 3 << 20);
    while let Some(chunk) = data.next_chunk(1 << 20) {
        w.append(chunk).await.unwrap();
    }
    w.abort().await.unwrap();
    assert_eq!(adapter.stat(&p).await.unwrap_err().kind(), ErrorKind::NotFound);
    let page = adapter.list("", None, 10).await.unwrap();
    assert!(page.entries.is_empty(), "{:?}", page.entries);
}

/// Bad config is `invalid` and names the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    let url = gcs_url();
    for (extra, needle) in [
        ("anonymous = \"true\"\ncolour = \"blue\"", "colour"),
        ("anonymous = \"true\"\nchunk_size = \"100KiB\"", "chunk_size"),
        ("anonymous = \"true\"\nchunk_size = \"1000000\"", "chunk_size"),
        ("anonymous = \"maybe\"", "anonymous"),
        ("anonymous = \"true\"\ntoken = \"sekrit-token\"", "token"),
        ("service_account_key = \"/nowhere/key.json\"", "service_account_key"),
    ] {
        let config = format!("endpoint = \"{url}\"\n{extra}");
        let e = host(&config, &[grant_of(&url)], "")
            .adapter("gcs")
            .await
            .err()
            .unwrap_or_else(|| panic!("{extra} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(!e.to_string().contains("sekrit-token"), "the token leaked: {e}");
    }
}

/// The emulator ignores `ifGenerationMatch`, so two `create` writers that
/// both pass the adapter's early check both succeed there; on GCS the
/// second `finish` is `already-exists`. If this starts failing, the
/// emulator learned preconditions: update the crate docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_both_win_on_the_emulator() {
    let adapter = adapter(&unique("race"), "").await;
    let p = path("raced");
    let mut first = adapter.write(&p, PutMode::Create, None).await.unwrap();
    let mut second = adapter.write(&p, PutMode::Create, None).await.unwrap();
    first.append(bytes::Bytes::from_static(b"first")).await.unwrap();
    second.append(bytes::Bytes::from_static(b"second")).await.unwrap();
    first.finish().await.unwrap();
    let second = second.finish().await;
    assert!(second.is_ok(), "the emulator now honours ifGenerationMatch: {second:?}");
    // Once the object exists, the early check refuses a create before any upload.
    let e = adapter.write(&p, PutMode::Create, None).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
}
