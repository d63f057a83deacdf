//! The connection to a node: [`Client`], its [`ClientBuilder`], retries and paging.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use credence_proto::v1::graph_service_client::GraphServiceClient;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_proto::v1::query_service_client::QueryServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use futures::stream::{self, BoxStream, StreamExt as _, TryStreamExt as _};
use tonic::codec::CompressionEncoding;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::{Error, Result};

/// How calls that are safe to repeat are retried when the node answers UNAVAILABLE (it is
/// restarting, or the connection dropped).
///
/// The wait before attempt `n + 1` is `initial_backoff * 2^(n-1)`, capped at `max_backoff`,
/// with "equal jitter": a random point in its upper half, so clients that failed together
/// do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait after the first failure.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts, waiting about 0.1, 0.2, 0.4, 0.8 and 1.6 s: a node restarting within
    /// three seconds is waited out.
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is sent once.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based); a wait the server asked for
    /// is honoured when it is longer.
    pub fn backoff(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1));
        let full = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        let half = full / 2;
        let jitter = half.mul_f64(fastrand::f64());
        (half + jitter).max(asked.unwrap_or_default())
    }
}

/// Settings of a [`Client`]; [`Client::builder`] makes one.
///
/// ```no_run
/// # async fn run() -> credence::Result<()> {
/// use std::time::Duration;
///
/// let client = credence::Client::builder("http://127.0.0.1:50051")
///     .timeout(Duration::from_secs(10))
///     .retry(credence::RetryPolicy { max_attempts: 10, ..Default::default() })
///     .keep_alive(Duration::from_secs(30))
///     .auth_token("synthetic-token")
///     .gzip(true)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    connect_timeout: Duration,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    keep_alive: Option<Duration>,
    keep_alive_timeout: Duration,
    auth_token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    tls_domain: Option<String>,
    gzip: bool,
    max_message_bytes: usize,
}

impl ClientBuilder {
    fn new(url: &str) -> Self {
        // "127.0.0.1:50051" means plain HTTP/2, as grpcurl's -plaintext would.
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        Self {
            url,
            connect_timeout: Duration::from_secs(5),
            timeout: Some(Duration::from_secs(30)),
            retry: RetryPolicy::default(),
            keep_alive: None,
            keep_alive_timeout: Duration::from_secs(20),
            auth_token: None,
            ca_pem: None,
            tls_domain: None,
            gzip: false,
            max_message_bytes: 64 << 20,
        }
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// How long one attempt of a call may take, sent to the server as the gRPC deadline too
    /// (default 30 s). Streams are bounded only while they open.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// No time limit on calls.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// How calls safe to repeat are retried on UNAVAILABLE (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sends HTTP/2 pings at this interval, also while idle, and drops the connection when
    /// one is not answered within 20 s: a dead node or a silent middlebox is noticed before
    /// the next call.
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = Some(interval);
        self
    }

    /// Sends `authorization: Bearer TOKEN` with every call.
    pub fn auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Trusts this CA (PEM) for TLS; use with an `https://` URL. The server's name is taken
    /// from the URL unless [`ClientBuilder::tls_domain`] says otherwise.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// The name the server's certificate must carry, when it is not the URL's host.
    pub fn tls_domain(mut self, domain: impl Into<String>) -> Self {
        self.tls_domain = Some(domain.into());
        self
    }

    /// Compresses requests with gzip and asks for gzip answers.
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// The largest message sent or taken (default 64 MiB).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Connects now: a wrong address, nothing listening or a refused TLS handshake fails
    /// here with [`Error::Connect`], not at the first call.
    pub async fn connect(self) -> Result<Client> {
        let connect_error = |message: String| Error::Connect {
            url: self.url.clone(),
            message,
        };
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| connect_error(format!("not a valid URL ({})", chain(&e))))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(interval) = self.keep_alive {
            endpoint = endpoint
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(self.keep_alive_timeout)
                .keep_alive_while_idle(true);
        }
        let tls = self.url.starts_with("https://");
        if self.ca_pem.is_some() && !tls {
            return Err(Error::Input(format!(
                "a CA certificate was given but {} is not an https:// URL",
                self.url
            )));
        }
        if tls {
            let mut config = ClientTlsConfig::new();
            if let Some(pem) = &self.ca_pem {
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            if let Some(domain) = &self.tls_domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| connect_error(format!("TLS settings refused: {}", chain(&e))))?;
        }
        let auth = match &self.auth_token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| {
                        Error::Input(
                            "the auth token must be printable ASCII (a header value)".into(),
                        )
                    })?,
            ),
            None => None,
        };
        let channel = endpoint.connect().await.map_err(|e| {
            connect_error(format!(
                "{}; is a node running there (`credence dev`)?",
                chain(&e)
            ))
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                channel,
                url: self.url,
                timeout: self.timeout,
                retry: self.retry,
                auth,
                gzip: self.gzip,
                max_message: self.max_message_bytes,
            }),
        })
    }
}

