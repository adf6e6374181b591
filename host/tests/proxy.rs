//! Adapters' HTTP through the proxy the environment names: a local
//! `CONNECT` proxy (written here: a proxy, not a stand-in for a storage
//! service) in front of the real s3s-fs server, which checks every
//! signature. The proxy counts the tunnels it opened and checks
//! `Proxy-Authorization`.

mod common;

use common::{stderr, wharf_with};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `Basic` credentials of `wharf:s3cret-pw`.
const AUTH: &str = "Basic d2hhcmY6czNjcmV0LXB3";

struct Proxy {
    port: u16,
    /// `CONNECT` targets tunnelled, and those refused (407).
    tunnels: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 until dropped, or for two minutes at most.
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, r, s) = (tunnels.clone(), refused.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (t, r) = (t.clone(), r.clone());
                        std::thread::spawn(move || serve(client, &t, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            port,
            tunnels,
            refused,
            stop,
        }
    }
}

/// One client: a `CONNECT host:port` head with the right credentials gets a
/// tunnel, anything else a 407.
fn serve(client: TcpStream, tunnels: &Mutex<Vec<String>>, refused: &Mutex<Vec<String>>) {
    client.set_nonblocking(false).unwrap();
    client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let target = head
        .first()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("")
        .to_string();
    let authorized = head.iter().any(|h| {
        h.split_once(':')
            .is_some_and(|(k, v)| k.eq_ignore_ascii_case("proxy-authorization") && v.trim() == AUTH)
    });
    let mut client = client;
    if target.is_empty() || !authorized {
        refused.lock().unwrap().push(target);
        let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n");
        return;
    }
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        return;
    };
    tunnels.lock().unwrap().push(target);
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .unwrap();
    client.set_read_timeout(None).unwrap();
    // Bytes the reader buffered past the head go first.
    let early = reader.buffer().to_vec();
    let mut up = upstream.try_clone().unwrap();
    up.write_all(&early).unwrap();
    let mut down_from = upstream;
    let mut down_to = client.try_clone().unwrap();
    let pump = std::thread::spawn(move || {
        let _ = std::io::copy(&mut down_from, &mut down_to);
        let _ = down_to.shutdown(std::net::Shutdown::Write);
    });
    let mut from_client = client;
    let mut buf = [0u8; 64 << 10];
    loop {
        match from_client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if up.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = up.shutdown(std::net::Shutdown::Write);
    let _ = pump.join();
}

fn server_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests with ./scripts/test.sh"))
}

#[test]
fn s3_requests_go_through_the_environments_proxy() {
    let proxy = Proxy::start();
    let endpoint = server_env("WHARF_TEST_S3S_URL");
    let s3s_addr = endpoint.trim_start_matches("http://").trim_end_matches('/').to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.bin"), vec![7u8; 3 << 20]).unwrap();
    let url = format!(
        "s3://{}/proxy-{}-{}/",
        server_env("WHARF_TEST_BUCKET"),
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let key = server_env("WHARF_TEST_S3S_ACCESS_KEY");
    let secret = server_env("WHARF_TEST_S3S_SECRET_KEY");
    let home = dir.path().to_str().unwrap().to_string();
    let run = |proxy_url: &str, no_proxy: &str, args: &[&str]| {
        wharf_with(
            dir.path(),
            &[&["-b", url.as_str()], args].concat(),
            &[
                ("AWS_ACCESS_KEY_ID", key.as_str()),
                ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
                ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
                ("HOME", home.as_str()),
                ("HTTP_PROXY", proxy_url),
                ("HTTPS_PROXY", proxy_url),
                ("NO_PROXY", no_proxy),
            ],
        )
    };
    let with_auth = format!("http://wharf:s3cret-pw@127.0.0.1:{}", proxy.port);
    let o = run(&with_auth, "", &["put", "model.bin", "--model", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = run(
        &with_auth,
        "",
        &["get", info["storage_path"].as_str().unwrap(), "-o", "back.bin"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("back.bin")).unwrap(), vec![7u8; 3 << 20]);
    let tunnels = proxy.tunnels.lock().unwrap().clone();
    assert!(!tunnels.is_empty(), "no request went through the proxy");
    assert!(tunnels.iter().all(|t| *t == s3s_addr), "{tunnels:?}");
    let before = tunnels.len();

    // NO_PROXY: straight to the server.
    let o = run(&with_auth, "127.0.0.1", &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(proxy.tunnels.lock().unwrap().len(), before);

    // A proxy that refuses the credentials: the request fails, naming the
    // proxy, never the password.
    let wrong = format!("http://wharf:wrong-pw@127.0.0.1:{}", proxy.port);
    let o = run(&wrong, "", &["ls"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("proxy"), "{e}");
    assert!(!e.contains("wrong-pw") && !e.contains("s3cret-pw"), "{e}");
    assert!(!proxy.refused.lock().unwrap().is_empty());
    assert_eq!(proxy.tunnels.lock().unwrap().len(), before);
}
