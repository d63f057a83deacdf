//! TLS (rustls, with the ring provider) on the gRPC and metrics ports, and mutual TLS when a
//! client CA is given. Certificates are read once at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls;

/// How long a client of the metrics port may take over its TLS handshake.
const METRICS_HANDSHAKE: Duration = Duration::from_secs(10);

/// `[tls]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// The server's certificate chain (PEM), leaf first; empty: plaintext.
    pub cert_file: String,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// A CA (PEM); when set, clients must present a certificate it signed (mutual TLS), on
    /// the gRPC and the metrics port alike.
    pub client_ca_file: String,
}

impl TlsSection {
    /// Whether the ports speak TLS.
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }

    /// Checks the keys belong together (the files are read at start).
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            bail!("tls.cert_file and tls.key_file go together: set both or neither");
        }
        if !self.client_ca_file.is_empty() && !self.enabled() {
            bail!("tls.client_ca_file (mutual TLS) needs tls.cert_file and tls.key_file");
        }
        Ok(())
    }

    fn read(what: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        std::fs::read(path).with_context(|| format!("reading {what} {path}"))
    }

    /// tonic's TLS settings for the gRPC port, when TLS is on.
    pub fn grpc(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        if !self.enabled() {
            return Ok(None);
        }
        // Parse here too, so a bad file is named at start rather than by the first client.
        self.rustls()?;
        let identity = tonic::transport::Identity::from_pem(
            Self::read("tls.cert_file", &self.cert_file)?,
            Self::read("tls.key_file", &self.key_file)?,
        );
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if !self.client_ca_file.is_empty() {
            config = config.client_ca_root(tonic::transport::Certificate::from_pem(Self::read(
                "tls.client_ca_file",
                &self.client_ca_file,
            )?));
        }
        Ok(Some(config))
    }

    /// The rustls server settings (the metrics port uses them directly).
    pub fn rustls(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(&Self::read("tls.cert_file", &self.cert_file)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("tls.cert_file {} is not PEM certificates", self.cert_file))?;
        if certs.is_empty() {
            bail!("tls.cert_file {} holds no certificate", self.cert_file);
        }
        let key = PrivateKeyDer::from_pem_slice(&Self::read("tls.key_file", &self.key_file)?)
            .with_context(|| format!("tls.key_file {} holds no PEM private key", self.key_file))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if self.client_ca_file.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let pem = Self::read("tls.client_ca_file", &self.client_ca_file)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.add(cert.with_context(|| {
                    format!(
                        "tls.client_ca_file {} is not PEM certificates",
                        self.client_ca_file
                    )
                })?)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .context("tls.client_ca_file")?;
            builder.with_client_cert_verifier(verifier)
        };
        let config = builder
            .with_single_cert(certs, key)
            .context("tls.cert_file and tls.key_file do not make a server identity")?;
        Ok(Arc::new(config))
    }
}

/// A listener for axum that hands out connections once their TLS handshake is done. The
/// handshakes run in their own tasks, each bounded in time, so a client that stalls one
/// holds up nobody else.
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
}

impl TlsListener {
    /// Accepts on `listener` and shakes hands with `config`.
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> anyhow::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, ready) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(METRICS_HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "metrics TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "metrics TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accepting task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Serves `app` on `addr` until the process ends (an HTTP port beside gRPC: metrics, the
/// dashboard), over TLS when `tls` is given; returns the bound address. `name` says which
/// port in the log when it stops.
pub async fn serve_http(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    name: &'static str,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    match tls {
        Some(config) => {
            let listener = TlsListener::new(listener, config)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "{name} stopped");
                }
            });
        }
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "{name} stopped");
                }
            });
        }
    }
    Ok(bound)
}
