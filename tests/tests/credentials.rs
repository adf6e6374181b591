//! Credentials the host obtains by an exchange and refreshes before they
//! expire, each source against a real implementation where one runs here
//! (moto's STS: `AssumeRoleWithWebIdentity`, `AssumeRole`) and otherwise
//! against the stand-ins of `wharf_tests::standin` (IMDSv2, container
//! credentials, the GCE metadata server, Google's token endpoint), which
//! say they are stand-ins. Lifetimes are seconds, to see refresh before
//! expiry and one exchange per lifetime.
//!
//! The AWS keys the stand-ins hand out are s3s-fs's, which checks every
//! signature: a round trip through s3s-fs proves the exchanged keys reached
//! the adapter and signed its requests.

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::credentials::CredentialProvider;
use wharf::{Adapter, ErrorKind, Host, ObjectPath, PutMode};
use wharf_tests::standin::{self, AwsKeys, GoogleAccount};
use wharf_tests::{server_env, sleep_past, unique, url_host as build};

fn provider(host: &Host, name: &str) -> Arc<CredentialProvider> {
    host.config().backends[name]
        .credentials
        .clone()
        .expect("the backend's credentials are exchanged")
}

/// Writes an object and reads it back through the backend.
async fn round_trip(adapter: &dyn Adapter, key: &str) -> wharf::Result<()> {
    let path = ObjectPath::parse(key).unwrap();
    let body = Bytes::from(format!("model bytes of {key}").repeat(1000));
    let mut w = adapter
        .write(&path, PutMode::Overwrite, Some(body.len() as u64))
        .await?;
    w.append(body.clone()).await?;
    w.finish().await?;
    let mut r = adapter.read(&path, None).await?;
    let mut back = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        back.extend_from_slice(&c);
    }
    assert!(back == body, "{key}: other bytes came back");
    adapter.delete(&path).await
}

fn s3s_keys() -> AwsKeys {
    AwsKeys {
        id: server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        secret: server_env("WHARF_TEST_S3S_SECRET_KEY"),
    }
}

fn s3s_vars() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_S3", server_env("WHARF_TEST_S3S_URL")),
        ("AWS_REGION", "us-east-1".into()),
    ]
}

