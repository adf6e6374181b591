//! AWS Signature Version 4 for S3, header-based, sans I/O.
//!
//! Written here rather than taken from `aws-sigv4` (which pulls the AWS SDK's
//! runtime crates) or `rusty-s3` (which signs query strings with
//! `UNSIGNED-PAYLOAD` only): this is the ~100 lines S3 needs, with the
//! payload hash, session token and conditional headers signed.

use wharf_guest_http::encode::{hex, hmac_sha256, sha256, uri_encode};

/// The payload hash S3 accepts in place of a SHA-256 when the body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Long-term or temporary credentials.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (not secret; it appears in messages).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

/// What a signature covers.
pub struct Signable<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The `Host` header value.
    pub host: &'a str,
    /// The URI path, already percent-encoded (S3 does not encode it twice).
    pub encoded_path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, String)],
    /// Headers to send and sign (lower-case names), besides `host` and the
    /// `x-amz-*` headers this adds.
    pub headers: &'a mut Vec<(String, String)>,
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// The canonical (sorted, encoded) query string.
pub fn canonical_query(query: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Adds `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` and
/// `authorization` to `req.headers`, signed for `region` and service `s3` at
/// `now` (seconds since the epoch).
pub fn sign(creds: &Credentials, region: &str, now: i64, req: Signable<'_>) {
    let amz_date = wharf_guest_http::time::amz_date(now);
    let date = &amz_date[..8];
    req.headers.push(("x-amz-date".into(), amz_date.clone()));
    req.headers
        .push(("x-amz-content-sha256".into(), req.payload_hash.to_string()));
    if let Some(token) = &creds.session_token {
        req.headers.push(("x-amz-security-token".into(), token.clone()));
    }
    let mut signed: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    signed.push(("host".into(), req.host.to_string()));
    signed.sort();
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = signed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        req.method,
        req.encoded_path,
        canonical_query(req.query),
        req.payload_hash
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&sha256(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(format!("AWS4{}", creds.secret_access_key).as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    req.headers.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        ),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_creds() -> Credentials {
        Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn authorization(headers: &[(String, String)]) -> &str {
        &headers.iter().find(|(k, _)| k == "authorization").unwrap().1
    }

    // The worked examples of "Signature Calculations for the Authorization
    // Header" in the Amazon S3 API reference.
    const MAY_24_2013: i64 = 1_369_353_600;

    #[test]
    fn get_object_example() {
        let mut headers = vec![("range".to_string(), "bytes=0-9".to_string())];
        sign(
            &example_creds(),
            "us-east-1",
            MAY_24_2013,
            Signable {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                encoded_path: "/test.txt",
                query: &[],
                headers: &mut headers,
                payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            },
        );
        assert_eq!(
            authorization(&headers),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn put_object_example() {
        let body = b"Welcome to Amazon S3.";
        let hash = hex(&sha256(body));
        let mut headers = vec![
            ("date".to_string(), "Fri, 24 May 2013 00:00:00 GMT".to_string()),
            ("x-amz-storage-class".to_string(), "REDUCED_REDUNDANCY".to_string()),
        ];
        sign(
            &example_creds(),
            "us-east-1",
            MAY_24_2013,
            Signable {
                method: "PUT",
                host: "examplebucket.s3.amazonaws.com",
                encoded_path: &uri_encode("/test$file.text", true),
                query: &[],
                headers: &mut headers,
                payload_hash: &hash,
            },
        );
        assert!(authorization(&headers).ends_with(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ));
    }

    #[test]
    fn list_objects_example() {
        let mut headers = Vec::new();
        sign(
            &example_creds(),
            "us-east-1",
            MAY_24_2013,
            Signable {
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                encoded_path: "/",
                query: &[("max-keys", "2".into()), ("prefix", "J".into())],
                headers: &mut headers,
                payload_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            },
        );
        assert!(
            authorization(&headers)
                .ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
        );
    }
}
