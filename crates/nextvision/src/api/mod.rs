//! The HTTP API: feeds at runtime, diagnostics, health events as SSE, snapshots, metrics.
//!
//! Bound to 127.0.0.1 unless configured otherwise; with a bearer token configured, every
//! route but `/healthz` and `/readyz` requires it. Errors are JSON `{code, message}` with a
//! stable `code`. Handlers only talk to the runtime through its handle, so a bad request
//! cannot disturb running feeds.

mod annotate;
pub mod event_list;
mod event_routes;
pub mod event_snapshots;
pub mod events;
mod font;
mod json;
mod snapshot;
mod stream;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nv_core::error::{NvError, RuntimeError};
use nv_core::id::FeedId;
use nv_metrics::HealthCounters;
use nv_runtime::RuntimeHandle;
use serde_json::{json, Value};

pub use snapshot::{overlay_of, overlay_of_zones, SnapshotStore};
pub use stream::StreamClients;

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
    /// Serialises feed additions so two requests cannot both claim one name.
    pub add_lock: Arc<tokio::sync::Mutex<()>>,
    pub events: Arc<events::EventHub>,
    /// Running MJPEG streams, against `api.max_stream_clients`.
    pub streams: Arc<StreamClients>,
    pub event_snapshots: Arc<event_snapshots::EventSnapshots>,
    /// Recent perception events and their stream clients.
    pub event_log: Arc<event_list::EventLog>,
    /// Run-time zone and line edits, by feed name.
    pub zone_editors: Arc<crate::zone_edit::ZoneEditors>,
    /// The fleet's store, in cluster mode.
    pub cluster: Option<Arc<dyn nv_cluster::Kv>>,
    /// This node's cluster counters, in cluster mode.
    pub cluster_node: Option<crate::cluster::NodeCounters>,
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
        let message = nv_core::security::redact_urls_in_string(&self.message);
        let mut body = json!({ "code": self.code, "message": message });
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

