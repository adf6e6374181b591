//! URLs to backends, in environments built by each test (never the
//! process's own).

use super::*;
use crate::config::Config;

fn env(vars: &[(&str, &str)]) -> Env {
    Env::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn value(b: &BackendConfig, key: &str) -> Option<String> {
    match b.config.get(key)? {
        ConfigValue::String(s) | ConfigValue::Secret(s) => Some(s.clone()),
        other => panic!("{key}: {:?}", matches!(other, ConfigValue::Integer(_))),
    }
}

fn is_secret(b: &BackendConfig, key: &str) -> bool {
    matches!(b.config.get(key), Some(ConfigValue::Secret(_)))
}

fn source(b: &BackendConfig, key: &str) -> String {
    b.sources.get(key).cloned().unwrap_or_default()
}

fn err(url: &str, e: &Env) -> String {
    backend(url, e).map(|_| ()).unwrap_err().to_string()
}

#[test]
fn schemes_map_to_plugins() {
    for (url, plugin) in [
        ("file:///tmp/x", "local_filesystem"),
        ("s3://b/p", "aws_s3"),
        ("gs://b", "gcp_storage"),
        ("az://c", "azure_blob"),
        ("abfss://c@a.dfs.core.windows.net/p", "azure_blob"),
        ("hf://models/o/r", "huggingface_hub"),
        ("mlflow-artifacts:/x", "mlflow"),
        ("redis://h:1", "redis"),
        ("rediss://h:1", "redis"),
        ("postgresql://h/d", "database"),
        ("postgres://h/d", "database"),
    ] {
        assert_eq!(plugin_of(url), Some(plugin), "{url}");
        assert!(is_url(url), "{url}");
    }
    assert!(!is_url("models"));
    assert!(err("ftp://x/y", &env(&[])).contains("unknown scheme"));
}

#[test]
fn s3_from_variables() {
    let e = env(&[
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "us-west-2"),
    ]);
    let b = backend("s3://models-bucket/team/detectors", &e).unwrap();
    assert_eq!(b.plugin.as_deref(), Some("aws_s3"));
    assert_eq!(value(&b, "bucket").unwrap(), "models-bucket");
    assert_eq!(value(&b, "prefix").unwrap(), "team/detectors/");
    assert_eq!(value(&b, "region").unwrap(), "eu-west-1");
    assert_eq!(source(&b, "region"), "AWS_REGION");
    assert_eq!(value(&b, "access_key_id").unwrap(), "AKIDEXAMPLE");
    assert!(is_secret(&b, "secret_access_key") && is_secret(&b, "session_token"));
    assert!(!is_secret(&b, "access_key_id"));
    assert_eq!(source(&b, "session_token"), "AWS_SESSION_TOKEN");
    // The bucket's own host and the regional endpoint, nothing else.
    assert_eq!(
        b.grants.http,
        [
            "https://models-bucket.s3.eu-west-1.amazonaws.com",
            "https://s3.eu-west-1.amazonaws.com"
        ]
    );
    assert!(b.grants.tcp.is_empty() && b.grants.dirs.is_empty());
    assert!(value(&b, "endpoint").is_none());
}

#[test]
fn s3_endpoint_variables_in_order() {
    let e = env(&[
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1111"),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2222/"),
    ]);
    let b = backend("s3://b", &e).unwrap();
    assert_eq!(value(&b, "endpoint").unwrap(), "http://127.0.0.1:2222/");
    assert_eq!(source(&b, "endpoint"), "AWS_ENDPOINT_URL_S3");
    assert_eq!(b.grants.http, ["http://127.0.0.1:2222"]);
    assert!(value(&b, "prefix").is_none());
    // No credentials anywhere: anonymous, and said so.
    assert!(value(&b, "access_key_id").is_none());
    assert!(source(&b, "credentials").contains("anonymous"));
    let b = backend("s3://b/", &env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1111")])).unwrap();
    assert_eq!(b.grants.http, ["http://127.0.0.1:1111"]);
}

