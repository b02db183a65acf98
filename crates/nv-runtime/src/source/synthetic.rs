//! Built-in synthetic source: moving rectangles on a dark background, no media stack.
//!
//! Frames of one spec are rendered once per motion cycle and shared (zero-copy) by every
//! feed and every session that uses the spec, so thousands of synthetic feeds cost the
//! memory of one. Paced sources share one timer thread per factory; unpaced ones (and
//! paced ones on a blocking feed) get their own producer thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::error::MediaError;
use nv_core::geometry::BBox;
use nv_core::metadata::TypedMetadata;
use nv_core::source::{PixelFormat, SourceSpec, SyntheticSpec};
use nv_core::time::MonotonicTs;
use nv_frame::{FrameEnvelope, HostBytes};
use parking_lot::Mutex;

use super::{FrameSink, PushOutcome, Source, SourceContext, SourceFactory, TickOutcome};
use crate::queue::Overflow;
use crate::sync::Waiter;

/// Ground truth attached to every synthetic frame: the boxes of the drawn objects.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticTruth {
    pub boxes: Vec<BBox>,
}

/// Upper bound of pre-rendered pixel memory per spec.
const CYCLE_BUDGET_BYTES: usize = 64 * 1024 * 1024;
const MAX_CYCLE_FRAMES: usize = 180;
/// Nominal frame interval for unpaced sources' timestamps.
const UNPACED_INTERVAL: Duration = Duration::from_nanos(33_333_333);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CycleKey {
    width: u32,
    height: u32,
    format: PixelFormat,
    objects: u32,
    seed: u64,
}

/// One motion cycle of pre-rendered frames.
#[derive(Debug)]
struct Cycle {
    frames: Vec<Arc<[u8]>>,
    truth: Vec<SyntheticTruth>,
}

fn lcg(state: &mut u64) -> f32 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((*state >> 40) as f32) / ((1u64 << 24) as f32)
}

fn triangle(t: f32) -> f32 {
    let f = t.rem_euclid(1.0);
    if f < 0.5 {
        f * 2.0
    } else {
        2.0 - f * 2.0
    }
}

fn object_boxes(key: &CycleKey, cycle_len: usize) -> Vec<SyntheticTruth> {
    let mut rng = key.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let params: Vec<(f32, f32, f32, f32, f32, f32)> = (0..key.objects)
        .map(|_| {
            let size_w = 0.06 + 0.06 * lcg(&mut rng);
            let size_h = 0.08 + 0.06 * lcg(&mut rng);
            // Whole numbers of bounces per cycle keep the motion periodic.
            let bx = 1.0 + (lcg(&mut rng) * 2.0).floor();
            let by = 1.0 + (lcg(&mut rng) * 2.0).floor();
            (size_w, size_h, bx, by, lcg(&mut rng), lcg(&mut rng))
        })
        .collect();
    (0..cycle_len)
        .map(|i| {
            let t = i as f32 / cycle_len as f32;
            let boxes = params
                .iter()
                .map(|&(w, h, bx, by, px, py)| {
                    let x = triangle(t * bx + px) * (1.0 - w);
                    let y = triangle(t * by + py) * (1.0 - h);
                    BBox::from_xywh(x, y, w, h)
                })
                .collect();
            SyntheticTruth { boxes }
        })
        .collect()
}