/// A feed by numeric id or by name (names are never all digits, so the two cannot clash).
fn find_feed(s: &AppState, raw: &str) -> Result<nv_runtime::FeedHandle, ApiError> {
    if let Ok(n) = raw.parse::<u64>() {
        let id = FeedId::new(n);
        return s
            .runtime
            .feed(id)
            .ok_or_else(|| RuntimeError::FeedNotFound { feed_id: id }.into());
    }
    s.runtime
        .feeds()
        .into_iter()
        .find(|f| f.name() == raw)
        .ok_or_else(|| {
            let shown: String = raw.chars().take(nv_core::limits::MAX_NAME_CHARS).collect();
            ApiError::new(
                StatusCode::NOT_FOUND,
                "feed_not_found",
                format!("no feed with id or name `{}`", shown.escape_debug()),
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
        .route("/api/v1/feeds/{id}/stream.mjpeg", get(stream::mjpeg))
        .route("/api/v1/events/{id}/snapshot.jpg", get(event_snapshot))
        .route("/api/v1/events/recent", get(event_routes::recent))
        .route("/api/v1/events/stream", get(event_routes::stream))
        .route("/api/v1/feeds/{id}/overlay", get(feed_overlay))
        .route("/api/v1/sinks", get(list_sinks))
        .route("/api/v1/cluster", get(cluster_status))
        .route("/api/v1/feeds/{id}/analytics", get(get_analytics))
        .route("/api/v1/feeds/{id}/zones", get(get_zones).put(put_zones))
        .route("/api/v1/diagnostics", get(diagnostics))
        .route("/api/v1/events", get(events));
    if state.config.metrics.prometheus {
        protected = protected.route("/metrics", get(metrics));
    }
    let protected = protected.layer(middleware::from_fn_with_state(token, auth));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(crate::console::router())
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn(announced_body_limit))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(middleware::map_response(json_errors))
        .with_state(state)
}

/// Largest request body the API reads (a feed definition is a few hundred bytes).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Refuses a body announced (Content-Length) above the limit before reading any of it;
/// chunked bodies are cut at the limit by `DefaultBodyLimit`.
async fn announced_body_limit(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body must be at most {MAX_REQUEST_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Gives every error status the JSON `{code, message}` body, including the ones axum
/// answers itself (405 wrong method, 413 body too large, 415, 422 ...).
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "client_error",
    };
    let (mut parts, body) = response.into_parts();
    // axum's own rejection text is short and names no credentials; cap it anyway.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body =
        json!({ "code": code, "message": nv_core::security::redact_urls_in_string(&message) });
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// Ready once started and not draining, and (with `ready_requires_feeds`, the default)
/// while no feed has failed.
async fn readyz(State(s): State<AppState>) -> Response {
    if !s.ready.load(Ordering::SeqCst) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting or shutting down",
        )
        .into_response();
    }
    if s.config.api.ready_requires_feeds {
        let failed: Vec<Value> = s
            .runtime
            .feeds()
            .iter()
            .filter_map(|f| match f.state() {
                nv_core::FeedState::Failed { kind, cause } => Some(json!({
                    "id": f.id().as_u64(),
                    "name": f.name(),
                    "kind": kind.as_str(),
                    "cause": cause,
                })),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "feeds_failed",
                format!("{} feed(s) failed", failed.len()),
            );
            e.details = Some(Value::Array(failed));
            return e.into_response();
        }
    }
    (StatusCode::OK, "ready").into_response()
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
    let feed = find_feed(&s, &id)?;
    Ok(Json(json::feed(&feed.diagnostics())))
}

async fn get_analytics(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let feed = find_feed(&s, &id)?;
    Ok(Json(json::analytics(&feed.diagnostics())))
}

fn zone_editor(
    s: &AppState,
    feed: &nv_runtime::FeedHandle,
) -> Result<nv_stages::ZoneEditor, ApiError> {
    s.zone_editors.get(feed.name()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_zones_stage",
            format!("feed `{}` has no zones stage", feed.name()),
        )
    })
}

async fn get_zones(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let feed = find_feed(&s, &id)?;
    let editor = zone_editor(&s, &feed)?;
    Ok(Json(crate::zone_edit::to_json(&editor.current())))
}

/// Replaces the feed's zones and lines; answers once the stage applied the edit at a
/// frame boundary (`applied: true`) or after 2 s (`applied: false`: the feed is paused,
/// stopped or slow; the edit applies at its next frame).
async fn put_zones(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let parse_body = || {
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))
    };
    // On a cluster node: the fleet's spec, applied in place by the feed's owner (202).
    if let Some(kv) = s.cluster.clone() {
        let name = fleet_name(&s, &id)?;
        let value = parse_body()?;
        let revision =
            fleet_edit(move || crate::cluster::edit::set_zones(kv.as_ref(), &name, value)).await?;
        return Ok((StatusCode::ACCEPTED, Json(json!({ "revision": revision }))).into_response());
    }
    let feed = find_feed(&s, &id)?;
    let editor = zone_editor(&s, &feed)?;
    let value = parse_body()?;
    let config = crate::zone_edit::parse(value).map_err(|problems| {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            "the zones have problems",
        );
        e.details = Some(json!(problems));
        e
    })?;
    let detail = crate::zone_edit::describe(&config);
    let edit = editor.submit(config).map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_config",
            "the zones have problems",
        );
        err.details = Some(json!(e
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()));
        err
    })?;
    feed.report_config_changed(detail);
    let waiter = editor.clone();
    let applied = tokio::task::spawn_blocking(move || {
        waiter.wait_applied(edit, std::time::Duration::from_secs(2))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let current = editor.current();
    // Snapshots and streams draw the zones and lines now in force.
    s.snapshots
        .set_overlay(feed.id(), feed.name(), overlay_of_zones(&current));
    let mut v = crate::zone_edit::to_json(&current);
    v["applied"] = json!(applied);
    v["edit"] = json!(edit);
    Ok(Json(v).into_response())
}

/// A fleet edit's failure as the API answers it.
fn edit_error(e: crate::cluster::edit::EditError) -> ApiError {
    use crate::cluster::edit::EditError as E;
    let message = nv_core::error::cause_chain(&e);
    match e {
        E::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "feed_not_found", message),
        E::Exists(_) => ApiError::new(StatusCode::CONFLICT, "feed_exists", message),
        E::NoZones(_) => ApiError::new(StatusCode::NOT_FOUND, "no_zones_stage", message),
        E::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "edit_conflict", message),
        E::Invalid(problems) => {
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", message);
            err.details = Some(json!(problems));
            err
        }
        E::Store(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster_unavailable",
            message,
        ),
    }
}