fn s3_url() -> String {
    format!("s3://{}/{}", server_env("WHARF_TEST_BUCKET"), unique("creds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_through_moto_sts_is_refreshed_before_it_expires() {
    let moto = server_env("WHARF_TEST_MOTO_URL");
    let home = tempfile::tempdir().unwrap();
    let token = home.path().join("token");
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.web-identity-token.sig").unwrap();
    // A profile with a web identity and a four-second lifetime (moto
    // issues what is asked; AWS's floor is 900 s).
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        format!(
            "[default]\nrole_arn = arn:aws:iam::123456789012:role/wharf-irsa\nweb_identity_token_file = {}\nduration_seconds = 4\n",
            token.display()
        ),
    )
    .unwrap();
    let (host, name, _dir) = build(&s3_url(), &[("AWS_ENDPOINT_URL", moto.clone())], home.path(), |_| {}).unwrap();
    let p = provider(&host, &name);
    assert!(
        p.describe().starts_with("web identity (profile `default`"),
        "{}",
        p.describe()
    );
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    for i in 0..4 {
        round_trip(&*adapter, &format!("m/{i}.bin")).await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "the operations were too slow to test the lifetime"
    );
    assert_eq!(p.exchanges(), 1, "one exchange for every operation within its lifetime");
    // Refreshed a quarter of its lifetime (1 s) before it ends: after 3 s.
    sleep_past(start, Duration::from_secs(3)).await;
    round_trip(&*adapter, "m/after.bin").await.unwrap();
    assert_eq!(p.exchanges(), 2);
    assert_eq!(p.generation(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assume_role_signed_with_a_source_profile_through_moto_sts() {
    let moto = server_env("WHARF_TEST_MOTO_URL");
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile ml]\nrole_arn = arn:aws:iam::123456789012:role/ml-writer\nsource_profile = base\nexternal_id = wharf-test\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[base]\naws_access_key_id = AKIABASEPROFILE\naws_secret_access_key = base-profile-secret-key\n",
    )
    .unwrap();
    let vars = [("AWS_ENDPOINT_URL", moto.clone()), ("AWS_PROFILE", "ml".to_string())];
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let p = provider(&host, &name);
    assert!(p.describe().contains("with keys of profile `base`"), "{}", p.describe());
    let adapter = host.adapter(&name).await.unwrap();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    assert_eq!(p.exchanges(), 1);

    // STS unreachable: the error names the role, the profile and the
    // endpoint, never the source profile's secret.
    let vars = [
        ("AWS_ENDPOINT_URL_S3", moto.clone()),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9".to_string()),
        ("AWS_PROFILE", "ml".to_string()),
    ];
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("no STS, no backend");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{msg}");
    assert!(
        msg.contains("role `arn:aws:iam::123456789012:role/ml-writer`")
            && msg.contains("profile `ml`")
            && msg.contains("STS AssumeRole at http://127.0.0.1:9"),
        "{msg}"
    );
    assert!(!msg.contains("base-profile-secret-key"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_credentials_with_an_authorization_token_file() {
    let home = tempfile::tempdir().unwrap();
    let token_file = home.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, "pod-identity-token-1\n").unwrap();
    let server = standin::container(
        s3s_keys(),
        "/v1/credentials",
        Some("pod-identity-token-1".into()),
        Duration::from_secs(3600),
    );
    let mut vars = s3s_vars();
    vars.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("{}/v1/credentials", server.url()),
    ));
    vars.push((
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        token_file.to_str().unwrap().into(),
    ));
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let adapter = host.adapter(&name).await.unwrap();
    for i in 0..3 {
        round_trip(&*adapter, &format!("m/{i}.bin")).await.unwrap();
    }
    assert_eq!(server.issued(), 1, "one exchange for the lifetime");

    // The token file is read at each exchange: a rotated, wrong one is
    // refused (401), named by the endpoint, and the token is not shown.
    std::fs::write(&token_file, "stale-pod-identity-token").unwrap();
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("refused");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Denied, "{msg}");
    assert!(
        msg.contains(&format!(
            "container credentials at {}/v1/credentials answered 401",
            server.url()
        )),
        "{msg}"
    );
    assert!(!msg.contains("stale-pod-identity-token"), "{msg}");
}

/// `~/.aws/sso/cache/NAME.json` as `aws sso login` writes it.
fn sso_cache(home: &Path, name: &str, token: &str, expires_in: Duration) {
    let expires = standin::expiry(expires_in);
    let dir = home.join(".aws/sso/cache");
    std::fs::create_dir_all(&dir).unwrap();
    let cached = serde_json::json!({
        "startUrl": "https://corp.awsapps.com/start",
        "region": "eu-west-1",
        "accessToken": token,
        "expiresAt": expires,
        "clientId": "client-id",
        "clientSecret": "client-secret",
        "refreshToken": "refresh-token",
    });
    std::fs::write(dir.join(format!("{name}.json")), cached.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_role_from_the_token_aws_sso_login_cached() {
    let home = tempfile::tempdir().unwrap();
    let portal = standin::sso_portal(
        s3s_keys(),
        "123456789012",
        "ModelWriter",
        "sso-access-token-1",
        Duration::from_secs(3600),
    );
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile ml]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = ModelWriter\n\n\
         [profile legacy]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = eu-west-1\n\
         sso_account_id = 123456789012\nsso_role_name = ModelWriter\n\n\
         [profile other-role]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
    )
    .unwrap();
    // The AWS CLI names the cache file by the SHA-1 of the session name
    // (`echo -n corp | sha1sum`), or of the start URL for a legacy profile.
    sso_cache(
        home.path(),
        "ee0bfd2552fbd840c02cc48b6e823320543c450f",
        "sso-access-token-1",
        Duration::from_secs(3600),
    );
    sso_cache(
        home.path(),
        "79e435d7a515078e81c9dffc35f38d5687ebd3a7",
        "sso-access-token-1",
        Duration::from_secs(3600),
    );
    let mut vars = s3s_vars();
    vars.push(("AWS_ENDPOINT_URL_SSO", portal.url()));
    for profile in ["ml", "legacy"] {
        let mut vars = vars.clone();
        vars.push(("AWS_PROFILE", profile.into()));
        let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
        let p = provider(&host, &name);
        assert!(
            p.describe().contains("IAM Identity Center role `ModelWriter`"),
            "{}",
            p.describe()
        );
        let adapter = host.adapter(&name).await.unwrap();
        round_trip(&*adapter, &format!("{profile}/a.bin")).await.unwrap();
        round_trip(&*adapter, &format!("{profile}/b.bin")).await.unwrap();
    }
    assert_eq!(portal.issued(), 2, "one exchange per backend for the lifetime");

    // A role the login does not reach: denied, named, no token shown.
    vars.push(("AWS_PROFILE", "other-role".into()));
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let msg = host.adapter(&name).await.err().expect("refused").to_string();
    assert!(msg.contains("role `Admin`") && msg.contains("answered 403"), "{msg}");
    assert!(!msg.contains("sso-access-token-1"), "{msg}");
    vars.pop();

    // An expired login says to log in again, before any request.
    sso_cache(
        home.path(),
        "ee0bfd2552fbd840c02cc48b6e823320543c450f",
        "sso-access-token-1",
        Duration::ZERO,
    );
    vars.push(("AWS_PROFILE", "ml".into()));
    let before = portal.issued();
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let e = host.adapter(&name).await.err().expect("refused");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Denied, "{msg}");
    assert!(
        msg.contains("expired") && msg.contains("aws sso login --profile ml"),
        "{msg}"
    );
    assert_eq!(portal.issued(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_metadata_v2_is_refreshed_before_it_expires() {
    let home = tempfile::tempdir().unwrap();
    let server = standin::imds(s3s_keys(), "wharf-instance-role", Duration::from_secs(4));
    let mut vars = s3s_vars();
    vars.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url()));
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let p = provider(&host, &name);
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    assert_eq!(server.issued(), 1);
    sleep_past(start, Duration::from_secs(3)).await;
    round_trip(&*adapter, "m/c.bin").await.unwrap();
    assert_eq!((server.issued(), p.exchanges()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_configured_and_no_instance_metadata_is_anonymous() {
    // A port nothing listens on: not on EC2. The adapter then signs
    // nothing, and s3s-fs refuses the anonymous write as `denied`.
    let home = tempfile::tempdir().unwrap();
    let mut vars = s3s_vars();
    vars.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9".into()));
    let (host, name, _dir) = build(&s3_url(), &vars, home.path(), |_| {}).unwrap();
    let adapter = host.adapter(&name).await.unwrap();
    let e = round_trip(&*adapter, "m/a.bin").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
}

/// An RSA key made by openssl for this run: (PKCS#8 PEM, PKCS#1 DER of the
/// public key).
fn rsa_key(dir: &Path) -> (String, Vec<u8>) {
    let pem = dir.join("key.pem");
    let der = dir.join("pub.der");
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem.to_str().unwrap(),
    ]);
    run(&[
        "rsa",
        "-in",
        pem.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    (std::fs::read_to_string(pem).unwrap(), std::fs::read(der).unwrap())
}

/// The GCS emulator as the endpoint, with the grant for it: the URL alone
/// would name storage.googleapis.com.
fn to_emulator(b: &mut wharf::config::BackendConfig) {
    let gcs = server_env("WHARF_TEST_GCS_URL");
    b.config
        .insert("endpoint".into(), wharf::config::ConfigValue::String(gcs.clone()));
    b.grants.http = vec![gcs];
}

fn gs_url() -> String {
    format!("gs://{}/{}", server_env("WHARF_TEST_BUCKET"), unique("creds"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_service_account_and_authorized_user_through_the_token_endpoint() {
    let home = tempfile::tempdir().unwrap();
    let (private_key, public_key) = rsa_key(home.path());
    let server = standin::google_token(
        GoogleAccount {
            client_email: "trainer@wharf-test.iam.gserviceaccount.com".into(),
            public_key,
            client_id: "wharf-test.apps.googleusercontent.com".into(),
            client_secret: "client-secret-value".into(),
            refresh_token: "1//refresh-token-value".into(),
        },
        Duration::from_secs(3600),
    );
    let key_file = home.path().join("sa.json");
    std::fs::write(
        &key_file,
        serde_json::json!({
            "type": "service_account",
            "client_email": "trainer@wharf-test.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": private_key,
            "token_uri": format!("{}/token", server.url()),
        })
        .to_string(),
    )
    .unwrap();
    let vars = [("GOOGLE_APPLICATION_CREDENTIALS", key_file.to_str().unwrap().to_string())];
    let (host, name, _dir) = build(&gs_url(), &vars, home.path(), to_emulator).unwrap();
    // The key is read by the host: the adapter gets no directory grant.
    assert!(host.config().backends[&name].grants.dirs.is_empty());
    let adapter = host.adapter(&name).await.unwrap();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    // The stand-in verified the JWT's RS256 signature with the public key.
    assert_eq!(server.issued(), 1);

    // gcloud's application-default login: an authorized user's refresh
    // token, found in CLOUDSDK_CONFIG.
    let gcloud = home.path().join("gcloud");
    std::fs::create_dir(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "wharf-test.apps.googleusercontent.com",
            "client_secret": "client-secret-value",
            "refresh_token": "1//refresh-token-value",
            "token_uri": format!("{}/token", server.url()),
        })
        .to_string(),
    )
    .unwrap();
    let vars = [("CLOUDSDK_CONFIG", gcloud.to_str().unwrap().to_string())];
    let (host, name, _dir) = build(&gs_url(), &vars, home.path(), to_emulator).unwrap();
    let adapter = host.adapter(&name).await.unwrap();
    round_trip(&*adapter, "m/c.bin").await.unwrap();
    assert_eq!(server.issued(), 2);

    // A key the endpoint refuses (another key pair): `denied`, naming the
    // account and the endpoint's reason, never the key.
    let other = home.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (other_key, _) = rsa_key(&other);
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    v["private_key"] = other_key.clone().into();
    std::fs::write(&key_file, v.to_string()).unwrap();
    let vars = [("GOOGLE_APPLICATION_CREDENTIALS", key_file.to_str().unwrap().to_string())];
    let (host, name, _dir) = build(&gs_url(), &vars, home.path(), to_emulator).unwrap();
    let e = host.adapter(&name).await.err().expect("refused");
    let msg = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Denied, "{msg}");
    assert!(
        msg.contains("service account `trainer@wharf-test.iam.gserviceaccount.com`")
            && msg.contains("invalid_grant: Invalid JWT Signature."),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_metadata_server_token_is_refreshed_before_it_expires() {
    let home = tempfile::tempdir().unwrap();
    let server = standin::gce_metadata(Duration::from_secs(4));
    let vars = [("GCE_METADATA_HOST", server.authority())];
    let (host, name, _dir) = build(&gs_url(), &vars, home.path(), to_emulator).unwrap();
    let p = provider(&host, &name);
    let adapter = host.adapter(&name).await.unwrap();
    let start = Instant::now();
    round_trip(&*adapter, "m/a.bin").await.unwrap();
    assert_eq!(server.issued(), 1);
    sleep_past(start, Duration::from_secs(3)).await;
    round_trip(&*adapter, "m/b.bin").await.unwrap();
    assert_eq!((server.issued(), p.exchanges()), (2, 2));
}
