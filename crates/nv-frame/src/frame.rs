//! The frame envelope.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use nv_core::id::FeedId;
use nv_core::metadata::TypedMetadata;
use nv_core::source::PixelFormat;
use nv_core::time::{MonotonicTs, WallTs};

use crate::bytes::HostBytes;
use crate::layout::{FrameLayout, PlaneView};

/// Where pixel data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    Host,
    Device,
}

/// What host access a frame offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataAccess {
    HostReadable,
    /// Device memory with a materialiser: first host access copies once, then caches.
    MappableToHost,
    Opaque,
}

/// Host access to a frame failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameAccessError {
    #[error("frame data is device-resident with no host materialiser")]
    NotHostAccessible,
    #[error("materialising device frame to host failed: {detail}")]
    MaterializationFailed { detail: String },
}

/// Frame construction rejected its inputs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame dimensions {width}x{height} must both be non-zero")]
    ZeroDimension { width: u32, height: u32 },
    #[error("plane {plane} stride {stride} is shorter than its row payload of {row_bytes} bytes")]
    StrideTooSmall {
        plane: usize,
        stride: usize,
        row_bytes: usize,
    },
    #[error("buffer holds {actual} bytes but the {format} layout needs {required}")]
    BufferTooSmall {
        format: PixelFormat,
        required: usize,
        actual: usize,
    },
}

/// Copies a device frame to host memory. Called at most once per frame.
pub type HostMaterializeFn = Box<dyn Fn() -> Result<HostBytes, FrameAccessError> + Send + Sync>;

enum FrameData {
    Host(HostBytes),
    Device {
        handle: Arc<dyn Any + Send + Sync>,
        materialize: Option<HostMaterializeFn>,
        cache: OnceLock<Result<HostBytes, FrameAccessError>>,
    },
}

struct Inner {
    feed_id: FeedId,
    seq: u64,
    ts: MonotonicTs,
    wall_ts: WallTs,
    width: u32,
    height: u32,
    format: PixelFormat,
    layout: FrameLayout,
    data: FrameData,
    metadata: TypedMetadata,
}

/// An immutable, reference-counted video frame. `clone()` is a reference-count bump.
#[derive(Clone)]
pub struct FrameEnvelope(Arc<Inner>);

impl fmt::Debug for FrameEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameEnvelope")
            .field("feed_id", &self.0.feed_id)
            .field("seq", &self.0.seq)
            .field("ts", &self.0.ts)
            .field("size", &format_args!("{}x{}", self.0.width, self.0.height))
            .field("format", &self.0.format)
            .field("residency", &self.residency())
            .finish()
    }
}

/// Builds a [`FrameEnvelope`], validating the layout against the buffer.
#[derive(Debug)]
pub struct FrameBuilder {
    feed_id: FeedId,
    seq: u64,
    ts: MonotonicTs,
    wall_ts: WallTs,
    width: u32,
    height: u32,
    format: PixelFormat,
    layout: Option<FrameLayout>,
    metadata: TypedMetadata,
}