fn render(key: &CycleKey, truth: &SyntheticTruth) -> Vec<u8> {
    let (w, h) = (key.width as usize, key.height as usize);
    let layout = nv_frame::FrameLayout::tight(key.format, key.width, key.height);
    let mut data = vec![0u8; layout.required_len()];
    let (bg, fg): (&[u8], &[u8]) = match key.format {
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => (&[32, 32, 32], &[230, 230, 230]),
        PixelFormat::Rgba8 => (&[32, 32, 32, 255], &[230, 230, 230, 255]),
        _ => (&[32], &[230]),
    };
    let bpp = bg.len();
    let luma_len = match key.format.bytes_per_pixel() {
        Some(_) => data.len(),
        None => w * h,
    };
    if bpp == 1 {
        data[..luma_len].fill(bg[0]);
    } else {
        for px in data[..luma_len].chunks_exact_mut(bpp) {
            px.copy_from_slice(bg);
        }
    }
    data[luma_len..].fill(128);
    for b in &truth.boxes {
        let (x0, x1) = (
            (b.x_min * w as f32) as usize,
            ((b.x_max * w as f32) as usize).min(w),
        );
        let (y0, y1) = (
            (b.y_min * h as f32) as usize,
            ((b.y_max * h as f32) as usize).min(h),
        );
        for y in y0..y1 {
            let row = &mut data[y * w * bpp..(y + 1) * w * bpp];
            if bpp == 1 {
                row[x0..x1].fill(fg[0]);
            } else {
                for px in row[x0 * bpp..x1 * bpp].chunks_exact_mut(bpp) {
                    px.copy_from_slice(fg);
                }
            }
        }
    }
    data
}

/// Factory for [`SourceSpec::Synthetic`].
pub struct SyntheticFactory {
    /// One slot per spec; the slot's `OnceLock` makes concurrent feeds of one spec wait
    /// for a single render instead of each rendering a copy.
    cycles: Mutex<HashMap<CycleKey, Arc<OnceLock<Arc<Cycle>>>>>,
    pacer: Mutex<Option<Arc<Pacer>>>,
}

impl std::fmt::Debug for SyntheticFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyntheticFactory").finish_non_exhaustive()
    }
}

impl Default for SyntheticFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl SyntheticFactory {
    pub fn new() -> Self {
        Self {
            cycles: Mutex::new(HashMap::new()),
            pacer: Mutex::new(None),
        }
    }

    fn cycle(&self, spec: &SyntheticSpec) -> Arc<Cycle> {
        let key = CycleKey {
            width: spec.width,
            height: spec.height,
            format: spec.format,
            objects: spec.moving_objects,
            seed: spec.seed,
        };
        let slot = Arc::clone(self.cycles.lock().entry(key.clone()).or_default());
        // Rendered outside the map lock so feeds with other specs are not held up.
        Arc::clone(slot.get_or_init(|| {
            let frame_bytes = nv_frame::FrameLayout::tight(spec.format, spec.width, spec.height)
                .required_len()
                .max(1);
            let len = (CYCLE_BUDGET_BYTES / frame_bytes).clamp(1, MAX_CYCLE_FRAMES);
            let truth = object_boxes(&key, len);
            let frames = truth.iter().map(|t| Arc::from(render(&key, t))).collect();
            Arc::new(Cycle { frames, truth })
        }))
    }

    fn pacer(&self, clock: &SharedClock) -> Result<Arc<Pacer>, MediaError> {
        let mut slot = self.pacer.lock();
        if let Some(p) = slot.as_ref() {
            return Ok(Arc::clone(p));
        }
        let pacer = Pacer::start(clock.clone())?;
        *slot = Some(Arc::clone(&pacer));
        Ok(pacer)
    }
}

impl Drop for SyntheticFactory {
    fn drop(&mut self) {
        if let Some(p) = self.pacer.lock().take() {
            p.shutdown();
        }
    }
}

impl SourceFactory for SyntheticFactory {
    fn handles(&self, spec: &SourceSpec) -> bool {
        matches!(spec, SourceSpec::Synthetic(_))
    }