/// An error and its causes on one line (tonic's own text is only "transport error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(std::error::Error::source)
}

/// A connection to a Credence node, with typed methods for every RPC of its four services.
///
/// Cheap to clone (clones share one HTTP/2 connection) and safe to use from many tasks.
///
/// ```no_run
/// # async fn run() -> credence::Result<()> {
/// let client = credence::Client::connect("http://127.0.0.1:50051").await?;
/// let score = client.get_score("subject-0001").await?;
/// println!("{} is in tier {} with {:.1}", score.subject_id, score.tier, score.score);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    channel: Channel,
    url: String,
    timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    auth: Option<MetadataValue<Ascii>>,
    gzip: bool,
    max_message: usize,
}

/// Whether a call may be sent again after UNAVAILABLE without changing its effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, publishing (event ids make a resend a duplicate), upserts, removals.
    Safe,
    /// Calls that create something new each time (a rule or config version).
    Never,
}

/// A generated client of one service on this client's channel, with its message limits and
/// compression.
macro_rules! service_client {
    ($name:ident, $client:ident) => {
        pub(crate) fn $name(&self) -> $client<Channel> {
            let c = $client::new(self.channel())
                .max_decoding_message_size(self.inner.max_message)
                .max_encoding_message_size(self.inner.max_message);
            if self.inner.gzip {
                c.send_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Gzip)
            } else {
                c
            }
        }
    };
}

