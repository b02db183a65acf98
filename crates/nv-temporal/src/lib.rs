//! Per-feed temporal state (in progress).
