//! Who may do what: bearer tokens, the three roles, the one table of the role every RPC
//! needs ([`METHOD_ROLES`]), and the tower layer ([`Authorize`]) that enforces it for the
//! whole gRPC router in one place.
//!
//! Tokens are kept as SHA-256 hashes in a token file (`auth.tokens_file`), re-read on
//! SIGHUP, so a token is added, rotated or revoked without a restart. Why SHA-256 and not a
//! password hash (argon2, bcrypt): a token is 32 random bytes made by `credence token new`,
//! not a password a person chose, so there is nothing to guess and a slow hash buys no
//! safety; it would cost its time on every call instead (argon2's point is to take tens of
//! milliseconds). Looking a presented token's hash up in a map does not leak the stored
//! hashes through timing in any way that helps: finding a token from its hash is a preimage
//! of SHA-256.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use futures::future::{Either, Ready, ready};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tonic::Status;

use crate::error::Error;

/// A role a token can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Changes what scoring reads: rules, config, lists, relations, profiles. An admin may
    /// also do everything the other roles may (it runs the node).
    Admin,
    /// Sends data: events and profiles.
    Producer,
    /// Reads: scores, explanations, queries, analytics, the graph, alerts.
    Reader,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Producer, Role::Reader];

    /// The role's name in token files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Producer => "producer",
            Role::Reader => "reader",
        }
    }

    /// The role of a name in a token file.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether holding this role allows a call that needs `needed`.
    pub fn grants(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

const INGESTION: &str = "/credence.v1.IngestionService/";
const SCORING: &str = "/credence.v1.ScoringService/";
const QUERY: &str = "/credence.v1.QueryService/";
const GRAPH: &str = "/credence.v1.GraphService/";

/// The role each RPC needs, by service and method. The one place this is decided: the
/// [`Authorize`] layer reads it for every call, `docs/SECURITY.md` lists it, and a test
/// checks that it names every method the node serves and nothing else.
pub const METHOD_ROLES: &[(&str, &str, Role)] = &[
    (INGESTION, "PublishEvents", Role::Producer),
    (INGESTION, "StreamEvents", Role::Producer),
    (INGESTION, "UpsertProfiles", Role::Producer),
    (SCORING, "PutRule", Role::Admin),
    (SCORING, "GetRule", Role::Reader),
    (SCORING, "ListRules", Role::Reader),
    (SCORING, "SetRuleStatus", Role::Admin),
    (SCORING, "GetConfig", Role::Reader),
    (SCORING, "PutConfig", Role::Admin),
    (SCORING, "GetScore", Role::Reader),
    (SCORING, "BatchGetScores", Role::Reader),
    (SCORING, "ExplainScore", Role::Reader),
    (SCORING, "Simulate", Role::Reader),
    (SCORING, "PutListEntry", Role::Admin),
    (SCORING, "RemoveListEntry", Role::Admin),
    (SCORING, "ListListEntries", Role::Reader),
    (SCORING, "WatchAlerts", Role::Reader),
    (QUERY, "GetProfile", Role::Reader),
    (QUERY, "ListSubjects", Role::Reader),
    (QUERY, "GetScoreHistory", Role::Reader),
    (QUERY, "ListEvents", Role::Reader),
    (QUERY, "GetTierDistribution", Role::Reader),
    (QUERY, "GetAggregates", Role::Reader),
    (QUERY, "RunAnalytics", Role::Reader),
    (GRAPH, "PutRelations", Role::Admin),
    (GRAPH, "RemoveRelations", Role::Admin),
    (GRAPH, "GetNeighbors", Role::Reader),
    (GRAPH, "FindPath", Role::Reader),
    (GRAPH, "GetAssociation", Role::Reader),
];

/// Services anyone may call, token or not: health (load balancers and orchestrators probe
/// it without credentials) and reflection (it describes the public contract, no data).
pub const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// What a call to `path` needs: `None` for an open service, else its role from
/// [`METHOD_ROLES`]. A path the table does not name needs `admin`, so an RPC added without
/// a row is closed rather than open.
pub fn required_role(path: &str) -> Option<Role> {
    if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
        return None;
    }
    let role = METHOD_ROLES
        .iter()
        .find(|(service, method, _)| {
            path.strip_prefix(service)
                .is_some_and(|rest| rest == *method)
        })
        .map_or(Role::Admin, |(_, _, role)| *role);
    Some(role)
}