impl Client {
    /// Connects to `url` with default settings (`http://HOST:PORT`; without a scheme,
    /// plain HTTP/2 is meant).
    ///
    /// ```no_run
    /// # async fn run() -> credence::Result<()> {
    /// let client = credence::Client::connect("http://127.0.0.1:50051").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder(url).connect().await
    }

    /// Settings first: timeouts, retries, keep-alive, auth token, TLS, gzip.
    pub fn builder(url: &str) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The HTTP/2 channel, for the generated clients in [`crate::proto`] (calls made
    /// through them carry no auth header, retries or timeouts of this client).
    pub fn channel(&self) -> Channel {
        self.inner.channel.clone()
    }

    service_client!(ingestion, IngestionServiceClient);
    service_client!(scoring, ScoringServiceClient);
    service_client!(query, QueryServiceClient);
    service_client!(graph, GraphServiceClient);

    /// A request carrying the auth header, and the deadline when `deadline` (a stream that
    /// outlives the timeout must not carry it: the server would cut it).
    pub(crate) fn request<M>(&self, message: M, deadline: bool) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.inner.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        if let (true, Some(limit)) = (deadline, self.inner.timeout) {
            request.set_timeout(limit);
        }
        request
    }

    /// Sends `message` through `send` (a call of a generated client), within the timeout,
    /// retrying on UNAVAILABLE when `retry` allows it.
    pub(crate) async fn call<M, R, F, Fut>(
        &self,
        what: &str,
        retry: Retry,
        message: M,
        send: F,
    ) -> Result<R>
    where
        M: Clone,
        F: FnMut(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let policy = match retry {
            Retry::Safe => self.inner.retry,
            Retry::Never => RetryPolicy::none(),
        };
        self.attempts(what, policy, true, message, send).await
    }

    /// Opens a server stream: like [`Client::call`] for a read (retried on UNAVAILABLE), but
    /// the timeout bounds only the opening, so the stream may run for as long as it lasts.
    pub(crate) async fn open<M, R, F, Fut>(&self, what: &str, message: M, send: F) -> Result<R>
    where
        M: Clone,
        F: FnMut(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        self.attempts(what, self.inner.retry, false, message, send)
            .await
    }

    /// Opens a server stream whose answer is read whole (an analytics result): unlike
    /// [`Client::open`], the timeout bounds the call from its start to its last message, since
    /// the node sends the first message at once and a slow query would outlast it.
    pub(crate) async fn collect<M, T, F, Fut>(
        &self,
        what: &str,
        message: M,
        send: F,
    ) -> Result<Vec<T>>
    where
        M: Clone,
        F: FnMut(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
    {
        let whole = async {
            let stream = self.open(what, message, send).await?;
            stream
                .try_collect::<Vec<T>>()
                .await
                .map_err(|s| Error::from_status(&s, 1))
        };
        match self.inner.timeout {
            Some(limit) => tokio::time::timeout(limit, whole)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::DeadlineExceeded {
                        message: format!("{what} took longer than {limit:?}"),
                        attempts: 1,
                    })
                }),
            None => whole.await,
        }
    }

    async fn attempts<M, R, F, Fut>(
        &self,
        what: &str,
        policy: RetryPolicy,
        deadline: bool,
        message: M,
        mut send: F,
    ) -> Result<R>
    where
        M: Clone,
        F: FnMut(tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = send(self.request(message.clone(), deadline));
            let outcome = match self.inner.timeout {
                Some(limit) => match tokio::time::timeout(limit, sent).await {
                    Ok(answer) => answer.map_err(|s| Error::from_status(&s, attempt)),
                    Err(_) => Err(Error::DeadlineExceeded {
                        message: format!("{what} took longer than {limit:?}"),
                        attempts: attempt,
                    }),
                },
                None => sent.await.map_err(|s| Error::from_status(&s, attempt)),
            };
            match outcome {
                Ok(response) => return Ok(response.into_inner()),
                Err(e @ Error::Unavailable { .. }) if attempt < policy.max_attempts => {
                    let wait = policy.backoff(attempt, None);
                    tracing::debug!(%e, ?wait, attempt, "{what}: retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// One page of a listing, and the cursor to the next.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this as the next request's page token; `None` on the last page.
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    pub(crate) fn new(items: Vec<T>, token: String) -> Self {
        Self {
            items,
            next_page_token: Some(token).filter(|t| !t.is_empty()),
        }
    }
}

/// Every item of a listing, page after page: `fetch(token)` gets the page at `token` (empty
/// for the first).
pub(crate) fn follow<T, F, Fut>(fetch: F) -> BoxStream<'static, Result<T>>
where
    T: Send + 'static,
    F: FnMut(String) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T>>> + Send + 'static,
{
    stream::try_unfold(
        (fetch, Some(String::new())),
        |(mut fetch, token)| async move {
            let Some(token) = token else {
                return Ok::<_, Error>(None);
            };
            let page = fetch(token).await?;
            let items = stream::iter(page.items.into_iter().map(Ok::<T, Error>));
            Ok(Some((items, (fetch, page.next_page_token))))
        },
    )
    .try_flatten()
    .boxed()
}

/// One call of a generated client method through [`Client::call`]:
/// `rpc!(self, scoring.get_score, "GetScore", Retry::Safe, request)`.
macro_rules! rpc {
    ($client:expr, $service:ident . $method:ident, $what:literal, $retry:expr, $request:expr) => {
        $client
            .call($what, $retry, $request, |m| {
                let mut c = $client.$service();
                async move { c.$method(m).await }
            })
            .await
    };
}
pub(crate) use rpc;

/// A query with a page cursor.
pub(crate) trait Paged: Clone + Send + Sync + 'static {
    /// The same query at page `token`.
    fn at(&self, token: String) -> Self;
}

/// Implements [`Paged`] for query structs with a `page_token: String` field.
macro_rules! paged {
    ($($query:ty),+ $(,)?) => {
        $(impl $crate::client::Paged for $query {
            fn at(&self, token: String) -> Self {
                Self {
                    page_token: token,
                    ..self.clone()
                }
            }
        })+
    };
}
pub(crate) use paged;

/// Every item `query` selects: `fetch(client, query at a page)` reads one page.
pub(crate) fn follow_query<Q, T, F, Fut>(
    client: &Client,
    query: Q,
    fetch: F,
) -> BoxStream<'static, Result<T>>
where
    Q: Paged,
    T: Send + 'static,
    F: Fn(Client, Q) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T>>> + Send + 'static,
{
    let client = client.clone();
    follow(move |token| fetch(client.clone(), query.at(token)))
}

/// Converts every item of a list, stopping at the first failure.
pub(crate) fn all<A, B>(items: Vec<A>, f: impl FnMut(A) -> Result<B>) -> Result<Vec<B>> {
    items.into_iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half_and_honours_the_server() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for _ in 0..100 {
            for (attempt, full) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (30, 1000),
            ] {
                let wait = p.backoff(attempt, None);
                let full = Duration::from_millis(full);
                assert!(wait >= full / 2 && wait <= full, "{attempt}: {wait:?}");
            }
        }
        let asked = Duration::from_secs(3);
        assert_eq!(p.backoff(1, Some(asked)), asked);
    }

    #[tokio::test]
    async fn a_wrong_address_fails_at_connect_naming_it() {
        // Port 1 on loopback: nothing listens there.
        let e = Client::builder("127.0.0.1:1")
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
            .expect_err("nothing listens on port 1");
        let Error::Connect { url, message } = &e else {
            panic!("not a connect error: {e:?}");
        };
        assert_eq!(url, "http://127.0.0.1:1");
        assert!(message.contains("credence dev"), "{message}");
        let bad = Client::connect("http://[bad").await.expect_err("bad URL");
        assert!(matches!(bad, Error::Connect { .. }), "{bad:?}");
        let no_tls = Client::builder("http://127.0.0.1:1")
            .ca_certificate(b"pem".to_vec())
            .connect()
            .await
            .expect_err("CA without https");
        assert!(matches!(no_tls, Error::Input(_)), "{no_tls:?}");
    }

    #[tokio::test]
    async fn pages_are_followed_until_the_cursor_runs_out() {
        let pages = follow(|token: String| async move {
            Ok(match token.as_str() {
                "" => Page::new(vec![1, 2], "b".into()),
                "b" => Page::new(vec![3], "c".into()),
                _ => Page::new(vec![4], String::new()),
            })
        });
        let all: Vec<i32> = pages.try_collect().await.expect("no failure");
        assert_eq!(all, [1, 2, 3, 4]);
    }
}
