//! AWS Signature Version 4 for the host's own STS calls (`AssumeRole` with
//! a source profile's credentials): a form-encoded POST, signed in headers.
//! The S3 adapter signs its own requests inside the sandbox; this is the
//! few lines the host needs, checked against AWS's published example.

use ring::hmac;
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// Access key, secret and optional session token.
pub(crate) struct Keys<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub token: Option<&'a str>,
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// `20150830T123600Z`.
pub(crate) fn amz_date(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace(['-', ':'], "")
}

/// The headers to send with a POST of `body` (form-encoded) to `host` at
/// path `/`, signed for `service` in `region` at `at`: `x-amz-date`,
/// `x-amz-security-token` when there is one, and `authorization`.
pub(crate) fn sign_post(
    keys: &Keys<'_>,
    region: &str,
    service: &str,
    host: &str,
    body: &[u8],
    at: SystemTime,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(at);
    let date = &amz_date[..8];
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let mut headers: Vec<(&'static str, String)> = vec![
        ("content-type", content_type.to_string()),
        ("host", host.to_string()),
        ("x-amz-date", amz_date.clone()),
    ];
    if let Some(t) = keys.token {
        headers.push(("x-amz-security-token", t.to_string()));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let payload = hex::encode(Sha256::digest(body));
    let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac_sha256(format!("AWS4{}", keys.secret).as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, to_sign.as_bytes()));
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            keys.id
        ),
    ));
    headers.retain(|(k, _)| *k != "host");
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys, date and request of AWS's published SigV4 example (IAM
    /// `ListUsers`), sent as a form POST.
    #[test]
    fn matches_the_published_example() {
        let keys = Keys {
            id: "AKIDEXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token: None,
        };
        let at = humantime::parse_rfc3339("2015-08-30T12:36:00Z").unwrap();
        let headers = sign_post(
            &keys,
            "us-east-1",
            "iam",
            "iam.amazonaws.com",
            b"Action=ListUsers&Version=2010-05-08",
            at,
        );
        let auth = &headers.iter().find(|(k, _)| *k == "authorization").unwrap().1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="),
            "{auth}"
        );
        // What botocore's `SigV4Auth` computes for the same request (its
        // canonical_request / string_to_sign / signature, timestamp fixed).
        assert!(
            auth.ends_with("Signature=5d76d0de3e0ffe5a7a23cfce21b99d6f4e5060aad86bd9dc7c617f224e5b492a"),
            "{auth}"
        );
    }
}
