//! Sandboxes: faithful local emulations of the SaaS APIs Roster manages.
//!
//! They are Roster's offline default target and its test bed: every connector is tested
//! against them over real HTTP. State lives in a SQLite file and survives restarts; flags
//! scale the vendor's limits and inject faults so clients can prove their retries.

pub mod adobe;
pub mod clock;
pub mod magento;
pub mod marketo;
pub mod oidc;
mod sqlite;

/// Binds a sandbox's listener (port 0 picks a free one) and says the URL it serves at.
pub(crate) async fn listen(
    addr: std::net::SocketAddr,
) -> Result<(tokio::net::TcpListener, String), marketo::SandboxError> {
    let bind_err = |source| marketo::SandboxError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    Ok((listener, format!("http://{local}")))
}
