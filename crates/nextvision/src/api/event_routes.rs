//! `GET /api/v1/events/recent` and `GET /api/v1/events/stream`: the recent perception
//! events of [`EventLog`](super::event_list::EventLog), filtered by feed, kind and zone.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::event_list::{Filter, DEFAULT_LIMIT};
use super::{ApiError, AppState};

/// Longest filter value looked at (names are short; ids are numbers).
const MAX_FILTER_CHARS: usize = 256;

/// The query of both routes; numbers are parsed here so a bad one is named in the error.
#[derive(Debug, serde::Deserialize)]
pub struct EventQuery {
    feed: Option<String>,
    kind: Option<String>,
    zone: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

fn bad_query(field: &str, value: &str, why: &str) -> ApiError {
    let shown: String = value.chars().take(64).collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        format!("{field}: `{}` {why}", shown.escape_debug()),
    )
}

impl EventQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let field = |name: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
            match v.as_deref() {
                None | Some("") => Ok(None),
                Some(s) if s.chars().count() > MAX_FILTER_CHARS => Err(bad_query(
                    name,
                    s,
                    &format!("is longer than {MAX_FILTER_CHARS} characters"),
                )),
                Some(s) => Ok(Some(s.to_owned())),
            }
        };
        Ok(Filter {
            feed: field("feed", &self.feed)?,
            kind: field("kind", &self.kind)?,
            zone: field("zone", &self.zone)?,
        })
    }

    fn number(field: &str, v: Option<&str>) -> Result<Option<u64>, ApiError> {
        v.map(|s| {
            s.parse::<u64>()
                .map_err(|_| bad_query(field, s, "is not a whole number"))
        })
        .transpose()
    }
}

/// The newest kept events (newest first) matching the filters, at most `limit` (1 to
/// `api.recent_events`, 100 by default), with the stream figures and the `last_seq` to
/// resume a stream from.
pub async fn recent(
    State(s): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = q.filter()?;
    let max = s.event_log.capacity();
    let limit = match EventQuery::number("limit", q.limit.as_deref())? {
        None => DEFAULT_LIMIT.min(max),
        Some(n) if n == 0 || n > max as u64 => {
            return Err(bad_query(
                "limit",
                &n.to_string(),
                &format!("must be within 1..={max} (api.recent_events)"),
            ))
        }
        Some(n) => n as usize,
    };
    let (list, last_seq) = s.event_log.list(&filter, limit);
    let stats = s.event_log.stats();
    let events: Vec<Value> = list
        .iter()
        .filter_map(|e| serde_json::from_str(&e.json).ok())
        .collect();
    Ok(Json(json!({
        "events": events,
        "last_seq": last_seq,
        "kept": stats.kept,
        "capacity": max,
        "stream_clients": stats.clients,
        "max_stream_clients": s.event_log.max_clients(),
        "stream_clients_dropped_slow": stats.dropped_slow,
    })))
}

/// New events matching the filters as Server-Sent Events (`id:` = the event's `seq`,
/// `data:` = the event record). `?after=SEQ` (or `Last-Event-ID`) first sends the kept
/// events after that one. A client that falls [`CLIENT_BUFFER`] events behind gets an
/// `event: dropped` message and the stream ends.
///
/// [`CLIENT_BUFFER`]: super::event_list::CLIENT_BUFFER
pub async fn stream(
    State(s): State<AppState>,
    Query(q): Query<EventQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = q.filter()?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let after = match last_id {
        Some(v) => EventQuery::number("Last-Event-ID", Some(v))?,
        None => EventQuery::number("after", q.after.as_deref())?,
    };
    let Some(sub) = s.event_log.subscribe(filter, after) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_event_clients",
            format!(
                "{} event list streams are open (api.max_event_stream_clients)",
                s.event_log.max_clients()
            ),
        ));
    };
    let state = (sub, false);
    let stream = futures_util::stream::unfold(state, |(mut sub, ended)| async move {
        if ended {
            return None;
        }
        let entry = match sub.backlog.pop_front() {
            Some(e) => Some(e),
            None => sub.live.recv().await,
        };
        let (ev, ended) = match entry {
            Some(e) => (Event::default().id(e.seq.to_string()).data(&e.json), false),
            None if sub.dropped.load(Ordering::Acquire) => (
                Event::default().event("dropped").data(
                    json!({
                        "code": "too_slow",
                        "message": "this client fell too far behind and was dropped; list the recent events and reconnect",
                    })
                    .to_string(),
                ),
                true,
            ),
            None => return None,
        };
        Some((Ok::<_, Infallible>(ev), (sub, ended)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
