//! The dashboard: a live page served by the node, and the JSON API it reads.
//!
//! - `GET /` and its two assets: a dependency-free page (plain HTML, CSS and a JS module,
//!   charts drawn as SVG by its own code), embedded in the binary, so nothing is fetched
//!   from anywhere at run time.
//! - `POST /api/v1/{service}/{method}`: any unary RPC of the four services with its request
//!   and answer in the protobuf JSON mapping, forwarded in process through the node's gRPC
//!   stack (`gateway.rs`), so the same roles, validation, limits and messages apply.
//! - `POST /api/v1/analytics`: `RunAnalytics` with its Arrow answer as a JSON table.
//! - `GET /api/v1/alerts`: `WatchAlerts` as Server-Sent Events.
//! - `GET /api/v1/stats`: the node's counters (those of `/metrics`) as JSON.
//!
//! Why JSON beside gRPC rather than gRPC-web: a browser page would need a protobuf runtime
//! (a bundled npm package) to speak gRPC-web; JSON needs none, and `curl` can use it too.
//!
//! POSTs must say `Content-Type: application/json`: an HTML form on another site cannot
//! send that without a CORS preflight, which this server never grants, so a page elsewhere
//! cannot make a browser change rules on a node it can reach.

mod gateway;
mod publish;
mod stats;
mod table;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::error::Error;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use credence_proto::v1 as pb;
use tonic::{Code, Status};

pub use gateway::{Gateway, GrpcService, boxed};

use crate::auth::{Authenticator, Role};

/// Environment variable naming a directory to serve the page's files from instead of the
/// copies built in: edit, reload, no rebuild (for working on the page).
pub const ASSETS_ENV: &str = "CREDENCE_DASHBOARD_ASSETS";

/// The page's files: (URL path, file name, content type, built-in copy).
const ASSETS: &[(&str, &str, &str, &str)] = &[
    (
        "/",
        "index.html",
        "text/html; charset=utf-8",
        include_str!("static/index.html"),
    ),
    (
        "/dashboard.js",
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("static/dashboard.js"),
    ),
    (
        "/dashboard.css",
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("static/dashboard.css"),
    ),
];

/// Everything the dashboard's handlers reach.
pub struct Dashboard {
    /// The in-process gRPC stack.
    pub gateway: Gateway,
    /// The node's tokens, for the endpoints that are no RPC (stats).
    pub auth: Option<Arc<Authenticator>>,
    /// Bus partitions, for the lag of each.
    pub partitions: u32,
    /// When the node started.
    pub started: Instant,
    /// Largest request body, in bytes (`ingest.max_message_bytes`, as for gRPC).
    pub max_body: usize,
}

/// Serves the dashboard on `addr` until the process ends, over TLS when `tls` is given;
/// returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    dashboard: Dashboard,
) -> anyhow::Result<SocketAddr> {
    let max_body = dashboard.max_body;
    let mut app = axum::Router::new();
    for &(path, file, content_type, built_in) in ASSETS {
        app = app.route(
            path,
            get(move || async move { asset(file, content_type, built_in) }),
        );
    }
    let app = app
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/analytics", post(analytics))
        .route("/api/v1/{service}/{method}", post(rpc))
        .fallback(|| async { ApiError(Error::not_found::<Status>("no such page or API path")) })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(Arc::new(dashboard));
    crate::tls::serve_http(addr, tls, app, "dashboard").await
}

