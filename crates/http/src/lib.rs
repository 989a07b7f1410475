//! Serves an axum router over HTTP/1.1 the way `axum::serve` does, plus what it leaves
//! out: a **header-read timeout**. Without one, a client that opens connections and sends
//! a request's headers a byte at a time (or never finishes them) holds each connection,
//! and its task, for as long as it likes; enough of them and the service stops accepting
//! anyone. hyper has the timeout, but only with a timer, which `axum::serve` does not set.
//!
//! Each request also carries the peer's address as axum's `ConnectInfo<SocketAddr>`, as
//! `into_make_service_with_connect_info` gives it.

pub mod client;
pub use client::{client, client_builder, install_crypto};

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// How long a client has to send a request's headers, from its first byte (and, on a
/// kept-alive connection, for each request after).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// How long connections in flight get to finish once `shutdown` resolves.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then lets the connections in
/// flight finish their requests (for a few seconds at most).
pub async fn serve(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    serve_with(listener, app, shutdown, HEADER_READ_TIMEOUT, None).await
}

/// A certificate and key to serve HTTPS with, read from PEM files and read again on
/// [`Tls::reload`] (a renewed certificate replaces the old one for new connections).
#[derive(Clone)]
pub struct Tls {
    cert_file: std::path::PathBuf,
    key_file: std::path::PathBuf,
    acceptor: std::sync::Arc<std::sync::RwLock<tokio_rustls::TlsAcceptor>>,
}

impl Tls {
    pub fn load(cert_file: &std::path::Path, key_file: &std::path::Path) -> Result<Tls, String> {
        let acceptor = acceptor(cert_file, key_file)?;
        Ok(Tls {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            acceptor: std::sync::Arc::new(std::sync::RwLock::new(acceptor)),
        })
    }

    /// Reads the files again; on a problem the old certificate stays and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = acceptor(&self.cert_file, &self.key_file)?;
        *self.acceptor.write().expect("tls lock") = fresh;
        Ok(())
    }

    fn current(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor.read().expect("tls lock").clone()
    }
}

fn acceptor(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("tls_cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert_file {}: no certificate in it (PEM, BEGIN CERTIFICATE)",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls_key_file {}: {e}", key_file.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        format!(
            "tls_cert_file {} and tls_key_file {} do not make a server certificate: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// [`serve`] with another header-read timeout (tests use a short one), over TLS when `tls`
/// is given (the handshake gets the same time the headers do).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    header_read_timeout: Duration,
    tls: Option<Tls>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: pass, rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(Peer {
            app: app.clone(),
            peer,
        });
        match &tls {
            None => {
                let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Some(tls) => {
                let (acceptor, watcher, http) = (tls.current(), graceful.watcher(), http.clone());
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(header_read_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake took too long");
                                return;
                            }
                        };
                    let conn = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open {DRAIN:?} after shutdown began; closing them");
    }
}

/// The router, with the connection's peer address put on each request.
#[derive(Clone)]
struct Peer {
    app: Router,
    peer: SocketAddr,
}

impl<B> tower_service::Service<hyper::Request<B>> for Peer
where
    B: hyper::body::Body<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower_service::Service<axum::extract::Request>>::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: hyper::Request<B>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(timeout: Duration) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let app = Router::new().route(
            "/who",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with(
            listener,
            app,
            async {
                let _ = stopped.await;
            },
            timeout,
            None,
        ));
        (addr, stop)
    }

    /// A request whose headers never end is closed after the timeout, while a whole
    /// request on another connection is answered (with the peer's address).
    #[tokio::test]
    async fn half_sent_headers_are_cut_off_and_whole_requests_answered() {
        let (addr, _stop) = start(Duration::from_millis(300)).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();

        let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
        whole
            .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        whole.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "{answer}");

        // The slow one is closed by the server (read returns, with or without a 408),
        // well before this bound.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest))
            .await
            .expect("the half-sent request was never cut off");
        assert!(closed.is_ok());
    }

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// A TLS client trusting only `ca`: the body of GET /who, or why it failed.
    async fn get_over_tls(addr: SocketAddr, ca: &str) -> Result<String, String> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(fixture(ca)).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer)
    }

    /// HTTPS with a certificate from PEM files; plain HTTP on the same port gets no answer;
    /// a reload puts a renewed certificate in place for new connections, and a broken file
    /// keeps the one in use.
    #[tokio::test]
    async fn tls_serves_and_a_reload_takes_the_renewed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::copy(fixture("leaf1.pem"), &cert).unwrap();
        std::fs::copy(fixture("leaf1.key"), &key).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        let app = Router::new().route(
            "/who",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_with(
            listener,
            app,
            std::future::pending(),
            HEADER_READ_TIMEOUT,
            Some(tls.clone()),
        ));
        let answer = get_over_tls(addr, "ca1.pem").await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("127.0.0.1"),
            "{answer}"
        );
        assert!(get_over_tls(addr, "ca2.pem").await.is_err());
        // Plain HTTP to the TLS port: no HTTP answer.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = plain.read_to_end(&mut got).await;
        assert!(!String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        // Renewed: the second CA's certificate from now on.
        std::fs::copy(fixture("leaf2.pem"), &cert).unwrap();
        std::fs::copy(fixture("leaf2.key"), &key).unwrap();
        tls.reload().unwrap();
        assert!(
            get_over_tls(addr, "ca2.pem")
                .await
                .unwrap()
                .starts_with("HTTP/1.1 200")
        );
        assert!(get_over_tls(addr, "ca1.pem").await.is_err());
        // A half-written renewal: refused with the file named, the certificate in use kept.
        std::fs::write(&key, "not a key").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(err.contains("tls_key_file"), "{err}");
        assert!(get_over_tls(addr, "ca2.pem").await.is_ok());
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let (addr, stop) = start(HEADER_READ_TIMEOUT).await;
        stop.send(()).unwrap();
        // Once the listener is dropped, connecting is refused; awaited, not slept on.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still accepting");
            tokio::task::yield_now().await;
        }
    }
}