impl FrameBuilder {
    pub fn wall_ts(mut self, wall_ts: WallTs) -> Self {
        self.wall_ts = wall_ts;
        self
    }
    /// Non-tight layout (row padding, plane offsets) as reported by a decoder.
    pub fn layout(mut self, layout: FrameLayout) -> Self {
        self.layout = Some(layout);
        self
    }
    pub fn metadata(mut self, metadata: TypedMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    fn checked_layout(&self, len: Option<usize>) -> Result<FrameLayout, FrameError> {
        if self.width == 0 || self.height == 0 {
            return Err(FrameError::ZeroDimension {
                width: self.width,
                height: self.height,
            });
        }
        let layout = self
            .layout
            .unwrap_or_else(|| FrameLayout::tight(self.format, self.width, self.height));
        for (i, p) in layout.planes().iter().enumerate() {
            if p.stride < p.row_bytes {
                return Err(FrameError::StrideTooSmall {
                    plane: i,
                    stride: p.stride,
                    row_bytes: p.row_bytes,
                });
            }
        }
        if let Some(actual) = len {
            let required = layout.required_len();
            if actual < required {
                return Err(FrameError::BufferTooSmall {
                    format: self.format,
                    required,
                    actual,
                });
            }
        }
        Ok(layout)
    }

    fn finish(self, layout: FrameLayout, data: FrameData) -> FrameEnvelope {
        FrameEnvelope(Arc::new(Inner {
            feed_id: self.feed_id,
            seq: self.seq,
            ts: self.ts,
            wall_ts: self.wall_ts,
            width: self.width,
            height: self.height,
            format: self.format,
            layout,
            data,
            metadata: self.metadata,
        }))
    }

    /// A host frame.
    pub fn host(self, bytes: HostBytes) -> Result<FrameEnvelope, FrameError> {
        let layout = self.checked_layout(Some(bytes.len()))?;
        Ok(self.finish(layout, FrameData::Host(bytes)))
    }

    /// A device frame; `materialize` (if any) copies it to host memory on first access.
    pub fn device(
        self,
        handle: Arc<dyn Any + Send + Sync>,
        materialize: Option<HostMaterializeFn>,
    ) -> Result<FrameEnvelope, FrameError> {
        let layout = self.checked_layout(None)?;
        Ok(self.finish(
            layout,
            FrameData::Device {
                handle,
                materialize,
                cache: OnceLock::new(),
            },
        ))
    }
}

impl FrameEnvelope {
    pub fn builder(
        feed_id: FeedId,
        seq: u64,
        ts: MonotonicTs,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> FrameBuilder {
        FrameBuilder {
            feed_id,
            seq,
            ts,
            wall_ts: WallTs::UNKNOWN,
            width,
            height,
            format,
            layout: None,
            metadata: TypedMetadata::new(),
        }
    }

    /// A tightly packed host frame owning `data`.
    pub fn new_owned(
        feed_id: FeedId,
        seq: u64,
        ts: MonotonicTs,
        width: u32,
        height: u32,
        format: PixelFormat,
        data: Vec<u8>,
    ) -> Result<Self, FrameError> {
        Self::builder(feed_id, seq, ts, width, height, format).host(HostBytes::from_vec(data))
    }

    pub fn feed_id(&self) -> FeedId {
        self.0.feed_id
    }
    /// Per-feed sequence number, monotonic across reconnects and restarts.
    pub fn seq(&self) -> u64 {
        self.0.seq
    }
    /// Media timestamp (monotonic per feed).
    pub fn ts(&self) -> MonotonicTs {
        self.0.ts
    }
    pub fn wall_ts(&self) -> WallTs {
        self.0.wall_ts
    }
    pub fn width(&self) -> u32 {
        self.0.width
    }
    pub fn height(&self) -> u32 {
        self.0.height
    }
    pub fn format(&self) -> PixelFormat {
        self.0.format
    }
    pub fn layout(&self) -> &FrameLayout {
        &self.0.layout
    }
    /// Stride of the first plane.
    pub fn stride(&self) -> usize {
        self.0.layout.planes().first().map_or(0, |p| p.stride)
    }
    pub fn metadata(&self) -> &TypedMetadata {
        &self.0.metadata
    }
    /// Number of live clones of this frame (diagnostics, tests of zero-copy paths).
    pub fn ref_count(&self) -> usize {
        Arc::strong_count(&self.0)
    }
    /// True when both envelopes are the same allocation.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn residency(&self) -> Residency {
        match self.0.data {
            FrameData::Host(_) => Residency::Host,
            FrameData::Device { .. } => Residency::Device,
        }
    }

    pub fn data_access(&self) -> DataAccess {
        match &self.0.data {
            FrameData::Host(_) => DataAccess::HostReadable,
            FrameData::Device {
                materialize: Some(_),
                ..
            } => DataAccess::MappableToHost,
            FrameData::Device {
                materialize: None, ..
            } => DataAccess::Opaque,
        }
    }

    pub fn is_host_readable(&self) -> bool {
        matches!(self.0.data, FrameData::Host(_))
    }

    /// Host bytes without materialising: `Some` only for host frames.
    pub fn host_data(&self) -> Option<&[u8]> {
        match &self.0.data {
            FrameData::Host(b) => Some(b.as_slice()),
            FrameData::Device { .. } => None,
        }
    }

    /// Host bytes, materialising a device frame once (shared by every clone, cached even
    /// when it fails or the materialiser panics).
    pub fn require_host_data(&self) -> Result<Cow<'_, [u8]>, FrameAccessError> {
        match &self.0.data {
            FrameData::Host(b) => Ok(Cow::Borrowed(b.as_slice())),
            FrameData::Device {
                materialize: None, ..
            } => Err(FrameAccessError::NotHostAccessible),
            FrameData::Device {
                materialize: Some(m),
                cache,
                ..
            } => {
                let result = cache.get_or_init(|| {
                    std::panic::catch_unwind(AssertUnwindSafe(m)).unwrap_or_else(|_| {
                        Err(FrameAccessError::MaterializationFailed {
                            detail: "materialiser panicked".into(),
                        })
                    })
                });
                match result {
                    Ok(bytes) => Ok(Cow::Borrowed(bytes.as_slice())),
                    Err(e) => Err(e.clone()),
                }
            }
        }
    }

    /// Typed access to a device handle.
    pub fn accelerated_handle<T: Any>(&self) -> Option<&T> {
        match &self.0.data {
            FrameData::Device { handle, .. } => handle.downcast_ref::<T>(),
            FrameData::Host(_) => None,
        }
    }