/// A page file, from [`ASSETS_ENV`]'s directory when set, else the built-in copy.
fn asset(file: &str, content_type: &'static str, built_in: &'static str) -> Response {
    let body = match std::env::var_os(ASSETS_ENV) {
        Some(dir) => match std::fs::read_to_string(std::path::Path::new(&dir).join(file)) {
            Ok(text) => text,
            Err(e) => {
                return ApiError(Error::not_found::<Status>(format!(
                    "{file} in {ASSETS_ENV}: {e}"
                )))
                .into_response();
            }
        },
        None => built_in.to_owned(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page talks to its own origin only; styles set from script are allowed.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure_headers(headers);
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A gRPC status as an HTTP answer: `{"code": "NOT_FOUND", "message": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub Status);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http_status(self.0.code());
        let body = serde_json::json!({
            "code": code_name(self.0.code()),
            "message": self.0.message(),
        });
        let mut response = json_response(status, &body);
        if let Some(retry) = self
            .0
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            && let Ok(value) = HeaderValue::from_str(retry)
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    secure_headers(response.headers_mut());
    response
}

/// The HTTP status that says what a gRPC code says.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The code's name as the gRPC spec writes it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A POST body must be declared JSON (see the module docs on why).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if declared {
        Ok(())
    } else {
        Err(ApiError(Error::invalid::<Status>(
            "send the body with `Content-Type: application/json`",
        )))
    }
}

async fn rpc(
    State(d): State<Arc<Dashboard>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let method = d.gateway.method(&service, &method).map_err(ApiError)?;
    let authorization = headers.get(header::AUTHORIZATION);
    let answer = if service == "credence.v1.IngestionService" && method.name() == "PublishEvents" {
        publish::publish(&d.gateway, &method, &body, authorization).await
    } else {
        d.gateway.call_json(&method, &body, authorization).await
    }
    .map_err(ApiError)?;
    Ok(json_response(StatusCode::OK, &answer))
}

async fn analytics(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let method = d
        .gateway
        .method("credence.v1.QueryService", "RunAnalytics")
        .map_err(ApiError)?;
    let request = gateway::request_from_json(&method.input(), &body).map_err(ApiError)?;
    let mut answer = d
        .gateway
        .call(&method, &request, headers.get(header::AUTHORIZATION))
        .await
        .map_err(ApiError)?;
    let mut ipc = Vec::new();
    while let Some(part) = answer.next().await.map_err(ApiError)? {
        let part: pb::RunAnalyticsResponse = gateway::decode(part).map_err(ApiError)?;
        ipc.extend_from_slice(&part.arrow_ipc);
    }
    let table = table::to_json(&ipc).map_err(ApiError)?;
    Ok(json_response(StatusCode::OK, &table))
}

async fn alerts(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let method = d
        .gateway
        .method("credence.v1.ScoringService", "WatchAlerts")
        .map_err(ApiError)?;
    let answer = d
        .gateway
        .call(&method, &[], headers.get(header::AUTHORIZATION))
        .await
        .map_err(ApiError)?;
    let output = method.output();
    // A refusal (no token, wrong role) was the error above; from here on, events.
    let events = futures::stream::unfold(Some(answer), move |answer| {
        let output = output.clone();
        async move {
            let mut answer = answer?;
            let event = match answer.next().await {
                Ok(Some(message)) => match gateway::to_json(&output, &message) {
                    Ok(json) => {
                        return Some((Ok(Event::default().data(json.to_string())), Some(answer)));
                    }
                    Err(status) => error_event(&status),
                },
                Ok(None) => return None,
                Err(status) => error_event(&status),
            };
            // After an error event the stream ends.
            Some((Ok::<_, std::convert::Infallible>(event), None))
        }
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    secure_headers(response.headers_mut());
    Ok(response)
}

/// An SSE `error` event carrying the status as the API's error JSON.
fn error_event(status: &Status) -> Event {
    Event::default().event("error").data(
        serde_json::json!({"code": code_name(status.code()), "message": status.message()})
            .to_string(),
    )
}

async fn stats(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(auth) = &d.auth {
        // The counters say how busy the node is: as for any read, the reader role.
        auth.check(
            headers.get(header::AUTHORIZATION),
            Role::Reader,
            "/api/v1/stats",
        )
        .map_err(|refused| ApiError(refused.into()))?;
    }
    let body = stats::snapshot(d.partitions, d.started);
    Ok(json_response(StatusCode::OK, &body))
}
