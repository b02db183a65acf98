//! Identifier newtypes.

use std::fmt;

/// Identifies one feed within a runtime. Issued by the runtime from 1 upwards, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedId(u64);

impl FeedId {
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "feed-{}", self.0)
    }
}

/// Identifies a track within one feed. May repeat after a feed restart (the view epoch
/// disambiguates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(u64);

impl TrackId {
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "track-{}", self.0)
    }
}

/// Identifies a detection within one frame's detection set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DetectionId(u64);

impl DetectionId {
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for DetectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "det-{}", self.0)
    }
}

/// Names a stage (or batch processor). Static so that provenance and metrics can carry it
/// without allocating per frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StageId(pub &'static str);

impl StageId {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        assert_eq!(FeedId::new(42).to_string(), "feed-42");
        assert_eq!(TrackId::new(1).to_string(), "track-1");
        assert_eq!(DetectionId::new(2).to_string(), "det-2");
        assert_eq!(StageId::new("detector").to_string(), "detector");
        assert!(FeedId::new(1) < FeedId::new(2));
    }
}