/// Runs a fleet edit (blocking store requests) off the async threads.
async fn fleet_edit<T: Send + 'static>(
    edit: impl FnOnce() -> Result<T, crate::cluster::edit::EditError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(edit)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(edit_error)
}

/// The fleet's name for `{id}`: a name as given (the feed may run on another node), a
/// numeric id as the name of this node's feed.
fn fleet_name(s: &AppState, raw: &str) -> Result<String, ApiError> {
    if raw.parse::<u64>().is_ok() {
        Ok(find_feed(s, raw)?.name().to_owned())
    } else {
        Ok(raw.to_owned())
    }
}

/// On a cluster node: the fleet's pause marker of feed `id`, set or cleared in the bucket.
async fn fleet_pause(s: &AppState, id: &str, paused: bool) -> Option<Result<StatusCode, ApiError>> {
    let kv = s.cluster.clone()?;
    let name = match fleet_name(s, id) {
        Ok(n) => n,
        Err(e) => return Some(Err(e)),
    };
    Some(
        fleet_edit(move || crate::cluster::edit::set_paused(kv.as_ref(), &name, paused))
            .await
            .map(|_| StatusCode::ACCEPTED),
    )
}

/// Adds a feed: to this node's runtime, or on a cluster node to the fleet's bucket (202:
/// the node the fleet assigns it to starts it).
async fn add_feed(
    State(s): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object with the [[feeds]] keys",
        ));
    }
    if let Some(kv) = s.cluster.clone() {
        let config = Arc::clone(&s.config);
        let (name, revision) =
            fleet_edit(move || crate::cluster::edit::add(kv.as_ref(), &config, value)).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "name": name, "revision": revision })),
        ));
    }
    let _adding = s.add_lock.lock().await;
    let running = s.runtime.feeds();
    let taken = |name: &str| running.iter().any(|f| f.name() == name);
    let spec = crate::assemble::feed_from_json(&s.config, value, &taken).map_err(|problems| {
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
    let stages = crate::assemble::stages(&spec, &s.zone_editors)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", format!("{e:#}")))?;
    let config = crate::assemble::feed_config(&spec, stages, sink, Some(factory))
        .map_err(|e| ApiError::from(NvError::from(e)))?;
    let handle = s.runtime.add_feed(config)?;
    s.snapshots
        .set_overlay(handle.id(), &spec.section.name, overlay_of(&spec.stages));
    Ok((StatusCode::CREATED, Json(json::feed(&handle.diagnostics()))))
}

async fn remove_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(kv) = s.cluster.clone() {
        let name = fleet_name(&s, &id)?;
        fleet_edit(move || crate::cluster::edit::remove(kv.as_ref(), &name)).await?;
        return Ok(StatusCode::ACCEPTED);
    }
    let feed = find_feed(&s, &id)?;
    let (id, name) = (feed.id(), feed.name().to_owned());
    let runtime = s.runtime.clone();
    // Removal joins the worker (bounded): keep it off the async threads.
    tokio::task::spawn_blocking(move || runtime.remove_feed(id))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    s.snapshots.forget(id);
    s.health.forget_feed(id.as_u64());
    s.zone_editors.forget(&name);
    forget_removed_feeds(&s);
    Ok(StatusCode::NO_CONTENT)
}

async fn pause_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(done) = fleet_pause(&s, &id, true).await {
        return done;
    }
    find_feed(&s, &id)?.pause()?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resume_feed(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(done) = fleet_pause(&s, &id, false).await {
        return done;
    }
    find_feed(&s, &id)?.resume()?;
    Ok(StatusCode::NO_CONTENT)
}

/// The zones and lines drawn on the feed's frames, with the newest frame's counts.
async fn feed_overlay(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = find_feed(&s, &id)?.id();
    let o = s.snapshots.overlay_with_counts(id);
    // Through the shortest decimal text, so 0.2 stays 0.2 rather than 0.20000000298...
    let num = |v: f32| {
        v.to_string()
            .parse::<f64>()
            .map_or(Value::Null, |f| json!(f))
    };
    let point = |p: nv_core::geometry::Point2| json!([num(p.x), num(p.y)]);
    Ok(Json(json!({
        "zones": o.zones.iter().map(|z| json!({
            "name": z.name,
            "points": z.points.iter().copied().map(point).collect::<Vec<_>>(),
            "occupancy": z.occupancy,
        })).collect::<Vec<_>>(),
        "lines": o.lines.iter().map(|l| json!({
            "name": l.name,
            "from": point(l.from),
            "to": point(l.to),
            "crossings": l.crossings.map(|(lr, rl)| json!({
                "left_to_right": lr,
                "right_to_left": rl,
            })),
        })).collect::<Vec<_>>(),
    })))
}

/// The fleet: nodes, and every feed with its owner, fencing token and assigned node (any
/// node answers for all). 404 `not_clustered` without a `[cluster]` section.
async fn cluster_status(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(kv) = s.cluster.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_clustered",
            "this daemon runs without a [cluster] section",
        ));
    };
    let view = tokio::task::spawn_blocking(move || nv_cluster::ClusterView::read(kv.as_ref()))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                e.to_string(),
            )
        })?;
    let nodes: Vec<Value> = view
        .all_nodes
        .iter()
        .map(|n| {
            let feeds = view
                .leases
                .values()
                .filter(|(l, _)| l.node == n.node)
                .count();
            json!({
                "node": n.node,
                "weight": n.weight,
                "accepting": n.accepting,
                "feeds": feeds,
                "refused": n.refused.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    let feeds: Vec<Value> = crate::cluster::feed_rows(&view)
        .into_iter()
        .map(|r| json!({ "name": r.name, "owner": r.owner, "fence": r.fence, "assigned": r.assigned }))
        .collect();
    let this_node = s.cluster_node.as_ref().map(|c| {
        json!({
            "node": c.node,
            "fenced_outputs": c.fenced_outputs.load(Ordering::Relaxed),
            "handovers_reported": c.handovers_reported.load(Ordering::Relaxed),
            "handover_reports_lost": c.handover_reports_lost.load(Ordering::Relaxed),
        })
    });
    Ok(Json(
        json!({ "nodes": nodes, "feeds": feeds, "this_node": this_node }),
    ))
}

/// Every sink built so far with its delivery figures.
async fn list_sinks(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        s.sinks
            .built()
            .iter()
            .map(|k| {
                let mut v = json!(k.stats().snapshot());
                v["name"] = json!(k.name());
                v
            })
            .collect(),
    ))
}

async fn diagnostics(State(s): State<AppState>) -> Json<Value> {
    let diag = s.runtime.diagnostics();
    Json(json::runtime(
        &nv_metrics::Snapshot::new(&diag, &s.health).with_process(crate::build_info()),
    ))
}

/// Drops per-feed state of feeds that are gone (metric series, snapshots). Events of a
/// removed feed counted after this (its last `feed_stopped`) go at the next call, so the
/// tables stay bounded by the feeds alive plus the few removed since.
fn forget_removed_feeds(s: &AppState) {
    let live: std::collections::HashSet<u64> =
        s.runtime.feeds().iter().map(|f| f.id().as_u64()).collect();
    s.health.retain_feeds(|id| live.contains(&id));
    s.snapshots.retain(|id| live.contains(&id.as_u64()));
}

async fn metrics(State(s): State<AppState>) -> Response {
    forget_removed_feeds(&s);
    let diag = s.runtime.diagnostics();
    let text = nv_metrics::render(
        &nv_metrics::Snapshot::new(&diag, &s.health).with_process(crate::build_info()),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct SnapshotQuery {
    /// Largest width wanted (a smaller image, drawn at that size).
    width: Option<u32>,
}

/// The newest annotated frame. Its `ETag` names the feed and frame, so a client polling
/// with `If-None-Match` gets a bodiless 304 until a newer frame exists.
async fn snapshot_jpeg(
    State(s): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<SnapshotQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = find_feed(&s, &id)?.id();
    let (seq, width, jpeg) = s
        .snapshots
        .jpeg(id, q.width)
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "no_snapshot", e))?;
    let etag = format!("\"{}-{seq}-{width}\"", id.as_u64());
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let head = [
        (header::CONTENT_TYPE, "image/jpeg".to_owned()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, etag),
        (
            header::HeaderName::from_static("x-frame-seq"),
            seq.to_string(),
        ),
    ];
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, head).into_response());
    }
    Ok((head, axum::body::Bytes::from_owner(jpeg)).into_response())
}