    fn create(&self, ctx: &SourceContext) -> Result<Box<dyn Source>, MediaError> {
        let SourceSpec::Synthetic(spec) = &ctx.spec else {
            return Err(MediaError::NoFactory {
                kind: ctx.spec.kind(),
            });
        };
        if spec.width == 0 || spec.height == 0 {
            return Err(MediaError::Unsupported {
                detail: format!("synthetic size {}x{}", spec.width, spec.height),
            });
        }
        let pacer = match spec.fps {
            Some(fps) if fps > 0.0 => Some(self.pacer(&ctx.clock)?),
            Some(fps) => {
                return Err(MediaError::Unsupported {
                    detail: format!("synthetic fps {fps}"),
                })
            }
            None => None,
        };
        Ok(Box::new(SyntheticSource {
            spec: spec.clone(),
            cycle: self.cycle(spec),
            pacer,
            producer: None,
            stopped: Arc::new(AtomicBool::new(false)),
            paced_entry: None,
        }))
    }
}

/// Produces frames of one session.
struct Generator {
    sink: FrameSink,
    cycle: Arc<Cycle>,
    spec: SyntheticSpec,
    interval: Duration,
    base_ts: MonotonicTs,
    produced: u64,
}

impl Generator {
    /// Pushes the next frame. Returns false when the session should end.
    fn step(&mut self) -> bool {
        if self.spec.frame_count.is_some_and(|n| self.produced >= n) {
            self.sink.end_of_stream();
            return false;
        }
        let i = (self.produced % self.cycle.frames.len() as u64) as usize;
        let mut meta = TypedMetadata::new();
        if self.spec.moving_objects > 0 {
            meta.insert(self.cycle.truth[i].clone());
        }
        let ts = self.base_ts + self.interval * u32::try_from(self.produced).unwrap_or(u32::MAX);
        let frame = FrameEnvelope::builder(
            self.sink.feed_id(),
            self.sink.next_seq(),
            ts,
            self.spec.width,
            self.spec.height,
            self.spec.format,
        )
        .wall_ts(self.sink.clock().wall_now())
        .metadata(meta)
        .host(HostBytes::from_shared(Arc::clone(&self.cycle.frames[i])));
        let Ok(frame) = frame else {
            self.sink.fail(MediaError::DecodeFailed {
                detail: "synthetic frame layout".into(),
            });
            return false;
        };
        self.produced += 1;
        !matches!(self.sink.push(frame), PushOutcome::Closed)
    }
}

struct SyntheticSource {
    spec: SyntheticSpec,
    cycle: Arc<Cycle>,
    pacer: Option<Arc<Pacer>>,
    producer: Option<JoinHandle<()>>,
    stopped: Arc<AtomicBool>,
    paced_entry: Option<Arc<PacedEntry>>,
}

impl Source for SyntheticSource {
    fn start(&mut self, sink: FrameSink) -> Result<(), MediaError> {
        let interval = self
            .spec
            .fps
            .map_or(UNPACED_INTERVAL, |f| Duration::from_secs_f64(1.0 / f));
        let last = sink.last_ts();
        let base_ts = if sink.frames_received() > 0 {
            last + interval
        } else {
            last
        };
        let gen = Generator {
            sink: sink.clone(),
            cycle: Arc::clone(&self.cycle),
            spec: self.spec.clone(),
            interval,
            base_ts,
            produced: 0,
        };
        let blocking = sink.overflow() == Overflow::Block;
        match (&self.pacer, blocking) {
            (Some(pacer), false) => {
                let entry = Arc::new(PacedEntry {
                    gen: Mutex::new(gen),
                    interval,
                    stopped: AtomicBool::new(false),
                });
                pacer.add(&entry);
                self.paced_entry = Some(entry);
            }
            _ => {
                let stopped = Arc::clone(&self.stopped);
                let paced = self.spec.fps.is_some();
                let clock = sink.clock().clone();
                let name = format!("nv-synth-{}", sink.feed_id().as_u64());
                let handle = std::thread::Builder::new()
                    .name(name)
                    .stack_size(64 * 1024)
                    .spawn(move || run_dedicated(gen, stopped, paced.then_some(interval), clock))
                    .map_err(|e| MediaError::Io {
                        context: "spawning synthetic producer".into(),
                        source: Arc::new(e),
                    })?;
                self.producer = Some(handle);
            }
        }
        Ok(())
    }

