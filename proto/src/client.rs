//! What a client needs to reach a node with authentication and TLS on: a bearer token on
//! every call ([`Bearer`]) and an endpoint that trusts a given CA ([`endpoint`]).

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// The metadata key of the token.
pub const AUTHORIZATION: &str = "authorization";

/// Adds `authorization: Bearer <token>` to every call (nothing without a token).
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// A token to send; `None` sends none. A token that is not visible ASCII is refused
    /// (no token `credence token new` makes is).
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        token
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {}", t.trim())).map_err(|_| {
                    "the token must be printable ASCII (as `credence token new` makes them)"
                        .to_owned()
                })
            })
            .transpose()
            .map(Self)
    }

    /// Puts the token on one request.
    pub fn apply<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        self.apply(&mut request);
        Ok(request)
    }
}

/// TLS settings of a client: the CA that signed the node's certificate (PEM), and for
/// mutual TLS the client's own certificate and key (PEM).
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// The CA to trust.
    pub ca_pem: Option<Vec<u8>>,
    /// The client's certificate chain and key, for a node that asks for one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// An endpoint for `target` (`http://host:port`, or `https://` for TLS); with a CA, TLS is
/// used whatever the scheme says, and the node's certificate must name the target's host.
pub fn endpoint(target: &str, tls: &ClientTls) -> Result<Endpoint, tonic::transport::Error> {
    let Some(ca) = &tls.ca_pem else {
        return Endpoint::from_shared(target.to_owned());
    };
    let target = match target.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => target.to_owned(),
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(target)?.tls_config(config)
}
