//! The HTTP API: feeds at runtime, diagnostics, health events as SSE, snapshots, metrics.
//!
//! Bound to 127.0.0.1 unless configured otherwise; with a bearer token configured, every
//! route but `/healthz` and `/readyz` requires it. Errors are JSON `{code, message}` with a
//! stable `code`. Handlers only talk to the runtime through its handle, so a bad request
//! cannot disturb running feeds.

mod json;
mod snapshot;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nv_core::error::{NvError, RuntimeError};
use nv_core::id::FeedId;
use nv_io::broadcast::RecvError;
use nv_metrics::HealthCounters;
use nv_runtime::RuntimeHandle;
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

pub use snapshot::SnapshotStore;

use crate::config::Config;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub runtime: RuntimeHandle,
    pub config: Arc<Config>,
    pub health: HealthCounters,
    pub snapshots: SnapshotStore,
    pub ready: Arc<AtomicBool>,
    /// The declared sinks, shared by the feeds that name them.
    pub sinks: Arc<crate::sinks::SinkSet>,
}

/// An API error: HTTP status, stable code, human message (never credentials).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let (status, code) = match &e {
            RuntimeError::FeedNotFound { .. } => (StatusCode::NOT_FOUND, "feed_not_found"),
            RuntimeError::AlreadyPaused { .. } => (StatusCode::CONFLICT, "already_paused"),
            RuntimeError::NotPaused { .. } => (StatusCode::CONFLICT, "not_paused"),
            RuntimeError::FeedNotRunning { .. } => (StatusCode::CONFLICT, "feed_stopped"),
            RuntimeError::ShutdownInProgress => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            RuntimeError::FeedLimitExceeded { .. } => (StatusCode::CONFLICT, "feed_limit"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<NvError> for ApiError {
    fn from(e: NvError) -> Self {
        match e {
            NvError::Runtime(r) => r.into(),
            NvError::Config(c) => {
                let problems: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
                let mut err = Self::new(StatusCode::BAD_REQUEST, "invalid_config", c.to_string());
                err.details = Some(json!(problems));
                err
            }
            NvError::Media(m) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported_source", m.to_string())
            }
            other => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                other.to_string(),
            ),
        }
    }
}

fn parse_feed_id(raw: &str) -> Result<FeedId, ApiError> {
    raw.parse::<u64>().map(FeedId::new).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_feed_id",
            format!("`{raw}` is not a feed id"),
        )
    })
}

/// Constant-time comparison, so response timing does not leak the token.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn auth(
    State(token): State<Option<Arc<str>>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token_matches(given.as_bytes(), expected.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let token: Option<Arc<str>> = state.config.api.bearer_token.as_deref().map(Arc::from);
    let mut protected = Router::new()
        .route("/api/v1/feeds", get(list_feeds).post(add_feed))
        .route("/api/v1/feeds/{id}", get(get_feed).delete(remove_feed))
        .route("/api/v1/feeds/{id}/pause", post(pause_feed))
        .route("/api/v1/feeds/{id}/resume", post(resume_feed))
        .route("/api/v1/feeds/{id}/snapshot.jpg", get(snapshot_jpeg))
        .route("/api/v1/diagnostics", get(diagnostics))
        .route("/api/v1/events", get(events));
    if state.config.metrics.prometheus {
        protected = protected.route("/metrics", get(metrics));
    }
    let protected = protected.layer(middleware::from_fn_with_state(token, auth));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting or shutting down",
        )
        .into_response()
    }
}

async fn list_feeds(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        s.runtime
            .feeds()
            .iter()
            .map(|f| json::feed(&f.diagnostics()))
            .collect(),
    ))
}

async fn get_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_feed_id(&id)?;
    let feed = s
        .runtime
        .feed(id)
        .ok_or(RuntimeError::FeedNotFound { feed_id: id })?;
    Ok(Json(json::feed(&feed.diagnostics())))
}

async fn add_feed(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    let spec = crate::assemble::feed_from_json(&s.config, value).map_err(|problems| {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            "the feed definition has problems",
        );
        e.details = Some(json!(problems));
        e
    })?;
    let (sink, factory) = s
        .sinks
        .feed_sink(&spec)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", e.to_string()))?;
    let stages = crate::assemble::stages(&spec)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", format!("{e:#}")))?;
    let config = crate::assemble::feed_config(&spec, stages, sink, Some(factory))
        .map_err(|e| ApiError::from(NvError::from(e)))?;
    let handle = s.runtime.add_feed(config)?;
    Ok((StatusCode::CREATED, Json(json::feed(&handle.diagnostics()))))
}

async fn remove_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_feed_id(&id)?;
    let runtime = s.runtime.clone();
    // Removal joins the worker (bounded): keep it off the async threads.
    tokio::task::spawn_blocking(move || runtime.remove_feed(id))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    s.snapshots.forget(id);
    Ok(StatusCode::NO_CONTENT)
}

async fn pause_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_feed_id(&id)?;
    s.runtime
        .feed(id)
        .ok_or(RuntimeError::FeedNotFound { feed_id: id })?
        .pause()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_feed_id(&id)?;
    s.runtime
        .feed(id)
        .ok_or(RuntimeError::FeedNotFound { feed_id: id })?
        .resume()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn diagnostics(State(s): State<AppState>) -> Json<Value> {
    Json(json::runtime(&s.runtime.diagnostics()))
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text = nv_metrics::render_prometheus(&s.runtime.diagnostics(), &s.health);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn snapshot_jpeg(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_feed_id(&id)?;
    if s.runtime.feed(id).is_none() {
        return Err(RuntimeError::FeedNotFound { feed_id: id }.into());
    }
    let jpeg = s
        .snapshots
        .jpeg(id)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "no_snapshot", e))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

/// Health events as Server-Sent Events, one JSON object per event.
async fn events(
    State(s): State<AppState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(256);
    let mut sub = s.runtime.health_subscribe();
    // The subscription is a blocking receiver: bridge it on a blocking thread that ends
    // when the client goes away or the runtime shuts down.
    tokio::task::spawn_blocking(move || loop {
        let msg = match sub.recv_timeout(Duration::from_secs(1)) {
            Ok(e) => json::event(&e),
            Err(RecvError::Lagged(n)) => json!({ "event": "subscriber_lagged", "missed": n }),
            Err(RecvError::Timeout) => {
                if tx.is_closed() {
                    return;
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    });
    let stream = ReceiverStream::new(rx).map(|v| Ok(Event::default().data(v.to_string())));
    Sse::new(stream).keep_alive(KeepAlive::default())
}
