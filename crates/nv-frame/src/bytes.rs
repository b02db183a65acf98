//! Host pixel storage: owned, shared, or a mapping kept alive by a guard.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

enum Repr {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    Mapped {
        ptr: *const u8,
        len: usize,
        _guard: Box<dyn Any + Send + Sync>,
    },
}

/// Bytes readable on the host.
pub struct HostBytes(Repr);

// SAFETY: the mapped variant's pointer is only read, and the guard that keeps the mapping
// alive is itself Send + Sync; `from_mapped`'s contract makes the memory immutable.
unsafe impl Send for HostBytes {}
// SAFETY: see above; shared access is read-only.
unsafe impl Sync for HostBytes {}

impl HostBytes {
    pub fn from_vec(data: Vec<u8>) -> Self {
        Self(Repr::Owned(data))
    }
    /// Shares one buffer between many frames without copying (synthetic sources, tests).
    pub fn from_shared(data: Arc<[u8]>) -> Self {
        Self(Repr::Shared(data))
    }
    /// Wraps memory owned by something else (a mapped GStreamer buffer).
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unmodified for as long
    /// as `guard` is alive, from any thread.
    pub unsafe fn from_mapped(
        ptr: *const u8,
        len: usize,
        guard: Box<dyn Any + Send + Sync>,
    ) -> Self {
        Self(Repr::Mapped {
            ptr,
            len,
            _guard: guard,
        })
    }
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(v) => v,
            Repr::Shared(a) => a,
            // SAFETY: upheld by the `from_mapped` contract.
            Repr::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped { .. })
    }
}

impl Deref for HostBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for HostBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for HostBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Repr::Owned(_) => "owned",
            Repr::Shared(_) => "shared",
            Repr::Mapped { .. } => "mapped",
        };
        write!(f, "HostBytes({kind}, {} bytes)", self.len())
    }
}
