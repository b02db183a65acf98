//! Bounded ring of a track's recent observations that snapshots can share without copying.
//!
//! Stages read observations as one contiguous slice, which a `VecDeque` cannot lend once it
//! wraps. Instead the ring appends to a `Vec` behind an `Arc` and moves a start index: a
//! snapshot clones the `Arc` and remembers the index. The store only writes to the `Vec`
//! while no snapshot shares it; when one still does (a stage kept last frame's snapshot),
//! the live window is copied first, so snapshots stay immutable.

use std::sync::Arc;

use nv_perception::TrackObservation;

#[derive(Clone, Debug)]
pub(crate) struct ObservationRing {
    buf: Arc<Vec<TrackObservation>>,
    /// Index of the oldest live observation; everything before it is dead.
    start: usize,
    capacity: usize,
}

/// A frozen view of a ring's live window, owned by a snapshot.
#[derive(Clone, Debug)]
pub(crate) struct ObservationWindow {
    buf: Arc<Vec<TrackObservation>>,
    start: usize,
}

impl ObservationWindow {
    pub(crate) fn as_slice(&self) -> &[TrackObservation] {
        self.buf.get(self.start..).unwrap_or_default()
    }
}

impl ObservationRing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            buf: Arc::new(Vec::new()),
            start: 0,
            capacity,
        }
    }

    pub(crate) fn as_slice(&self) -> &[TrackObservation] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(crate) fn window(&self) -> ObservationWindow {
        ObservationWindow {
            buf: Arc::clone(&self.buf),
            start: self.start,
        }
    }

    pub(crate) fn push(&mut self, observation: TrackObservation) {
        if Arc::get_mut(&mut self.buf).is_none() {
            self.buf = Arc::new(self.as_slice().to_vec());
            self.start = 0;
        }
        // Unique now, so this never clones.
        let buf = Arc::make_mut(&mut self.buf);
        buf.push(observation);
        if buf.len() - self.start > self.capacity {
            self.start += 1;
        }
        // Compacting only once the dead prefix is as long as the window keeps pushes
        // amortised O(1) and memory within twice the capacity.
        if self.start >= self.capacity {
            buf.drain(..self.start);
            self.start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::geometry::BBox;
    use nv_core::time::MonotonicTs;
    use nv_perception::TrackState;

    fn obs(n: u64) -> TrackObservation {
        TrackObservation::new(
            MonotonicTs::from_nanos(n),
            BBox::default(),
            1.0,
            TrackState::Confirmed,
            None,
        )
    }

    fn stamps(slice: &[TrackObservation]) -> Vec<u64> {
        slice.iter().map(|o| o.ts.as_nanos()).collect()
    }

    #[test]
    fn keeps_the_newest_capacity_items() {
        let mut ring = ObservationRing::new(3);
        for n in 0..10 {
            ring.push(obs(n));
            assert!(ring.len() <= 3);
        }
        assert_eq!(stamps(ring.as_slice()), vec![7, 8, 9]);
        assert!(ring.buf.len() <= 6);
    }

    #[test]
    fn window_is_frozen_while_ring_moves_on() {
        let mut ring = ObservationRing::new(2);
        ring.push(obs(1));
        ring.push(obs(2));
        let window = ring.window();
        ring.push(obs(3));
        ring.push(obs(4));
        assert_eq!(stamps(window.as_slice()), vec![1, 2]);
        assert_eq!(stamps(ring.as_slice()), vec![3, 4]);
    }

    #[test]
    fn pushes_in_place_once_windows_are_gone() {
        let mut ring = ObservationRing::new(4);
        ring.push(obs(1));
        let before = Arc::as_ptr(&ring.buf);
        ring.push(obs(2));
        assert_eq!(Arc::as_ptr(&ring.buf), before);
        let window = ring.window();
        ring.push(obs(3));
        assert_ne!(Arc::as_ptr(&ring.buf), Arc::as_ptr(&window.buf));
    }
}
