//! Cross-feed batched processing: one model call for frames of many feeds.

use nv_core::error::StageError;
use nv_core::id::{FeedId, StageId};
use nv_frame::FrameEnvelope;
use nv_view::ViewSnapshot;

use crate::artifacts::StageOutput;
use crate::stage::{StageCapabilities, StageCategory};

/// One frame in a batch. The processor fills `output`; entries left `None` count as empty
/// outputs.
#[derive(Debug)]
#[non_exhaustive]
pub struct BatchEntry {
    pub feed_id: FeedId,
    pub frame: FrameEnvelope,
    pub view: ViewSnapshot,
    pub output: Option<StageOutput>,
}

impl BatchEntry {
    pub fn new(feed_id: FeedId, frame: FrameEnvelope, view: ViewSnapshot) -> Self {
        Self {
            feed_id,
            frame,
            view,
            output: None,
        }
    }
}

/// Processes frames of many feeds together. Runs on its own coordinator thread, so it may
/// take its time (GPU inference); it is never called concurrently with itself.
pub trait BatchProcessor: Send + 'static {
    fn id(&self) -> StageId;

    /// Fills `entries[i].output`. An `Err` (or a panic) fails every entry of this batch and
    /// only this batch.
    fn process(&mut self, entries: &mut [BatchEntry]) -> Result<(), StageError>;

    /// Model loading, warm-up. Bounded by the batch's startup timeout.
    fn on_start(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::FrameAnalysis
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        None
    }
}
