//! Backends named by URL with no `wharf.toml` at all: credentials and
//! endpoints from the variables each ecosystem's own tools read, against
//! the real test servers (scripts/test.sh starts them and exports their
//! addresses). `HOME` is an empty directory, so nothing of the machine's
//! own `~/.aws` or `~/.pgpass` is read.

mod common;

use common::{stderr, wharf_with};
use std::path::Path;

fn server_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run the tests with ./scripts/test.sh"))
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

/// `wharf -b URL put`, then `get` into a file, with only `env` (and an
/// empty HOME): the bytes come back, the record names the URL's kind.
fn round_trip(url: &str, kind: &str, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("HOME", home.path().to_str().unwrap()));
    let model: Vec<u8> = (0..(3u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(dir.path().join("model.bin"), &model).unwrap();
    // Redis and PostgreSQL URLs name no prefix: a model of its own.
    let model_name = unique("detector");
    let put = wharf_with(
        dir.path(),
        &["-b", url, "put", "model.bin", "--model", &model_name],
        &env,
    );
    assert!(put.status.success(), "{url}: put: {}", stderr(&put));
    let info: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(info["storage_backend"], kind, "{info}");
    assert_eq!(info["model_name"], model_name.as_str(), "{info}");
    let path = info["storage_path"].as_str().unwrap();
    let get = wharf_with(dir.path(), &["-b", url, "get", path, "-o", "back.bin"], &env);
    assert!(get.status.success(), "{url}: get: {}", stderr(&get));
    assert!(
        std::fs::read(dir.path().join("back.bin")).unwrap() == model,
        "{url}: other bytes"
    );
    let rm = wharf_with(dir.path(), &["-b", url, "rm", path], &env);
    assert!(rm.status.success(), "{url}: rm: {}", stderr(&rm));
}

/// `wharf -b URL config show --json`: the backend as resolved.
fn shown(url: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("HOME", dir.path().to_str().unwrap()));
    let o = wharf_with(dir.path(), &["-b", url, "--json", "config", "show"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["backends"][0].clone()
}

fn source_of(backend: &serde_json::Value, key: &str) -> String {
    backend["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .map(|c| {
            format!(
                "{} ({})",
                c["value"].as_str().unwrap(),
                c["source"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

#[test]
fn s3_from_aws_variables() {
    let endpoint = server_env("WHARF_TEST_S3S_URL");
    let key = server_env("WHARF_TEST_S3S_ACCESS_KEY");
    let secret = server_env("WHARF_TEST_S3S_SECRET_KEY");
    let url = format!("s3://{}/{}/", server_env("WHARF_TEST_BUCKET"), unique("urls"));
    let env = [
        ("AWS_ACCESS_KEY_ID", key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    round_trip(&url, "aws_s3", &env);
    let b = shown(&url, &env);
    assert_eq!(source_of(&b, "secret_access_key"), "(secret) (AWS_SECRET_ACCESS_KEY)");
    assert_eq!(source_of(&b, "endpoint"), format!("{endpoint} (AWS_ENDPOINT_URL_S3)"));
    assert_eq!(b["grants"]["http"], serde_json::json!([endpoint.trim_end_matches('/')]));
    assert!(!b.to_string().contains(&secret), "{b}");

    // s3s-fs checks signatures: a wrong secret is denied, and the message
    // names the key id, never a secret.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.bin"), b"x").unwrap();
    let wrong = "wrong-secret-value";
    let o = wharf_with(
        dir.path(),
        &["-b", &url, "put", "m.bin"],
        &[
            ("AWS_ACCESS_KEY_ID", key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", wrong),
            ("AWS_ENDPOINT_URL_S3", endpoint.as_str()),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("denied") && e.contains(&key), "{e}");
    assert!(!e.contains(wrong), "{e}");
}

/// No wharf.toml and no keys: the web-identity variables of EKS IRSA
/// alone. The host exchanges the token with STS (moto's) and the adapter
/// gets the short-lived keys; `config show` names the source and the
/// endpoint the host contacts, which is not granted to the adapter.
#[test]
fn s3_from_web_identity_variables_alone() {
    let moto = server_env("WHARF_TEST_MOTO_URL");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("irsa-token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.irsa.sig").unwrap();
    let url = format!("s3://{}/{}/", server_env("WHARF_TEST_BUCKET"), unique("irsa"));
    let env = [
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/wharf-irsa"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().unwrap()),
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    round_trip(&url, "aws_s3", &env);
    let b = shown(&url, &env);
    assert_eq!(
        b["credentials"],
        format!(
            "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE): role `arn:aws:iam::123456789012:role/wharf-irsa`, token file `{}`",
            token.display()
        ),
        "{b}"
    );
    assert_eq!(
        b["credential_endpoints"],
        serde_json::json!([moto.trim_end_matches('/')])
    );
    // A token file that is gone: the command fails, naming the file.
    let o = wharf_with(
        dir.path(),
        &["-b", &url, "ls"],
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/wharf-irsa"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/irsa-token"),
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("HOME", dir.path().to_str().unwrap()),
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("reading the token file `/nonexistent/irsa-token`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn azure_from_a_connection_string() {
    let endpoint = server_env("WHARF_TEST_AZURITE_URL");
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint={endpoint};",
        server_env("WHARF_TEST_AZURITE_ACCOUNT"),
        server_env("WHARF_TEST_AZURITE_KEY")
    );
    let url = format!("az://wharf-test/{}", unique("urls"));
    let env = [("AZURE_STORAGE_CONNECTION_STRING", cs.as_str())];
    round_trip(&url, "azure_blob", &env);
    let b = shown(&url, &env);
    assert_eq!(
        source_of(&b, "account_key"),
        "(secret) (AZURE_STORAGE_CONNECTION_STRING)"
    );
}

#[test]
fn gcs_from_the_emulator_variable() {
    let endpoint = server_env("WHARF_TEST_GCS_URL");
    // The Google libraries' spelling: host:port without a scheme.
    let host = endpoint.trim_start_matches("http://").to_string();
    let url = format!("gs://wharf-test/{}", unique("urls"));
    round_trip(&url, "gcp_storage", &[("STORAGE_EMULATOR_HOST", host.as_str())]);
}

#[test]
fn redis_from_its_url() {
    let url = format!(
        "redis://:{}@{}/0",
        server_env("WHARF_TEST_REDIS_PASSWORD"),
        server_env("WHARF_TEST_REDIS_ADDR")
    );
    round_trip(&url, "redis", &[]);
    let b = shown(&url, &[]);
    assert!(!b.to_string().contains(&server_env("WHARF_TEST_REDIS_PASSWORD")), "{b}");
    assert!(b["url"].as_str().unwrap().contains(":***@"), "{b}");
    // `health` checks it and says what it may reach and where its secret
    // came from.
    let dir = tempfile::tempdir().unwrap();
    let o = wharf_with(dir.path(), &["-b", &url, "--json", "health"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["backend"] == "redis")
        .unwrap();
    assert_eq!(row["ok"], true, "{row}");
    assert_eq!(
        row["grants"],
        serde_json::json!([format!("tcp {}", server_env("WHARF_TEST_REDIS_ADDR"))])
    );
    assert_eq!(row["credentials"], serde_json::json!({ "password": "the URL" }));
    // REDIS_URL for a bare `redis://`.
    round_trip("redis://", "redis", &[("REDIS_URL", url.as_str())]);
}

#[test]
fn postgres_from_pg_variables_and_pgpass() {
    let addr = server_env("WHARF_TEST_PG_ADDR");
    let (host, port) = addr.split_once(':').unwrap();
    let (user, password, db) = (
        server_env("WHARF_TEST_PG_USER"),
        server_env("WHARF_TEST_PG_PASSWORD"),
        server_env("WHARF_TEST_PG_DB"),
    );
    let url = format!("postgresql://{user}:{password}@{addr}/{db}");
    round_trip(&url, "database", &[]);
    // The password from a .pgpass file (0600), the rest from PG* variables.
    let pgpass = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pgpass.path(), format!("{host}:{port}:{db}:{user}:{password}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(pgpass.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let env = [
        ("PGHOST", host),
        ("PGPORT", port),
        ("PGUSER", user.as_str()),
        ("PGDATABASE", db.as_str()),
        ("PGPASSFILE", pgpass.path().to_str().unwrap()),
    ];
    round_trip("postgresql://", "database", &env);
    let b = shown("postgresql://", &env);
    assert!(source_of(&b, "password").starts_with("(secret) (`"), "{b}");
}

#[test]
fn mlflow_artifacts_from_the_tracking_uri() {
    let tracking = server_env("WHARF_TEST_MLFLOW_URL");
    let url = format!("mlflow-artifacts:/{}", unique("urls"));
    round_trip(&url, "mlflow", &[("MLFLOW_TRACKING_URI", tracking.as_str())]);
}

#[test]
fn file_url_needs_nothing() {
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}", store.path().join("models").display());
    round_trip(&url, "local_filesystem", &[]);
    assert!(Path::new(&store.path().join("models")).is_dir());
}

#[test]
fn a_url_without_credentials_says_which_to_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.bin"), b"x").unwrap();
    let o = wharf_with(
        dir.path(),
        &["-b", "az://c/p", "put", "m.bin"],
        &[("HOME", dir.path().to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert!(stderr(&o).contains("AZURE_STORAGE_CONNECTION_STRING"), "{}", stderr(&o));
}

/// A CA of the test's own, which signed nothing the servers present.
fn other_ca(dir: &Path) -> String {
    let (key, pem) = (dir.join("other.key"), dir.join("other.pem"));
    let o = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=not the test CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("openssl runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    pem.to_str().unwrap().to_string()
}

/// `wharf -b URL ls` fails as denied, naming `check`.
fn refused(url: &str, env: &[(&str, &str)], check: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("HOME", dir.path().to_str().unwrap()));
    let o = wharf_with(dir.path(), &["-b", url, "ls"], &env);
    let err = stderr(&o);
    assert!(!o.status.success(), "{url}: listed over a TLS it should refuse");
    assert!(err.contains("denied") && err.contains(check), "{url}: {err}");
}

#[test]
fn redis_over_tls() {
    let (ca, port) = (server_env("WHARF_TEST_TLS_CA"), server_env("WHARF_TEST_REDIS_TLS_PORT"));
    let password = server_env("WHARF_TEST_REDIS_PASSWORD");
    // The server's certificate names `localhost`, signed by the test's CA.
    let url = format!("rediss://:{password}@localhost:{port}/0?ssl_ca_certs={ca}");
    round_trip(&url, "redis", &[]);
    // The adapter is granted the host's relay to exactly that peer, and no
    // TCP of its own.
    let b = shown(&url, &[]);
    assert_eq!(b["grants"]["tcp"], serde_json::json!([]), "{b}");
    assert_eq!(
        b["grants"]["tls"],
        serde_json::json!([format!("localhost:{port} (verify full, CA {ca}, by the host)")]),
        "{b}"
    );
    assert!(b["tls"].as_str().unwrap().contains("host name checked"), "{b}");
    assert!(!b.to_string().contains(&password), "{b}");
    // Another CA: the certificate check fails, and says so.
    let dir = tempfile::tempdir().unwrap();
    let other = other_ca(dir.path());
    refused(
        &format!("rediss://:{password}@localhost:{port}/0?ssl_ca_certs={other}"),
        &[],
        "certificate check failed",
    );
    // The right CA but an address the certificate does not name.
    let by_ip = format!("rediss://:{password}@127.0.0.1:{port}/0?ssl_ca_certs={ca}");
    refused(&by_ip, &[], "host name check failed");
    // redis-py's ssl_check_hostname=false: the chain alone.
    round_trip(&format!("{by_ip}&ssl_check_hostname=false"), "redis", &[]);
    // A TLS URL to the plain port fails; it never falls back to plain text.
    let plain = format!(
        "rediss://:{password}@localhost:{}/0?ssl_ca_certs={ca}",
        server_env("WHARF_TEST_REDIS_ADDR").rsplit_once(':').unwrap().1
    );
    let home = tempfile::tempdir().unwrap();
    let o = wharf_with(
        home.path(),
        &["-b", &plain, "ls"],
        &[("HOME", home.path().to_str().unwrap())],
    );
    assert!(!o.status.success(), "listed in plain text over a rediss:// URL");
    assert!(stderr(&o).contains("does the peer speak TLS"), "{}", stderr(&o));
}

#[test]
fn postgres_over_tls() {
    let ca = server_env("WHARF_TEST_TLS_CA");
    let addr = server_env("WHARF_TEST_PG_ADDR");
    let port = addr.rsplit_once(':').unwrap().1;
    let (user, password, db) = (
        server_env("WHARF_TEST_PG_USER"),
        server_env("WHARF_TEST_PG_PASSWORD"),
        server_env("WHARF_TEST_PG_DB"),
    );
    let url = |host: &str, params: &str| format!("postgresql://{user}:{password}@{host}:{port}/{db}?{params}");
    round_trip(
        &url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")),
        "database",
        &[],
    );
    // libpq's variables say the same.
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    round_trip(&url("localhost", ""), "database", &env);
    let b = shown(&url("localhost", ""), &env);
    assert_eq!(b["grants"]["tcp"], serde_json::json!([]), "{b}");
    assert_eq!(
        b["grants"]["tls"],
        serde_json::json!([format!("localhost:{port} (verify full, CA {ca}, by the host)")]),
        "{b}"
    );
    // Another CA: denied, naming the certificate check.
    let dir = tempfile::tempdir().unwrap();
    let other = other_ca(dir.path());
    refused(
        &url("localhost", &format!("sslmode=verify-full&sslrootcert={other}")),
        &[],
        "certificate check failed",
    );
    // verify-full by IP: the host name check fails; verify-ca checks the
    // chain only and connects.
    refused(
        &url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
        &[],
        "host name check failed",
    );
    round_trip(
        &url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")),
        "database",
        &[],
    );
    // require with no root file: encrypted, unchecked (libpq's meaning).
    round_trip(&url("127.0.0.1", "sslmode=require"), "database", &[]);
    let b = shown(&url("127.0.0.1", "sslmode=require"), &[]);
    assert!(b["tls"].as_str().unwrap().contains("NOT checked"), "{b}");
    // require with another CA in ~/.postgresql/root.crt: libpq checks the
    // chain then, and so does wharf.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(&other, home.path().join(".postgresql/root.crt")).unwrap();
    let o = wharf_with(
        home.path(),
        &["-b", &url("localhost", "sslmode=require"), "ls"],
        &[("HOME", home.path().to_str().unwrap())],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("certificate check failed"),
        "{}",
        stderr(&o)
    );
}