#[test]
fn s3_profile_from_the_shared_files() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = defaultsecret\n\n\
         # a comment\n[ml]\naws_access_key_id=MLKEY\naws_secret_access_key=mlsecret\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-2\n[profile ml]\nregion = ap-south-1\n\
         [profile assumed]\nrole_arn = arn:aws:iam::123456789012:role/ml\nsource_profile = default\n",
    )
    .unwrap();
    let h = home.path().to_str().unwrap();
    let b = backend("s3://b", &env(&[("HOME", h)])).unwrap();
    assert_eq!(value(&b, "access_key_id").unwrap(), "DEFAULTKEY");
    assert_eq!(value(&b, "region").unwrap(), "us-east-2");
    assert!(
        source(&b, "secret_access_key").contains("profile `default`"),
        "{:?}",
        b.sources
    );
    let b = backend("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "ml")])).unwrap();
    assert_eq!(value(&b, "access_key_id").unwrap(), "MLKEY");
    assert_eq!(value(&b, "secret_access_key").unwrap(), "mlsecret");
    assert_eq!(value(&b, "region").unwrap(), "ap-south-1");
    assert!(
        source(&b, "access_key_id").contains(".aws/credentials"),
        "{:?}",
        b.sources
    );
    // Variables come first.
    let b = backend(
        "s3://b",
        &env(&[
            ("HOME", h),
            ("AWS_PROFILE", "ml"),
            ("AWS_ACCESS_KEY_ID", "ENVKEY"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
        ]),
    )
    .unwrap();
    assert_eq!(value(&b, "access_key_id").unwrap(), "ENVKEY");
    // An assumed role: exchanged by the host with the source profile's
    // keys, through the regional STS endpoint; the adapter gets no grant
    // for STS and no keys of its own.
    let b = backend("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "assumed")])).unwrap();
    let p = b.credentials.as_ref().expect("an exchanged source");
    assert_eq!(
        p.describe(),
        format!(
            "assumed role `arn:aws:iam::123456789012:role/ml` (profile `assumed` in {h}/.aws/config), with keys of profile `default` in {h}/.aws/credentials"
        )
    );
    assert_eq!(p.endpoints(), ["https://sts.us-east-1.amazonaws.com"]);
    assert!(value(&b, "access_key_id").is_none());
    assert!(!b.grants.http.iter().any(|g| g.contains("sts")), "{:?}", b.grants.http);
    // A profile named in AWS_PROFILE that does not exist is an error, not
    // anonymous requests.
    let e = err("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "nonesuch")]));
    assert!(e.contains("AWS_PROFILE `nonesuch`"), "{e}");
    assert!(!e.contains("defaultsecret"), "{e}");
}

#[test]
fn s3_exchanged_sources_in_the_sdks_order() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let describe = |vars: &[(&str, &str)]| {
        let mut all = vec![("HOME", h)];
        all.extend_from_slice(vars);
        let b = backend("s3://b", &env(&all)).unwrap();
        b.credentials.as_ref().map(|p| p.describe()).unwrap_or_default()
    };
    let web = [
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/irsa"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"),
    ];
    assert_eq!(
        describe(&web),
        "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE): role `arn:aws:iam::1:role/irsa`, token file `/var/run/secrets/token`"
    );
    let container = [
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://169.254.170.23/v1/credentials",
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/eks-token"),
    ];
    assert_eq!(
        describe(&container),
        "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI) at http://169.254.170.23/v1/credentials, authorization token file `/var/run/eks-token`"
    );
    // Web identity before container credentials, as the SDKs.
    let both: Vec<_> = web.iter().chain(container.iter()).copied().collect();
    assert!(describe(&both).starts_with("web identity"));
    assert_eq!(
        describe(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")]),
        "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) at http://169.254.170.2/v2/credentials/abc"
    );
    // Nothing configured: instance metadata, else anonymous.
    assert_eq!(
        describe(&[]),
        "EC2 instance metadata (IMDSv2) at http://169.254.169.254, else anonymous requests"
    );
    assert_eq!(describe(&[("AWS_EC2_METADATA_DISABLED", "true")]), "");
    // A FULL_URI over plain http to elsewhere is refused (the SDKs' rule).
    let e = err(
        "s3://b",
        &env(&[
            ("HOME", h),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds"),
        ]),
    );
    assert!(e.contains("plain http is allowed only to loopback"), "{e}");
    // credential_process, and IAM Identity Center with its token cache.
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[profile proc]\ncredential_process = /usr/bin/get-creds --json\n\
         [profile sso]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n\
         [profile no-section]\nsso_session = gone\nsso_account_id = 1\nsso_role_name = R\n\
         [profile no-role]\nsso_session = corp\nsso_account_id = 1\n\
         [profile login]\nlogin_session = arn:aws:iam::1:user/u\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n",
    )
    .unwrap();
    assert_eq!(
        describe(&[("AWS_PROFILE", "proc")]),
        format!("credential_process of profile `proc` in {h}/.aws/config")
    );
    // The AWS CLI's cache name: SHA-1 of the session name (`corp`).
    assert_eq!(
        describe(&[("AWS_PROFILE", "sso")]),
        format!(
            "IAM Identity Center role `R` in account 1 (profile `sso`, token cached by `aws sso login` in \
             {h}/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json)"
        )
    );
    let b = backend("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "sso")])).unwrap();
    assert_eq!(
        b.credentials.as_ref().unwrap().endpoints(),
        ["https://portal.sso.eu-west-1.amazonaws.com"]
    );
    let e = err("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "no-section")]));
    assert!(e.contains("no [sso-session gone] section"), "{e}");
    let e = err("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "no-role")]));
    assert!(e.contains("sso_account_id and sso_role_name"), "{e}");
    let e = err("s3://b", &env(&[("HOME", h), ("AWS_PROFILE", "login")]));
    assert!(e.contains("login_session") && e.contains("export-credentials"), "{e}");
}

#[test]
fn gcs_emulator_and_service_account() {
    let b = backend("gs://bkt/a/b", &env(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")])).unwrap();
    assert_eq!(value(&b, "endpoint").unwrap(), "http://127.0.0.1:9023");
    assert_eq!(value(&b, "anonymous").unwrap(), "true");
    assert_eq!(value(&b, "prefix").unwrap(), "a/b/");
    assert_eq!(b.grants.http, ["http://127.0.0.1:9023"]);

    // A key file is read by the host, which exchanges it: the adapter gets
    // no directory grant and no token endpoint, only the storage API.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    let vars = env(&[("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap())]);
    std::fs::write(
        &key,
        r#"{"type":"service_account","client_email":"x@y","private_key":"not-a-pem-secret","token_uri":"https://oauth2.example.test/token"}"#,
    )
    .unwrap();
    let e = err("gs://bkt", &vars);
    assert!(
        e.contains("GOOGLE_APPLICATION_CREDENTIALS") && e.contains("not a PEM"),
        "{e}"
    );
    assert!(!e.contains("not-a-pem-secret"), "{e}");
    std::fs::write(
        &key,
        r#"{"type":"authorized_user","client_id":"cid.apps","client_secret":"csecret","refresh_token":"rt-secret"}"#,
    )
    .unwrap();
    let b = backend("gs://bkt", &vars).unwrap();
    let p = b.credentials.as_ref().unwrap();
    assert!(
        p.describe()
            .starts_with("authorized user, client `cid.apps` (GOOGLE_APPLICATION_CREDENTIALS"),
        "{}",
        p.describe()
    );
    assert_eq!(p.endpoints(), ["https://oauth2.googleapis.com/token"]);
    assert_eq!(b.grants.http, ["https://storage.googleapis.com"]);
    assert!(b.grants.dirs.is_empty());
    std::fs::write(&key, r#"{"type":"external_account"}"#).unwrap();
    let e = err("gs://bkt", &vars);
    assert!(e.contains("external_account") && e.contains("not resolved"), "{e}");
    // Nothing else: the metadata server (GCE_METADATA_HOST moves it).
    let b = backend("gs://bkt", &env(&[("HOME", dir.path().to_str().unwrap())])).unwrap();
    assert_eq!(
        b.credentials.as_ref().unwrap().describe(),
        "the metadata server at http://metadata.google.internal"
    );
    let b = backend("gs://bkt", &env(&[("GCE_METADATA_HOST", "127.0.0.1:8999")])).unwrap();
    assert_eq!(b.credentials.as_ref().unwrap().endpoints(), ["http://127.0.0.1:8999"]);
}

#[test]
fn azure_connection_strings_and_accounts() {
    let cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5PT0=;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
    let b = backend("az://models/p", &env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)])).unwrap();
    assert_eq!(value(&b, "container").unwrap(), "models");
    assert_eq!(value(&b, "account").unwrap(), "devstoreaccount1");
    assert_eq!(value(&b, "account_key").unwrap(), "a2V5PT0=");
    assert!(is_secret(&b, "account_key"));
    assert_eq!(
        value(&b, "endpoint").unwrap(),
        "http://127.0.0.1:10000/devstoreaccount1"
    );
    assert_eq!(b.grants.http, ["http://127.0.0.1:10000"]);
    assert_eq!(value(&b, "prefix").unwrap(), "p/");

    let b = backend(
        "az://c",
        &env(&[("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")]),
    )
    .unwrap();
    assert_eq!(value(&b, "account").unwrap(), "devstoreaccount1");

    let cs = "AccountName=acct;SharedAccessSignature=sv=2024&sig=abc;EndpointSuffix=core.windows.net";
    let b = backend(
        "abfss://c@acct.dfs.core.windows.net/x",
        &env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)]),
    )
    .unwrap();
    assert_eq!(value(&b, "sas_token").unwrap(), "sv=2024&sig=abc");
    assert_eq!(b.grants.http, ["https://acct.blob.core.windows.net"]);
    let e = err(
        "abfss://c@other.dfs.core.windows.net/x",
        &env(&[("AZURE_STORAGE_CONNECTION_STRING", cs)]),
    );
    assert!(e.contains("account `other`"), "{e}");
    assert!(!e.contains("sig=abc"), "{e}");

    let b = backend(
        "abfss://c@acct.dfs.core.windows.net/",
        &env(&[("AZURE_STORAGE_KEY", "c2VjcmV0")]),
    )
    .unwrap();
    assert_eq!(value(&b, "account").unwrap(), "acct");
    assert_eq!(source(&b, "account_key"), "AZURE_STORAGE_KEY");
    assert!(err("az://c", &env(&[])).contains("no account"));
}

#[test]
fn azure_entra_id_in_default_azure_credential_order() {
    let describe = |vars: &[(&str, &str)]| {
        let mut all = vec![("AZURE_STORAGE_ACCOUNT", "acct")];
        all.extend_from_slice(vars);
        let b = backend("az://c/p", &env(&all)).unwrap();
        assert!(value(&b, "account_key").is_none() && value(&b, "sas_token").is_none());
        // The adapter is granted the account's endpoint only.
        assert_eq!(b.grants.http, ["https://acct.blob.core.windows.net"]);
        let p = b.credentials.as_ref().expect("exchanged");
        (p.describe(), p.endpoints())
    };
    let sp = [("AZURE_TENANT_ID", "t-1"), ("AZURE_CLIENT_ID", "c-1")];
    let (d, e) = describe(&[
        sp[0],
        sp[1],
        ("AZURE_CLIENT_SECRET", "s3cr3t"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/f"),
    ]);
    assert_eq!(d, "Entra ID client secret of client `c-1` in tenant `t-1`");
    assert_eq!(e, ["https://login.microsoftonline.com/t-1/oauth2/v2.0/token"]);
    let (d, e) = describe(&[
        sp[0],
        sp[1],
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
        ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
    ]);
    assert_eq!(
        d,
        "Entra ID workload identity of client `c-1` in tenant `t-1` (token file /var/run/secrets/azure/tokens/azure-identity-token)"
    );
    assert_eq!(e, ["https://login.microsoftonline.us/t-1/oauth2/v2.0/token"]);
    // Without a tenant, AZURE_CLIENT_ID names a user-assigned identity.
    let (d, e) = describe(&[("AZURE_CLIENT_ID", "c-1")]);
    assert_eq!(
        d,
        "managed identity `c-1` from the instance metadata service at http://169.254.169.254"
    );
    assert_eq!(e, ["http://169.254.169.254"]);
    let (d, _) = describe(&[
        ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
        ("IDENTITY_HEADER", "h"),
    ]);
    assert_eq!(
        d,
        "managed identity from the identity endpoint at http://localhost:42356/msi/token"
    );
    // A key or SAS wins over Entra ID; a connection string without either
    // uses Entra ID at its endpoint.
    let b = backend(
        "az://c",
        &env(&[
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", "c2VjcmV0"),
            sp[0],
            sp[1],
        ]),
    )
    .unwrap();
    assert!(b.credentials.is_none());
    let b = backend(
        "az://c",
        &env(&[(
            "AZURE_STORAGE_CONNECTION_STRING",
            "AccountName=acct;BlobEndpoint=https://blob.internal:8443/acct",
        )]),
    )
    .unwrap();
    assert_eq!(b.grants.http, ["https://blob.internal:8443"]);
    assert!(b.credentials.is_some());
    // abfss names the account and the cloud.
    let b = backend(
        "abfss://c@acct.dfs.core.chinacloudapi.cn/x",
        &env(&[("AZURE_STORAGE_KEY", "c2VjcmV0")]),
    )
    .unwrap();
    assert_eq!(
        value(&b, "endpoint").unwrap(),
        "https://acct.blob.core.chinacloudapi.cn"
    );
    assert!(err("abfss://c@acct.example.com/x", &env(&[])).contains("abfs URLs are"));
    // Refused by name, not passed over; a tenant that could change the path.
    let e = err(
        "az://c",
        &env(&[
            ("AZURE_STORAGE_ACCOUNT", "a"),
            sp[0],
            sp[1],
            ("AZURE_CLIENT_CERTIFICATE_PATH", "/k.pem"),
        ]),
    );
    assert!(
        e.contains("AZURE_CLIENT_CERTIFICATE_PATH") && e.contains("client certificate"),
        "{e}"
    );
    let e = err(
        "az://c",
        &env(&[("AZURE_STORAGE_ACCOUNT", "a"), ("AZURE_TENANT_ID", "../evil"), sp[1]]),
    );
    assert!(e.contains("AZURE_TENANT_ID"), "{e}");
}

#[test]
fn hub_urls_and_tokens() {
    let b = backend("hf://datasets/org/data@v1.0/sub/dir", &env(&[("HF_TOKEN", "hf_abc")])).unwrap();
    assert_eq!(value(&b, "repo_type").unwrap(), "dataset");
    assert_eq!(value(&b, "repo_id").unwrap(), "org/data");
    assert_eq!(value(&b, "revision").unwrap(), "v1.0");
    assert_eq!(value(&b, "prefix").unwrap(), "sub/dir/");
    assert!(is_secret(&b, "token"));
    assert_eq!(b.grants.http, ["https://huggingface.co"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".cache/huggingface")).unwrap();
    std::fs::write(home.path().join(".cache/huggingface/token"), "hf_stored\n").unwrap();
    let b = backend(
        "hf://org/model",
        &env(&[
            ("HOME", home.path().to_str().unwrap()),
            ("HF_ENDPOINT", "http://127.0.0.1:7777"),
        ]),
    )
    .unwrap();
    assert_eq!(value(&b, "repo_type").unwrap(), "model");
    assert_eq!(value(&b, "token").unwrap(), "hf_stored");
    assert_eq!(value(&b, "scratch").unwrap(), "/scratch");
    assert_eq!(b.grants.dirs[0].host, home.path().join(".cache/wharf/hf-scratch"));
    assert!(source(&b, "token").contains("stored token"));
    assert_eq!(b.grants.http, ["http://127.0.0.1:7777"]);
    assert!(err("hf://models/only", &env(&[])).contains("org/repo"));
}

#[test]
fn mlflow_artifacts_take_the_tracking_server() {
    let e = env(&[
        ("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000/"),
        ("MLFLOW_TRACKING_USERNAME", "me"),
        ("MLFLOW_TRACKING_PASSWORD", "pw"),
    ]);
    let b = backend("mlflow-artifacts:/experiments/models", &e).unwrap();
    assert_eq!(value(&b, "endpoint").unwrap(), "http://127.0.0.1:5000");
    assert_eq!(value(&b, "prefix").unwrap(), "experiments/models/");
    assert_eq!(value(&b, "username").unwrap(), "me");
    assert!(is_secret(&b, "password"));
    assert_eq!(b.grants.http, ["http://127.0.0.1:5000"]);
    assert!(err("mlflow-artifacts:/x", &env(&[])).contains("MLFLOW_TRACKING_URI"));
}

#[test]
fn redis_urls() {
    let b = backend("redis://user:p%40ss@127.0.0.1:6390/3", &env(&[])).unwrap();
    assert_eq!(value(&b, "address").unwrap(), "127.0.0.1:6390");
    assert_eq!(value(&b, "username").unwrap(), "user");
    assert_eq!(value(&b, "password").unwrap(), "p@ss");
    assert!(is_secret(&b, "password"));
    assert_eq!(value(&b, "db").unwrap(), "3");
    assert_eq!(b.grants.tcp, ["127.0.0.1:6390"]);
    let b = backend("redis://", &env(&[("REDIS_URL", "redis://:pw@127.0.0.1")])).unwrap();
    assert_eq!(value(&b, "address").unwrap(), "127.0.0.1:6379");
    assert_eq!(source(&b, "password"), "REDIS_URL");
    assert!(err("redis://127.0.0.1/x", &env(&[])).contains("not a number"));
}

#[test]
fn rediss_urls_grant_a_tls_peer_not_a_tcp_one() {
    let b = backend("rediss://:secretpw@cache.example:6390/0", &env(&[])).unwrap();
    assert!(b.grants.tcp.is_empty());
    let tls = &b.grants.tls;
    assert_eq!(tls.len(), 1);
    assert_eq!(
        (tls[0].address.as_str(), tls[0].verify),
        ("cache.example:6390", Verify::Full)
    );
    assert_eq!((tls[0].ca_file.clone(), tls[0].negotiate), (None, Negotiate::Direct));
    assert_eq!(value(&b, "address").unwrap(), "${tls:cache.example:6390}");
    assert!(source(&b, "tls").contains("host name checked against the system's roots"));
    // redis-py's parameters.
    for (query, verify) in [
        ("ssl_check_hostname=false", Verify::Chain),
        ("ssl_cert_reqs=required&ssl_check_hostname=true", Verify::Full),
        ("ssl_cert_reqs=none", Verify::Nothing),
    ] {
        let b = backend(&format!("rediss://:pw@h:1?{query}"), &env(&[])).unwrap();
        assert_eq!(b.grants.tls[0].verify, verify, "{query}");
    }
    let b = backend("rediss://:pw@h:1?ssl_ca_certs=/etc/ca.pem", &env(&[])).unwrap();
    assert_eq!(
        b.grants.tls[0].ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    // Anything else is refused, never a secret in the message; plain
    // redis:// takes no TLS parameter.
    let e = err("rediss://:secretpw@h:1?ssl_cert_reqs=maybe", &env(&[]));
    assert!(e.contains("ssl_cert_reqs") && !e.contains("secretpw"), "{e}");
    let e = err("rediss://:secretpw@h:1?ssl_keyfile=/k", &env(&[]));
    assert!(e.contains("ssl_keyfile") && !e.contains("secretpw"), "{e}");
    assert!(err("redis://:pw@h:1?ssl_ca_certs=/c", &env(&[])).contains("ssl_ca_certs"));
}

#[test]
fn postgres_sslmodes_as_libpq_reads_them() {
    let tls = |url: &str, vars: &[(&str, &str)]| {
        let b = backend(url, &env(vars)).unwrap();
        assert!(b.grants.tcp.is_empty(), "{url}");
        assert_eq!(
            value(&b, "address").unwrap(),
            format!("${{tls:{}}}", b.grants.tls[0].address)
        );
        assert_eq!(b.grants.tls[0].negotiate, Negotiate::Postgres);
        b.grants.tls[0].clone()
    };
    let t = tls("postgresql://u@db.example:5433/d?sslmode=verify-full", &[]);
    assert_eq!(
        (t.address.as_str(), t.verify, t.ca_file),
        ("db.example:5433", Verify::Full, None)
    );
    assert_eq!(tls("postgresql://u@h/d?sslmode=verify-ca", &[]).verify, Verify::Chain);
    // require: no check without a root file, the chain with one.
    assert_eq!(tls("postgresql://u@h/d?sslmode=require", &[]).verify, Verify::Nothing);
    let t = tls("postgresql://u@h/d?sslmode=require&sslrootcert=/r.pem", &[]);
    assert_eq!((t.verify, t.ca_file), (Verify::Chain, Some("/r.pem".into())));
    // The variables, and `system` for the system's roots.
    let t = tls(
        "postgresql://u@h/d",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", "/ca.pem")],
    );
    assert_eq!((t.verify, t.ca_file), (Verify::Full, Some("/ca.pem".into())));
    let t = tls("postgresql://u@h/d?sslmode=verify-full&sslrootcert=system", &[]);
    assert_eq!(t.ca_file, None);
    // The URL's sslmode wins over PGSSLMODE.
    let b = backend(
        "postgresql://u@h/d?sslmode=disable",
        &env(&[("PGSSLMODE", "verify-full")]),
    )
    .unwrap();
    assert!(b.grants.tls.is_empty());
}

#[test]
fn postgres_urls_variables_and_pgpass() {
    let b = backend("postgresql://ml:pw@127.0.0.1:5433/models", &env(&[])).unwrap();
    assert_eq!(value(&b, "host").unwrap(), "127.0.0.1");
    assert_eq!(value(&b, "port").unwrap(), "5433");
    assert_eq!(value(&b, "user").unwrap(), "ml");
    assert_eq!(value(&b, "dbname").unwrap(), "models");
    assert!(is_secret(&b, "password"));
    assert_eq!(b.grants.tcp, ["127.0.0.1:5433"]);

    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        "# comment\nother:5433:*:ml:nope\n127.0.0.1:5433:models:ml:pa\\:ss\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = env(&[
        ("HOME", home.path().to_str().unwrap()),
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "5433"),
        ("PGUSER", "ml"),
        ("PGDATABASE", "models"),
    ]);
    let b = backend("postgresql://", &e).unwrap();
    assert_eq!(source(&b, "host"), "PGHOST");
    assert_eq!(value(&b, "password").unwrap(), "pa:ss");
    assert!(source(&b, "password").contains(".pgpass"));
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(err("postgresql://", &e).contains("chmod 0600"));

    let b = backend("postgres://", &env(&[("DATABASE_URL", "postgresql://a:b@127.0.0.1/d")])).unwrap();
    assert_eq!(source(&b, "user"), "DATABASE_URL");
    assert_eq!(value(&b, "port").unwrap(), "5432");
    let e = err("postgresql://u:topsecret@h/d?sslmode=verify-always", &env(&[]));
    assert!(e.contains("sslmode `verify-always`") && !e.contains("topsecret"), "{e}");
    // libpq's prefer (its default) connects in plain text here.
    let b = backend("postgresql://u@h/d?sslmode=prefer", &env(&[])).unwrap();
    assert!(b.grants.tls.is_empty() && b.grants.tcp == ["h:5432"]);
    assert!(err("postgresql://u@h/d?foo=1", &env(&[])).contains("unknown parameter `foo`"));
    assert!(err("postgresql://h/d", &env(&[])).contains("names no user"));
}