/// Who made a call, as the handlers see it (a request extension the layer sets).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name, or [`ANONYMOUS`] on a node without authentication.
    pub name: Arc<str>,
}

/// The caller's name on a node without authentication.
pub const ANONYMOUS: &str = "anonymous";

/// The name of whoever made `request` (for the audit trail).
pub fn caller_name<T>(request: &tonic::Request<T>) -> String {
    request
        .extensions()
        .get::<Caller>()
        .map_or_else(|| ANONYMOUS.to_owned(), |c| c.name.to_string())
}

/// `[auth]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// The token file (TOML: `[[token]]` with `name`, `sha256`, `roles`); empty: no
    /// authentication, every call is allowed. Re-read on SIGHUP.
    pub tokens_file: String,
}

impl AuthSection {
    /// Whether calls need a token.
    pub fn enabled(&self) -> bool {
        !self.tokens_file.is_empty()
    }
}

/// The token file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    roles: Vec<String>,
}

/// Longest token name: it is written into every audit entry.
const MAX_NAME: usize = 64;

/// A known token.
#[derive(Clone, Debug)]
struct Identity {
    name: Arc<str>,
    roles: Vec<Role>,
}

/// The known tokens, by the SHA-256 of the token.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Identity>,
}

impl Tokens {
    /// Parses a token file's text; every problem names the entry.
    pub fn parse(text: &str) -> anyhow::Result<Tokens> {
        let file: TokenFile = toml::from_str(text).context("the token file is not valid")?;
        let mut by_hash = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, entry) in file.token.iter().enumerate() {
            let at = format!("token #{}", i + 1);
            let name = entry.name.trim();
            if name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
                bail!("{at}: name must be 1 to {MAX_NAME} printable characters");
            }
            if !names.insert(name.to_owned()) {
                bail!("{at}: the name {name:?} is used twice; names identify callers");
            }
            let hash = parse_hex(&entry.sha256).with_context(|| {
                format!(
                    "{at} ({name}): sha256 must be 64 hex digits, the SHA-256 of the token \
                     (`credence token new` prints it)"
                )
            })?;
            if entry.roles.is_empty() {
                bail!("{at} ({name}): roles is empty; give one or more of admin, producer, reader");
            }
            let roles = entry
                .roles
                .iter()
                .map(|r| {
                    Role::parse(r).with_context(|| {
                        let shown: String = r.chars().take(16).collect();
                        format!("{at} ({name}): unknown role {shown:?}; roles are admin, producer, reader")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let identity = Identity {
                name: Arc::from(name),
                roles,
            };
            if by_hash.insert(hash, identity).is_some() {
                bail!("{at} ({name}): the same token hash is listed twice");
            }
        }
        Ok(Tokens { by_hash })
    }

    /// Reads and parses a token file.
    pub fn load(path: &Path) -> anyhow::Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
        Tokens::parse(&text).with_context(|| format!("token file {}", path.display()))
    }

    /// How many tokens are known.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no token is known (every call is then refused).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 of a token, as stored in the token file.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// [`token_hash`] as the 64 hex digits of a token file.
pub fn token_hash_hex(token: &str) -> String {
    token_hash(token)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A new random token: `credence_` and 64 hex digits (32 bytes from the OS).
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    Ok(bytes.iter().fold(String::from("credence_"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Checks bearer tokens against the token file's current contents.
#[derive(Debug)]
pub struct Authenticator {
    file: PathBuf,
    tokens: RwLock<Arc<Tokens>>,
}

impl Authenticator {
    /// Loads the token file; a node whose file does not load does not start.
    pub fn open(file: &Path) -> anyhow::Result<Self> {
        let tokens = Tokens::load(file)?;
        if tokens.is_empty() {
            tracing::warn!(file = %file.display(), "the token file lists no token: every call but health and reflection is refused");
        }
        Ok(Self {
            file: file.to_owned(),
            tokens: RwLock::new(Arc::new(tokens)),
        })
    }

    /// Re-reads the token file. A file that does not load leaves the tokens as they were
    /// (a half-written file must not lock everyone out) and returns why.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let tokens = Tokens::load(&self.file)?;
        let count = tokens.len();
        *self.tokens.write() = Arc::new(tokens);
        Ok(count)
    }

    /// The caller a request's `authorization` metadata names, if it may call a method that
    /// needs `needed`.
    pub fn check(
        &self,
        authorization: Option<&http::HeaderValue>,
        needed: Role,
        path: &str,
    ) -> Result<Caller, Error> {
        let Some(value) = authorization else {
            return Err(Error::Unauthenticated(
                "this node requires a bearer token: send the metadata `authorization: Bearer \
                 <token>` (the credence CLI: --token or CREDENCE_TOKEN)"
                    .into(),
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the authorization metadata must read `Bearer <token>`".into(),
                )
            })?;
        let tokens = Arc::clone(&self.tokens.read());
        let identity = tokens.by_hash.get(&token_hash(token)).ok_or_else(|| {
            Error::Unauthenticated(
                "the bearer token is not known to this node (mistyped, revoked or rotated)".into(),
            )
        })?;
        if identity.roles.iter().any(|r| r.grants(needed)) {
            return Ok(Caller {
                name: Arc::clone(&identity.name),
            });
        }
        let held: Vec<&str> = identity.roles.iter().map(|r| r.name()).collect();
        let method = path.rsplit('/').next().unwrap_or_default();
        let method: String = method.chars().take(48).collect();
        Err(Error::PermissionDenied(format!(
            "token {:?} holds the role(s) {}; {method} needs the {} role",
            identity.name,
            held.join(", "),
            needed.name()
        )))
    }
}

/// Re-reads the token file on every SIGHUP until the process ends, logging the outcome.
pub fn reload_on_sighup(auth: Arc<Authenticator>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match auth.reload() {
                    Ok(count) => tracing::info!(
                        tokens = count,
                        file = %auth.file.display(),
                        "token file reloaded"
                    ),
                    Err(e) => tracing::error!(
                        error = format!("{e:#}"),
                        "token file not reloaded; the tokens stay as they were"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = auth;
    Ok(())
}

/// The node's authenticator when `[auth]` turns authentication on, re-reading its token
/// file on SIGHUP.
pub fn authenticator(section: &AuthSection) -> anyhow::Result<Option<Arc<Authenticator>>> {
    if !section.enabled() {
        return Ok(None);
    }
    let auth = Arc::new(Authenticator::open(Path::new(&section.tokens_file))?);
    reload_on_sighup(Arc::clone(&auth))?;
    Ok(Some(auth))
}

/// Refuses to expose a node beyond this machine without authentication and TLS (a bearer
/// token sent in plaintext is anyone's on the path), unless the operator said `--insecure`.
/// A loopback address is reachable from this machine only and stays open (`credence dev`).
pub fn check_exposure(
    listen: std::net::SocketAddr,
    auth: &AuthSection,
    tls_on: bool,
    insecure: bool,
) -> anyhow::Result<()> {
    if listen.ip().is_loopback() || insecure {
        return Ok(());
    }
    if !auth.enabled() {
        bail!(
            "refusing to listen on {listen} without authentication: anyone who reaches it could \
             change rules and read every score. Set auth.tokens_file (docs/SECURITY.md), listen \
             on a loopback address, or pass --insecure to serve it open anyway"
        );
    }
    if !tls_on {
        bail!(
            "refusing to listen on {listen} without TLS: bearer tokens would cross the network \
             in plaintext. Set tls.cert_file and tls.key_file (docs/SECURITY.md), or pass \
             --insecure (e.g. behind a proxy that terminates TLS)"
        );
    }
    Ok(())
}

/// The tower layer that checks every call against [`METHOD_ROLES`]: a refused call is
/// answered UNAUTHENTICATED or PERMISSION_DENIED before any service sees it; an allowed one
/// carries its [`Caller`]. Without an authenticator every call is allowed as [`ANONYMOUS`].
#[derive(Clone, Debug)]
pub struct Authorize(pub Option<Arc<Authenticator>>);

impl<S> tower::Layer<S> for Authorize {
    type Service = Authorized<S>;
    fn layer(&self, inner: S) -> Authorized<S> {
        Authorized {
            inner,
            auth: self.0.clone(),
        }
    }
}

/// The service [`Authorize`] wraps around the gRPC router.
#[derive(Clone, Debug)]
pub struct Authorized<S> {
    inner: S,
    auth: Option<Arc<Authenticator>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Authorized<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let caller = match (&self.auth, required_role(req.uri().path())) {
            (_, None) => None,
            (None, Some(_)) => Some(Caller {
                name: Arc::from(ANONYMOUS),
            }),
            (Some(auth), Some(needed)) => {
                match auth.check(
                    req.headers().get(http::header::AUTHORIZATION),
                    needed,
                    req.uri().path(),
                ) {
                    Ok(caller) => Some(caller),
                    Err(refused) => {
                        return Either::Right(ready(Ok(Status::from(refused).into_http())));
                    }
                }
            }
        };
        if let Some(caller) = caller {
            req.extensions_mut().insert(caller);
        }
        Either::Left(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &str, &[&str])]) -> String {
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

    fn bearer(token: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    #[test]
    fn the_table_names_each_method_once_and_unlisted_paths_need_admin() {
        let mut seen = std::collections::HashSet::new();
        for (service, method, role) in METHOD_ROLES {
            let path = format!("{service}{method}");
            assert!(seen.insert(path.clone()), "{path} listed twice");
            assert_eq!(required_role(&path), Some(*role), "{path}");
        }
        assert_eq!(required_role("/grpc.health.v1.Health/Check"), None);
        assert_eq!(
            required_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            None
        );
        for unlisted in [
            "/credence.v1.ScoringService/NoSuchMethod",
            "/credence.v1.ScoringService/PutRuleX",
            "/other.Service/Call",
            "",
        ] {
            assert_eq!(required_role(unlisted), Some(Role::Admin), "{unlisted:?}");
        }
    }

    #[test]
    fn the_table_names_exactly_the_methods_of_the_four_services() {
        use prost::Message as _;
        let set =
            prost_types::FileDescriptorSet::decode(credence_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut served = Vec::new();
        for file in &set.file {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                if credence_proto::SERVICE_NAMES.contains(&name.as_str()) {
                    for method in &service.method {
                        served.push(format!("/{name}/{}", method.name()));
                    }
                }
            }
        }
        let mut listed: Vec<String> = METHOD_ROLES
            .iter()
            .map(|(service, method, _)| format!("{service}{method}"))
            .collect();
        served.sort();
        listed.sort();
        assert_eq!(listed, served);
    }

    #[test]
    fn tokens_are_checked_by_hash_and_roles() {
        let text = file(&[
            ("ops", "t-admin", &["admin"]),
            ("ingest", "t-producer", &["producer"]),
            ("dash", "t-reader", &["reader", "producer"]),
        ]);
        assert!(!text.contains("t-admin"), "the file holds hashes only");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, text).unwrap();
        let auth = Authenticator::open(&path).unwrap();
        let path = "/credence.v1.ScoringService/PutRule";
        let ok = |token: &str, role| {
            auth.check(Some(&bearer(token)), role, path)
                .map_err(Status::from)
        };
        assert_eq!(&*ok("t-admin", Role::Reader).unwrap().name, "ops");
        assert_eq!(&*ok("t-admin", Role::Producer).unwrap().name, "ops");
        assert_eq!(&*ok("t-reader", Role::Producer).unwrap().name, "dash");
        let denied = ok("t-producer", Role::Admin).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("\"ingest\""), "{denied:?}");
        assert!(
            denied.message().contains("PutRule needs the admin role"),
            "{denied:?}"
        );
        for (value, why) in [
            (None, "requires a bearer token"),
            (Some(bearer("t-unknown")), "not known"),
            (
                Some(http::HeaderValue::from_static("Basic dDp0")),
                "Bearer <token>",
            ),
            (
                Some(http::HeaderValue::from_static("Bearer ")),
                "Bearer <token>",
            ),
        ] {
            let err = Status::from(auth.check(value.as_ref(), Role::Reader, path).unwrap_err());
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{value:?}");
            assert!(err.message().contains(why), "{value:?}: {err:?}");
            assert!(
                !err.message().contains("t-unknown"),
                "a token is never echoed"
            );
        }
        // The scheme is case-insensitive, as HTTP's are.
        assert!(
            auth.check(
                Some(&http::HeaderValue::from_static("bearer t-reader")),
                Role::Reader,
                path
            )
            .is_ok()
        );
    }

    #[test]
    fn only_loopback_or_insecure_may_go_without_auth_and_tls() {
        let on = AuthSection {
            tokens_file: "tokens.toml".into(),
        };
        let off = AuthSection::default();
        let lo: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let lo6: std::net::SocketAddr = "[::1]:1".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(check_exposure(lo, &off, false, false).is_ok());
        assert!(check_exposure(lo6, &off, false, false).is_ok());
        let err = check_exposure(any, &off, true, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("without authentication") && err.contains("--insecure"),
            "{err}"
        );
        let err = check_exposure(any, &on, false, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without TLS"), "{err}");
        assert!(check_exposure(any, &on, true, false).is_ok());
        assert!(check_exposure(any, &off, false, true).is_ok());
    }

    #[test]
    fn a_reload_rotates_tokens_and_a_broken_file_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, file(&[("a", "old", &["reader"])])).unwrap();
        let auth = Authenticator::open(&path).unwrap();
        let check = |t: &str| auth.check(Some(&bearer(t)), Role::Reader, "/x/Y");
        assert!(check("old").is_ok());
        std::fs::write(&path, file(&[("a", "new", &["reader"])])).unwrap();
        assert!(check("old").is_ok(), "nothing changes before a reload");
        assert_eq!(auth.reload().unwrap(), 1);
        assert!(check("new").is_ok());
        assert_eq!(
            check("old").unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        std::fs::write(&path, "[[token]]\nname = \"half").unwrap();
        assert!(auth.reload().is_err());
        assert!(check("new").is_ok(), "a broken file keeps the tokens");
    }

    #[test]
    fn token_file_mistakes_are_named() {
        let hash = token_hash_hex("x");
        for (text, expected) in [
            (
                "[[token]]\nname = \"a\"\nsha256 = \"abc\"\nroles = [\"admin\"]\n".to_owned(),
                "64 hex digits",
            ),
            (
                format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nroles = [\"root\"]\n"),
                "unknown role \"root\"",
            ),
            (
                format!("[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nroles = []\n"),
                "roles is empty",
            ),
            (
                format!("[[token]]\nname = \"\"\nsha256 = \"{hash}\"\nroles = [\"admin\"]\n"),
                "name must be",
            ),
            (
                format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nroles = [\"admin\"]\n\
                     [[token]]\nname = \"a\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n",
                    token_hash_hex("y")
                ),
                "used twice",
            ),
            (
                format!(
                    "[[token]]\nname = \"a\"\nsha256 = \"{hash}\"\nroles = [\"admin\"]\n\
                     [[token]]\nname = \"b\"\nsha256 = \"{hash}\"\nroles = [\"admin\"]\n"
                ),
                "listed twice",
            ),
            (
                "[[token]]\nname = \"a\"\nsecret = \"x\"\n".to_owned(),
                "not valid",
            ),
        ] {
            let err = format!("{:#}", Tokens::parse(&text).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
        assert_eq!(
            token_hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "SHA-256 test vector"
        );
        let token = new_token().unwrap();
        assert!(
            token.starts_with("credence_") && token.len() == 9 + 64,
            "{token}"
        );
        assert_ne!(token, new_token().unwrap());
    }
}