async fn event_snapshot(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let jpeg = s.event_snapshots.get(&id).ok_or_else(|| {
        let shown: String = id.chars().take(event_snapshots::MAX_ID_CHARS).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "snapshot_not_found",
            format!(
                "no snapshot kept for event `{}` (the oldest go first: api.event_snapshots)",
                shown.escape_debug()
            ),
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, "image/jpeg")],
        axum::body::Bytes::from_owner(jpeg),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    /// Replay kept records with a larger id (like `Last-Event-ID`, which wins).
    after: Option<u64>,
}

/// Health records as Server-Sent Events (`id:` = record id, `data:` = the JSON record).
/// A client that reconnects with `Last-Event-ID` (or passes `?after=ID`) first receives
/// the kept records it missed; a new client receives every kept record. Clients are
/// async streams on the API's runtime, capped by `api.max_event_clients`.
async fn events(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(slot) = s.events.try_client() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_event_clients",
            format!(
                "{} event stream clients are connected (api.max_event_clients)",
                s.config.api.max_event_clients
            ),
        ));
    };
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(q.after);
    let sub = s.events.subscribe(last_id);
    let mut backlog = sub.backlog;
    if sub.missed > 0 {
        // Say so first: the history no longer holds everything after the client's id.
        backlog.push_front(Arc::new(events::Record {
            id: 0,
            json: events::lagged_record(sub.missed),
        }));
    }
    let state = (backlog, sub.live, slot);
    let stream = futures_util::stream::unfold(state, |(mut backlog, mut live, slot)| async move {
        if let Some(r) = backlog.pop_front() {
            let ev = sse_event(&r);
            return Some((Ok::<_, Infallible>(ev), (backlog, live, slot)));
        }
        let ev = match live.recv().await {
            Ok(r) => sse_event(&r),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                Event::default().data(events::lagged_record(n))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(ev), (backlog, live, slot)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_event(r: &events::Record) -> Event {
    // `id:` before `data:`, so line-by-line readers can pair them.
    if r.id == 0 {
        Event::default().data(&r.json)
    } else {
        Event::default().id(r.id.to_string()).data(&r.json)
    }
}
