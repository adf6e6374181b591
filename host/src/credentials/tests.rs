use super::*;
use std::sync::atomic::AtomicU32;

/// A source that counts its exchanges and answers a given lifetime.
struct Counting {
    lifetime: Option<Duration>,
    calls: Arc<AtomicU32>,
    fail: bool,
}

#[async_trait::async_trait]
impl Source for Counting {
    fn describe(&self) -> String {
        "the counting source".into()
    }
    fn endpoints(&self) -> Vec<String> {
        Vec::new()
    }
    async fn fetch(&self, _http: &HttpClient) -> Result<Credentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail {
            return Err(Error::new(ErrorKind::Denied, "refused: AccessDenied"));
        }
        // Concurrent callers must wait for this one exchange.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(Credentials {
            values: vec![("token".into(), format!("token-generation-{n}"))],
            secret_keys: vec!["token"],
            expires: self.lifetime.map(|l| SystemTime::now() + l),
        })
    }
}

fn provider(lifetime: Option<Duration>, fail: bool) -> (Arc<CredentialProvider>, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let p = CredentialProvider::shared(Arc::new(Counting {
        lifetime,
        calls: calls.clone(),
        fail,
    }));
    (p, calls)
}

#[tokio::test]
async fn one_exchange_per_lifetime_shared_by_concurrent_callers() {
    let (p, calls) = provider(Some(Duration::from_secs(2)), false);
    let all = futures::future::join_all((0..16).map(|_| p.current())).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(all.iter().all(|r| r.as_ref().unwrap().0 == 1));
    for _ in 0..10 {
        assert_eq!(p.current().await.unwrap().0, 1);
    }
    assert_eq!(p.exchanges(), 1);
    // Refreshed a quarter of the lifetime (0.5 s) before it ends, not after.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (generation, creds) = p.current().await.unwrap();
    assert_eq!((generation, calls.load(Ordering::SeqCst)), (2, 2));
    assert_eq!(creds.values[0].1, "token-generation-2");
    assert!(creds.expires.unwrap() > SystemTime::now() + Duration::from_secs(1));
}

#[tokio::test]
async fn credentials_that_do_not_expire_are_fetched_once() {
    let (p, calls) = provider(None, false);
    for _ in 0..5 {
        p.current().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(p.generation(), 1);
}

#[tokio::test]
async fn a_failed_exchange_names_the_source_and_is_tried_again() {
    let (p, calls) = provider(None, true);
    let e = p.current().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(
        e.message(),
        "credentials from the counting source: refused: AccessDenied"
    );
    p.current().await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(p.generation(), 0);
}

#[test]
fn times_with_zones_and_fractions() {
    let z = parse_time("2030-01-01T00:00:00Z").unwrap();
    assert_eq!(parse_time("2030-01-01T00:00:00.000Z").unwrap(), z);
    assert_eq!(parse_time("2030-01-01T02:00:00+02:00").unwrap(), z);
    assert_eq!(parse_time("2029-12-31T19:00:00-05:00").unwrap(), z);
    assert!(parse_time("tomorrow").is_err());
    assert!(parse_time("2030-01-01").is_err());
}
