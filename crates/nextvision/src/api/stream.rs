//! `GET /api/v1/feeds/{id}/stream.mjpeg`: a live annotated view as
//! `multipart/x-mixed-replace` JPEG parts.
//!
//! Bounded twice: a stream sends at most `api.stream_max_fps` frames a second (less when
//! the client asks with `?fps=`), skipping frames it has no time for rather than queueing
//! them, and at most `api.max_stream_clients` streams run at once (503 beyond). Each part
//! reuses the snapshot store's JPEG of the frame, so clients add no encoding work. A
//! stream is an async task on the API's runtime: no thread per client. A feed without a
//! frame yet is answered 404 `no_snapshot`, like its snapshot; a stream whose feed sends
//! no new frame repeats the newest every [`RESEND_AFTER`], so a client that went away is
//! noticed and its slot freed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use nv_core::id::FeedId;

use super::{find_feed, ApiError, AppState, SnapshotStore};

/// The part boundary (the `boundary=` of the content type).
pub const BOUNDARY: &str = "nextvision-frame";

/// Counts running streams against the cap.
#[derive(Debug)]
pub struct StreamClients {
    running: AtomicUsize,
    max: usize,
}

/// One running stream's place; given back when the stream's body is dropped.
#[derive(Debug)]
pub struct StreamSlot(Arc<StreamClients>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamClients {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            running: AtomicUsize::new(0),
            max,
        })
    }

    /// A slot, or `None` when `max` streams run.
    pub fn try_slot(self: &Arc<Self>) -> Option<StreamSlot> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamSlot(Arc::clone(self)))
    }

    #[cfg(test)]
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    /// Frames per second wanted; capped at `api.stream_max_fps`.
    fps: Option<f64>,
    /// Largest width wanted, as for snapshots.
    width: Option<u32>,
}

/// One multipart part holding a JPEG.
fn part(jpeg: &[u8], seq: u64) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Seq: {seq}\r\n\r\n",
        jpeg.len()
    );
    let mut b = Vec::with_capacity(head.len() + jpeg.len() + 2);
    b.extend_from_slice(head.as_bytes());
    b.extend_from_slice(jpeg);
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

struct Streamer {
    store: SnapshotStore,
    feed: FeedId,
    width: Option<u32>,
    frames: tokio::sync::watch::Receiver<u64>,
    interval: Duration,
    next_at: Option<tokio::time::Instant>,
    _slot: StreamSlot,
}

impl Streamer {
    /// The next part: waits for the pacing interval, then for a frame newer than the
    /// last one sent (the newest frame is sent again after [`RESEND_AFTER`] without one,
    /// which also finds clients that went away). `None` ends the stream: the feed is gone.
    async fn next_part(&mut self) -> Option<Bytes> {
        let first = self.next_at.is_none();
        if let Some(at) = self.next_at {
            tokio::time::sleep_until(at).await;
        }
        let mut wait = !first;
        loop {
            if wait {
                match tokio::time::timeout(RESEND_AFTER, self.frames.changed()).await {
                    Ok(Ok(())) | Err(_) => {}
                    Ok(Err(_)) => return None,
                }
            }
            wait = true;
            self.frames.borrow_and_update();
            match self.store.jpeg(self.feed, self.width) {
                Ok((seq, _, jpeg)) => {
                    self.next_at = Some(tokio::time::Instant::now() + self.interval);
                    return Some(part(&jpeg, seq));
                }
                // No frame yet, or one that cannot be encoded: wait for the next.
                Err(e) => tracing::debug!(feed = self.feed.as_u64(), error = %e, "stream frame"),
            }
        }
    }
}

/// How long a stream without new frames waits before it sends the newest one again.
const RESEND_AFTER: Duration = Duration::from_secs(10);

pub async fn mjpeg(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let feed = find_feed(&s, &id)?.id();
    let max_fps = s.config.api.stream_max_fps;
    let fps = match q.fps {
        None => max_fps,
        Some(f) if f.is_finite() && f > 0.0 => f.min(max_fps),
        Some(f) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("fps `{f}` must be a positive number"),
            ))
        }
    };
    // A stream starts only on a feed that has a frame: one that never gets any
    // (no `snapshot_fps`) would hold a client slot without ever writing to the client.
    if let Err(e) = s.snapshots.jpeg(feed, q.width) {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_snapshot", e));
    }
    let Some(slot) = s.streams.try_slot() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_stream_clients",
            format!(
                "{} streams are running (api.max_stream_clients)",
                s.config.api.max_stream_clients
            ),
        ));
    };
    let streamer = Streamer {
        frames: s.snapshots.frames(feed),
        store: s.snapshots.clone(),
        feed,
        width: q.width,
        interval: Duration::from_secs_f64(1.0 / fps),
        next_at: None,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(streamer, |mut st| async move {
        let part = st.next_part().await?;
        Some((Ok::<_, std::convert::Infallible>(part), st))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_given_back() {
        let c = StreamClients::new(2);
        let a = c.try_slot();
        let b = c.try_slot();
        assert!(a.is_some() && b.is_some());
        assert!(c.try_slot().is_none());
        drop(a);
        assert_eq!(c.running(), 1);
        assert!(c.try_slot().is_some());
        drop(b);
        assert_eq!(c.running(), 0);
    }

    #[test]
    fn a_part_announces_its_length() {
        let p = part(b"JPEG", 7);
        let text = String::from_utf8_lossy(&p);
        assert!(text.starts_with("--nextvision-frame\r\nContent-Type: image/jpeg\r\n"));
        assert!(text.contains("Content-Length: 4\r\nX-Frame-Seq: 7\r\n\r\nJPEG\r\n"));
    }
}
