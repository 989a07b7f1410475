//! OAuth 1.0a request signing (RFC 5849) with HMAC-SHA256, as Magento verifies the calls of
//! an integration: consumer key and secret, access token and secret, one signature a call.
//!
//! Current Magento accepts HMAC-SHA256 only (`Oauth::getSupportedSignatureMethods`), which
//! the maintained Rust OAuth 1.0 clients do not offer (oauth1-request signs HMAC-SHA1), so
//! the signing is here: the base string is the method, the URL without its query, and every
//! query and protocol parameter, each percent-encoded, sorted, joined (RFC 5849 3.4.1). The
//! JSON body is not signed (only form bodies are). The sandbox verifies signatures with its
//! own implementation, and a test checks this one against the RFC's worked example.

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use roster_domain::Secret;

/// RFC 3986 unreserved characters stay; everything else is encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, ENCODE).to_string()
}

/// The four values Magento shows for an activated integration.
#[derive(Clone)]
pub struct OAuth1Credentials {
    pub consumer_key: String,
    pub consumer_secret: Secret,
    pub access_token: Secret,
    pub access_token_secret: Secret,
}

impl std::fmt::Debug for OAuth1Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth1Credentials")
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &self.consumer_secret)
            .field("access_token", &self.access_token)
            .field("access_token_secret", &self.access_token_secret)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HmacSha1,
    HmacSha256,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::HmacSha1 => "HMAC-SHA1",
            Method::HmacSha256 => "HMAC-SHA256",
        }
    }
}

/// The signature of one request (base64 of the HMAC of its base string).
#[allow(clippy::too_many_arguments)]
pub fn signature(
    method: Method,
    http_method: &str,
    url: &str,
    query: &[(String, String)],
    protocol: &[(&str, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let base_url = url.split(['?', '#']).next().unwrap_or(url);
    let mut params: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (enc(k), enc(v)))
        .chain(protocol.iter().map(|(k, v)| (enc(k), enc(v))))
        .collect();
    params.sort();
    let joined = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "{}&{}&{}",
        http_method.to_ascii_uppercase(),
        enc(&normal_url(base_url)),
        enc(&joined)
    );
    let key = format!("{}&{}", enc(consumer_secret), enc(token_secret));
    // ring's HMAC, as everything else Roster signs (SHA-1 is what OAuth 1.0a's HMAC-SHA1
    // names; ring keeps it for such legacy uses only).
    let algorithm = match method {
        Method::HmacSha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Method::HmacSha256 => ring::hmac::HMAC_SHA256,
    };
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(algorithm, key.as_bytes()),
        base.as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// Scheme and host in lower case, the default port dropped (RFC 5849 3.4.1.2).
fn normal_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut authority = authority.to_ascii_lowercase();
    for (s, port) in [("http", ":80"), ("https", ":443")] {
        if scheme == s && authority.ends_with(port) {
            authority.truncate(authority.len() - port.len());
        }
    }
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{authority}{path}")
}

/// The `Authorization: OAuth ...` header for one request.
pub fn authorization(
    creds: &OAuth1Credentials,
    http_method: &str,
    url: &str,
    query: &[(String, String)],
    nonce: &str,
    timestamp: u64,
) -> String {
    let method = Method::HmacSha256;
    let mut protocol: Vec<(&str, String)> = vec![
        ("oauth_consumer_key", creds.consumer_key.clone()),
        ("oauth_nonce", nonce.to_string()),
        ("oauth_signature_method", method.name().to_string()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_token", creds.access_token.expose().to_string()),
        ("oauth_version", "1.0".to_string()),
    ];
    let sig = signature(
        method,
        http_method,
        url,
        query,
        &protocol,
        creds.consumer_secret.expose(),
        creds.access_token_secret.expose(),
    );
    protocol.push(("oauth_signature", sig));
    let fields: Vec<String> = protocol
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", enc(v)))
        .collect();
    format!("OAuth {}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worked_example_of_rfc_5849_signs_the_same() {
        // RFC 5849 section 3.4.1: a POST with query, protocol and form parameters.
        let query = vec![
            ("b5".to_string(), "=%3D".to_string()),
            ("a3".to_string(), "a".to_string()),
            ("c@".to_string(), String::new()),
            ("a2".to_string(), "r b".to_string()),
            // The form body's parameters are signed too; here they stand with the query.
            ("c2".to_string(), String::new()),
            ("a3".to_string(), "2 q".to_string()),
        ];
        let protocol = vec![
            ("oauth_consumer_key", "9djdj82h48djs9d2".to_string()),
            ("oauth_token", "kkk9d7dh3k39sjv7".to_string()),
            ("oauth_signature_method", "HMAC-SHA1".to_string()),
            ("oauth_timestamp", "137131201".to_string()),
            ("oauth_nonce", "7d8f3e4a".to_string()),
        ];
        let sig = signature(
            Method::HmacSha1,
            "POST",
            "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
            &query,
            &protocol,
            "j49sk3j29djd",
            "dh893hdasih9",
        );
        // The HMAC-SHA1 of the base string spelled out in section 3.4.1.1, with the key
        // "j49sk3j29djd&dh893hdasih9" of 3.4.2; other OAuth libraries test the same value.
        assert_eq!(sig, "r6/TJjbCOr97/+UU0NsvSne7s5g=");
    }

    #[test]
    fn urls_are_normalised_before_signing() {
        assert_eq!(
            normal_url("HTTP://Shop.Example.com:80/rest/V1/x"),
            "http://shop.example.com/rest/V1/x"
        );
        assert_eq!(
            normal_url("https://shop.example.com:8443/rest"),
            "https://shop.example.com:8443/rest"
        );
    }

    #[test]
    fn the_header_carries_every_protocol_parameter_and_no_secret() {
        let creds = OAuth1Credentials {
            consumer_key: "ck".into(),
            consumer_secret: Secret::new("consumer-secret"),
            access_token: Secret::new("at"),
            access_token_secret: Secret::new("token-secret"),
        };
        let h = authorization(
            &creds,
            "GET",
            "http://127.0.0.1/rest/all/V1/x",
            &[],
            "n1",
            7,
        );
        for part in [
            "oauth_consumer_key=\"ck\"",
            "oauth_token=\"at\"",
            "oauth_signature_method=\"HMAC-SHA256\"",
            "oauth_nonce=\"n1\"",
            "oauth_timestamp=\"7\"",
            "oauth_signature=",
        ] {
            assert!(h.contains(part), "{h}");
        }
        assert!(!h.contains("consumer-secret") && !h.contains("token-secret"));
        assert!(!format!("{creds:?}").contains("secret\""));
    }
}