    fn tick(&mut self, _now: MonotonicTs) -> TickOutcome {
        TickOutcome::running()
    }

    fn stop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(e) = self.paced_entry.take() {
            e.stopped.store(true, Ordering::SeqCst);
        }
        // The producer exits on its own once the queue is closed (the worker closes it
        // before stopping the source), so this join is short.
        if let Some(h) = self.producer.take() {
            if h.join().is_err() {
                tracing::warn!("synthetic producer panicked");
            }
        }
    }
}

fn run_dedicated(
    mut gen: Generator,
    stopped: Arc<AtomicBool>,
    interval: Option<Duration>,
    clock: SharedClock,
) {
    let pace = interval.map(|i| (Waiter::new((), clock.clone()), i, clock.now()));
    let mut n: u32 = 0;
    while !stopped.load(Ordering::Relaxed) {
        if let Some((waiter, interval, start)) = &pace {
            let due = *start + *interval * n;
            let mut g = waiter.lock();
            waiter.wait_until(&mut g, Some(due), |_| false);
        }
        if !gen.step() {
            return;
        }
        n = n.saturating_add(1);
    }
}

/// A paced source registered with the shared timer.
struct PacedEntry {
    gen: Mutex<Generator>,
    interval: Duration,
    stopped: AtomicBool,
}

#[derive(Default)]
struct PacerState {
    heap: BinaryHeap<Reverse<(MonotonicTs, u64)>>,
    entries: HashMap<u64, (Weak<PacedEntry>, MonotonicTs, u32)>,
    next_id: u64,
    shutdown: bool,
}

/// One timer thread driving every paced synthetic source of a factory.
struct Pacer {
    state: Arc<Waiter<PacerState>>,
}

impl Pacer {
    fn start(clock: SharedClock) -> Result<Arc<Self>, MediaError> {
        let state = Waiter::new(PacerState::default(), clock);
        let worker_state = Arc::clone(&state);
        std::thread::Builder::new()
            .name("nv-synth-pacer".into())
            .spawn(move || pacer_loop(&worker_state))
            .map_err(|e| MediaError::Io {
                context: "spawning synthetic pacer".into(),
                source: Arc::new(e),
            })?;
        Ok(Arc::new(Self { state }))
    }

    fn add(&self, entry: &Arc<PacedEntry>) {
        let now = self.state.clock().now();
        let mut st = self.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.entries.insert(id, (Arc::downgrade(entry), now, 0));
        st.heap.push(Reverse((now, id)));
        drop(st);
        self.state.notify_all();
    }

    fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.state.notify_all();
    }
}

fn pacer_loop(state: &Waiter<PacerState>) {
    let clock = state.clock().clone();
    let mut st = state.lock();
    loop {
        if st.shutdown {
            return;
        }
        let next = st.heap.peek().map(|Reverse((due, _))| *due);
        let now = clock.now();
        match next {
            Some(due) if due <= now => {
                let Some(Reverse((_, id))) = st.heap.pop() else {
                    continue;
                };
                let Some((weak, start, n)) = st.entries.get(&id).cloned() else {
                    continue;
                };
                let Some(entry) = weak
                    .upgrade()
                    .filter(|e| !e.stopped.load(Ordering::Relaxed))
                else {
                    st.entries.remove(&id);
                    continue;
                };
                // Push outside the pacer lock: a push can take the feed queue's lock.
                drop(st);
                let more = entry.gen.lock().step();
                st = state.lock();
                if more {
                    let n = n.saturating_add(1);
                    let due = start + entry.interval * n;
                    st.entries.insert(id, (weak, start, n));
                    st.heap.push(Reverse((due, id)));
                } else {
                    st.entries.remove(&id);
                }
            }
            other => {
                let shutdown_or_new = |s: &mut PacerState| {
                    s.shutdown || s.heap.peek().map(|Reverse((d, _))| *d) != other
                };
                state.wait_until(&mut st, other, shutdown_or_new);
            }
        }
    }
}
