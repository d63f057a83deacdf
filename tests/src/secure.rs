//! Nodes with authentication and TLS on: certificates made in the test with rcgen (no
//! private key is committed), a token file with one token per role, and clients that
//! carry a token.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use credence_proto::client::{Bearer, ClientTls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

use crate::{Node, NodeOptions};

/// The tokens of [`Secrets`]: one per role, and one with two.
pub const ADMIN: &str = "test-admin-token-0001";
/// Producer only.
pub const PRODUCER: &str = "test-producer-token-0002";
/// Reader only.
pub const READER: &str = "test-reader-token-0003";
/// Producer and reader (what the Python quickstart needs).
pub const PRODUCER_READER: &str = "test-producer-reader-token-0004";

/// A CA, a server certificate for `localhost` and `127.0.0.1`, a client certificate, and a
/// token file, in a temporary directory.
#[derive(Debug)]
pub struct Secrets {
    dir: TempDir,
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// A client certificate and key the CA signed (mutual TLS), PEM.
    pub client: (Vec<u8>, Vec<u8>),
}

/// The SHA-256 of a token in hex, as token files keep it.
pub fn token_hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A token file for `(name, token, roles)`.
pub fn token_file(entries: &[(&str, &str, &[&str])]) -> String {
    entries
        .iter()
        .fold(String::new(), |mut s, (name, token, roles)| {
            let _ = write!(
                s,
                "[[token]]\nname = {name:?}\nsha256 = {:?}\nroles = {roles:?}\n",
                token_hash_hex(token)
            );
            s
        })
}

impl Secrets {
    /// Makes the certificates and the token file.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("credence-pki-").tempdir()?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "credence test CA");
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, usage| -> anyhow::Result<(String, String)> {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(names)?;
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let server = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let client = leaf(
            vec!["client.test".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text);
        write("ca.pem", &ca.pem())?;
        write("server.pem", &server.0)?;
        write("server.key", &server.1)?;
        write(
            "tokens.toml",
            &token_file(&[
                ("ops-admin", ADMIN, &["admin"]),
                ("ingest", PRODUCER, &["producer"]),
                ("dashboard", READER, &["reader"]),
                ("quickstart", PRODUCER_READER, &["producer", "reader"]),
            ]),
        )?;
        Ok(Self {
            ca_pem: ca.pem().into_bytes(),
            client: (client.0.into_bytes(), client.1.into_bytes()),
            dir,
        })
    }

    /// A file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The token file.
    pub fn tokens_file(&self) -> PathBuf {
        self.path("tokens.toml")
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The `[auth]` and `[tls]` of a node: tokens always, TLS when `tls`, and mutual TLS
    /// when `mutual` too.
    pub fn config_toml(&self, tls: bool, mutual: bool) -> String {
        let quote = |p: &Path| format!("{:?}", p.display().to_string());
        let mut toml = format!("[auth]\ntokens_file = {}\n", quote(&self.tokens_file()));
        if tls {
            let _ = write!(
                toml,
                "[tls]\ncert_file = {}\nkey_file = {}\n",
                quote(&self.path("server.pem")),
                quote(&self.path("server.key"))
            );
            if mutual {
                let _ = writeln!(toml, "client_ca_file = {}", quote(&self.ca_file()));
            }
        }
        toml
    }

    /// How a client trusts the node: the CA, and the client certificate when `mutual`.
    pub fn client_tls(&self, mutual: bool) -> ClientTls {
        ClientTls {
            ca_pem: Some(self.ca_pem.clone()),
            identity: mutual.then(|| self.client.clone()),
        }
    }

    /// Starts a node with tokens, TLS when `tls` (mutual when `mutual`).
    pub async fn start_node(&self, tls: bool, mutual: bool) -> anyhow::Result<Node> {
        Node::start_with(NodeOptions {
            config_toml: Some(self.config_toml(tls, mutual)),
            client_tls: if tls {
                self.client_tls(mutual)
            } else {
                ClientTls::default()
            },
            ..NodeOptions::default()
        })
        .await
        .context("starting a node with auth")
    }
}

/// A bearer for `token` (`None`: no token).
pub fn bearer(token: Option<&str>) -> Bearer {
    Bearer::new(token).unwrap_or_default()
}