    /// Plane `index` of a host-readable frame (materialising if needed).
    pub fn plane(&self, index: usize) -> Result<Option<PlaneView<'_>>, FrameAccessError> {
        let Some(p) = self.0.layout.planes().get(index).copied() else {
            return Ok(None);
        };
        let data = match self.require_host_data()? {
            Cow::Borrowed(d) => d,
            Cow::Owned(_) => return Err(FrameAccessError::NotHostAccessible),
        };
        Ok(data.get(p.offset..p.end()).map(|d| PlaneView {
            data: d,
            stride: p.stride,
            row_bytes: p.row_bytes,
            rows: p.rows,
        }))
    }

    /// The luma (or grey) plane for formats that have one without conversion:
    /// Gray8, NV12 and I420. Motion analysis reads this directly.
    pub fn luma_plane(&self) -> Result<Option<PlaneView<'_>>, FrameAccessError> {
        match self.0.format {
            PixelFormat::Gray8 | PixelFormat::Nv12 | PixelFormat::I420 => self.plane(0),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn frame(format: PixelFormat, w: u32, h: u32, len: usize) -> Result<FrameEnvelope, FrameError> {
        FrameEnvelope::new_owned(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            w,
            h,
            format,
            vec![0; len],
        )
    }

    #[test]
    fn validates_buffer_and_dimensions() {
        assert!(frame(PixelFormat::Rgb8, 4, 4, 48).is_ok());
        assert_eq!(
            frame(PixelFormat::Rgb8, 4, 4, 47).unwrap_err(),
            FrameError::BufferTooSmall {
                format: PixelFormat::Rgb8,
                required: 48,
                actual: 47
            }
        );
        assert!(matches!(
            frame(PixelFormat::Rgb8, 0, 4, 48),
            Err(FrameError::ZeroDimension { .. })
        ));
        let bad = FrameLayout::with_planes(PixelFormat::Gray8, 4, 2, &[(0, 3)]);
        let err = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            4,
            2,
            PixelFormat::Gray8,
        )
        .layout(bad)
        .host(HostBytes::from_vec(vec![0; 8]))
        .unwrap_err();
        assert!(matches!(
            err,
            FrameError::StrideTooSmall {
                plane: 0,
                stride: 3,
                row_bytes: 4
            }
        ));
    }

    #[test]
    fn clone_shares_allocation() {
        let f = frame(PixelFormat::Gray8, 2, 2, 4).unwrap();
        let g = f.clone();
        assert!(f.ptr_eq(&g));
        assert_eq!(f.ref_count(), 2);
        assert_eq!(
            f.host_data().unwrap().as_ptr(),
            g.host_data().unwrap().as_ptr()
        );
    }

    #[test]
    fn device_frame_materialises_once_across_threads() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let f = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            2,
            2,
            PixelFormat::Gray8,
        )
        .device(
            Arc::new(7u32),
            Some(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(HostBytes::from_vec(vec![9; 4]))
            })),
        )
        .unwrap();
        assert_eq!(f.data_access(), DataAccess::MappableToHost);
        assert_eq!(f.accelerated_handle::<u32>(), Some(&7));
        assert!(f.host_data().is_none());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let f = f.clone();
                s.spawn(move || assert_eq!(&*f.require_host_data().unwrap(), &[9, 9, 9, 9]));
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn materialiser_panic_is_cached_as_error() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let f = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            2,
            2,
            PixelFormat::Gray8,
        )
        .device(
            Arc::new(()),
            Some(Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                panic!("driver exploded")
            })),
        )
        .unwrap();
        for _ in 0..3 {
            assert!(matches!(
                f.require_host_data(),
                Err(FrameAccessError::MaterializationFailed { .. })
            ));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let opaque = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            2,
            2,
            PixelFormat::Gray8,
        )
        .device(Arc::new(()), None)
        .unwrap();
        assert_eq!(
            opaque.require_host_data().unwrap_err(),
            FrameAccessError::NotHostAccessible
        );
    }

    #[test]
    fn planes_of_nv12_with_padding() {
        let layout = FrameLayout::with_planes(PixelFormat::Nv12, 4, 2, &[(0, 8), (16, 8)]);
        let f = FrameEnvelope::builder(
            FeedId::new(1),
            0,
            MonotonicTs::ZERO,
            4,
            2,
            PixelFormat::Nv12,
        )
        .layout(layout)
        .host(HostBytes::from_vec((0..24).collect()))
        .unwrap();
        let y = f.luma_plane().unwrap().unwrap();
        assert_eq!(y.row(1), &[8, 9, 10, 11]);
        let uv = f.plane(1).unwrap().unwrap();
        assert_eq!(uv.row(0), &[16, 17, 18, 19]);
        assert!(f.plane(2).unwrap().is_none());
    }
}