#[test]
fn file_urls() {
    let b = backend("file:///srv/models", &env(&[])).unwrap();
    assert_eq!(b.grants.dirs[0].host, Path::new("/srv/models"));
    assert_eq!(value(&b, "root").unwrap(), "/data");
    assert!(err("file://server/share", &env(&[])).contains("names a host"));
}

#[test]
fn config_files_use_urls_and_override_them() {
    let e = env(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")]);
    let text = r#"
default_backend = "redis://127.0.0.1:6390"
[backends.models]
url = "s3://bucket/models"
[backends.models.config]
prefix = "other/"
[backends.models.grants]
http = ["http://127.0.0.1:9000"]
"#;
    let cfg: Config = toml::from_str(text).unwrap();
    let cfg = cfg.expand_urls(&e).unwrap();
    let m = &cfg.backends["models"];
    assert_eq!(m.plugin.as_deref(), Some("aws_s3"));
    assert_eq!(value(m, "prefix").unwrap(), "other/");
    assert_eq!(source(m, "prefix"), "wharf.toml");
    assert_eq!(value(m, "bucket").unwrap(), "bucket");
    assert_eq!(source(m, "access_key_id"), "AWS_ACCESS_KEY_ID");
    assert!(m.grants.http.contains(&"http://127.0.0.1:9000".to_string()));
    assert!(
        m.grants
            .http
            .contains(&"https://bucket.s3.us-east-1.amazonaws.com".to_string())
    );
    assert_eq!(cfg.default_backend(), "redis");
    assert_eq!(cfg.backends["redis"].grants.tcp, ["127.0.0.1:6390"]);
    // The secret is resolved for the adapter and redacted from Debug.
    let spec = m.resolve("models", Path::new("/")).unwrap();
    assert!(spec.config.iter().any(|(k, v)| k == "secret_access_key" && v == "SK"));
    assert!(!format!("{m:?}").contains("SK\""));

    let bad: Config = toml::from_str("[backends.x]\nurl = \"s3://b\"\nplugin = \"redis\"\n").unwrap();
    let e = bad.expand_urls(&env(&[])).unwrap_err().to_string();
    assert!(e.contains("plugin `redis`") && e.contains("backend `x`"), "{e}");
}

#[test]
fn url_backends_get_names() {
    let mut cfg = Config::local_default(Path::new("/tmp/wharf-url-test"));
    let e = env(&[]);
    assert_eq!(cfg.add_url_backend("redis://127.0.0.1:1", &e).unwrap(), "redis");
    assert_eq!(cfg.add_url_backend("redis://127.0.0.1:1", &e).unwrap(), "redis");
    assert_eq!(cfg.add_url_backend("redis://127.0.0.1:2", &e).unwrap(), "url-redis");
    assert_eq!(cfg.add_url_backend("redis://127.0.0.1:3", &e).unwrap(), "url-redis-2");
    assert_eq!(
        cfg.add_url_backend("file:///tmp/x", &e).unwrap(),
        "url-local_filesystem"
    );
}
