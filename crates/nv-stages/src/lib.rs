//! Reference perception stages (in progress).
