//! The HTTP client every part of Roster uses to talk to the apps, identity providers and
//! webhook receivers: reqwest on rustls with **ring**, the same crypto as `roster serve`'s
//! own TLS, the database's TLS and the signatures. reqwest's default rustls provider is
//! aws-lc-rs, a second crypto library built from C; Roster compiles one stack, so reqwest
//! comes without a provider and ring is installed here, once per process, before the first
//! client is built. Certificates are checked against the operating system's roots (the
//! platform verifier), as the database's are (`rustls-native-certs`).

use std::sync::Once;

/// Makes ring the process's rustls provider (if nothing has made one the provider yet).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means a provider is installed already; ring is the only one compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client builder, with the crypto provider in place.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto();
    reqwest::Client::builder()
}

/// A client with reqwest's defaults.
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .expect("an HTTP client with default settings builds")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_builds_with_ring_as_the_provider() {
        let _client = super::client();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
