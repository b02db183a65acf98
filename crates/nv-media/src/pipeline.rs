//! Pipeline construction: source element(s) → decodebin → optional videoconvert → appsink.
//!
//! Elements are created and configured programmatically (never through a launch string),
//! so paths and URLs cannot inject pipeline syntax, and RTSP credentials reach only
//! rtspsrc's `user-id`/`user-pw` properties.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use nv_core::error::MediaError;
use nv_core::id::FeedId;
use nv_core::source::{FilePacing, PixelFormat, SourceSpec};
use nv_io::source::OutputFormat;

use crate::bridge::{pixel_format, NATIVE_FORMATS};
use crate::decode::{self, DecoderInfo, HwDecoders, Selection};
use crate::session::{attach_appsink, attach_bus, ErrorClass, SessionShared};

/// Where an RTSP session connects. The password never appears in `Debug`.
#[derive(Clone)]
pub(crate) struct RtspTarget {
    /// URL without userinfo.
    pub location: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for RtspTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspTarget")
            .field("location", &self.location)
            .field("has_credentials", &self.user.is_some())
            .finish()
    }
}

/// Everything needed to build one session's pipeline.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub feed_id: FeedId,
    pub session_index: u32,
    pub spec: &'a SourceSpec,
    pub output_format: OutputFormat,
    pub selection: Selection,
    pub hw: Arc<HwDecoders>,
    pub rtsp: Option<RtspTarget>,
    pub rtsp_latency: Duration,
    pub rtsp_tcp_timeout: Duration,
}

fn unsupported(detail: impl Into<String>) -> MediaError {
    MediaError::Unsupported {
        detail: detail.into(),
    }
}

fn make(factory: &str) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| unsupported(format!("GStreamer element {factory} is not installed")))
}

/// Sets a property from its string form without panicking on bad input.
fn set_str(e: &gst::Element, name: &str, value: &str) -> Result<(), MediaError> {
    let pspec = e
        .find_property(name)
        .ok_or_else(|| unsupported(format!("element has no property {name}")))?;
    let v = glib::Value::deserialize_with_pspec(value, &pspec)
        .map_err(|_| unsupported(format!("invalid value for {name}")))?;
    e.set_property_from_value(name, &v);
    Ok(())
}

fn appsink_caps(output: OutputFormat) -> gst::Caps {
    let names: Vec<&str> = match output {
        OutputFormat::Exact(f) => vec![f.name()],
        _ => NATIVE_FORMATS.iter().map(|f| f.name()).collect(),
    };
    gst::Caps::builder("video/x-raw")
        .field("format", gst::List::new(names))
        .build()
}

/// Lets decoders hand over padded frames (strides/offsets in `GstVideoMeta`) instead of
/// copying them into a tight layout.
fn advertise_video_meta(appsink: &gst::Element) {
    let Some(pad) = appsink.static_pad("sink") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, |_, info| {
        if let Some(gst::PadProbeData::Query(q)) = info.data.as_mut() {
            if let gst::QueryViewMut::Allocation(a) = q.view_mut() {
                a.add_allocation_meta::<gst_video::VideoMeta>(None);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

fn record_link_error(shared: &SessionShared, what: &str) {
    shared.record_error(ErrorClass::Stream, what);
}

fn to_fakesink(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let Ok(sink) = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
    else {
        return;
    };
    if pipeline.add(&sink).is_err() || sink.sync_state_with_parent().is_err() {
        return;
    }
    if let Some(sinkpad) = sink.static_pad("sink") {
        if pad.link(&sinkpad).is_err() {
            tracing::debug!("could not park an unused stream on a fakesink");
        }
    }
}

/// Links a decoded pad to the appsink, converting only when the format needs it.
fn link_decoded(
    pad: &gst::Pad,
    pipeline: &gst::Pipeline,
    appsink: &gst::Element,
    output: OutputFormat,
    shared: &SessionShared,
) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let Some(s) = caps.structure(0) else {
        return;
    };
    let Some(sinkpad) = appsink.static_pad("sink") else {
        return;
    };
    if !s.name().starts_with("video/") || sinkpad.is_linked() {
        to_fakesink(pipeline, pad);
        return;
    }
    let native: Option<PixelFormat> = s
        .get::<&str>("format")
        .ok()
        .map(gst_video::VideoFormat::from_string)
        .and_then(pixel_format);
    let system_memory = caps
        .features(0)
        .is_none_or(|f| f.is_empty() || f.contains(gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY));
    let direct = system_memory
        && match output {
            OutputFormat::Exact(f) => native == Some(f),
            _ => native.is_some(),
        };
    if direct {
        if pad.link(&sinkpad).is_err() {
            record_link_error(shared, "could not link the decoder to the appsink");
        }
        return;
    }
    let convert = match make("videoconvert") {
        Ok(c) => c,
        Err(e) => return record_link_error(shared, &e.to_string()),
    };
    let linked = pipeline.add(&convert).is_ok()
        && convert.sync_state_with_parent().is_ok()
        && convert.link(appsink).is_ok()
        && convert
            .static_pad("sink")
            .is_some_and(|cp| pad.link(&cp).is_ok());
    if !linked {
        record_link_error(
            shared,
            "could not link videoconvert between decoder and appsink",
        );
    }
}

/// Decodebin hooks: decoder policy, no audio decoding, decoded pads to the tail.
fn hook_decodebin(
    decodebin: &gst::Element,
    pipeline: &gst::Pipeline,
    appsink: &gst::Element,
    plan: &Plan<'_>,
    shared: &Arc<SessionShared>,
) -> Result<(), MediaError> {
    if !decode::install(
        decodebin,
        plan.selection,
        Arc::clone(&plan.hw),
        Arc::clone(&shared.fallback),
    ) {
        return Err(unsupported("decoder selection hook unavailable"));
    }
    // Audio streams are exposed undecoded and parked on a fakesink.
    decodebin.connect("autoplug-continue", false, |args| {
        let audio = args
            .get(2)
            .and_then(|v| v.get::<gst::Caps>().ok())
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("audio/")))
            .unwrap_or(false);
        Some((!audio).to_value())
    });
    let weak = pipeline.downgrade();
    let appsink = appsink.clone();
    let output = plan.output_format;
    let shared = Arc::clone(shared);
    decodebin.connect_pad_added(move |_, pad| {
        if let Some(p) = weak.upgrade() {
            link_decoded(pad, &p, &appsink, output, &shared);
        }
    });
    Ok(())
}

fn link(a: &gst::Element, b: &gst::Element) -> Result<(), MediaError> {
    a.link(b)
        .map_err(|_| unsupported("could not link source elements"))
}

fn path_str(path: &std::path::Path) -> Result<&str, MediaError> {
    path.to_str()
        .ok_or_else(|| unsupported("file path is not valid UTF-8"))
}

/// Builds the pipeline for one session (not started).
pub(crate) fn build(
    plan: &Plan<'_>,
    shared: &Arc<SessionShared>,
) -> Result<gst::Pipeline, MediaError> {
    let pipeline = gst::Pipeline::with_name(&format!(
        "nv-feed-{}-s{}",
        plan.feed_id.as_u64(),
        plan.session_index
    ));
    let realtime = matches!(
        plan.spec,
        SourceSpec::File {
            pacing: FilePacing::RealTime,
            ..
        }
    );
    let appsink = gst_app::AppSink::builder()
        .name("nv-appsink")
        .caps(&appsink_caps(plan.output_format))
        .max_buffers(2)
        .drop(false)
        .sync(realtime)
        .enable_last_sample(false)
        .build();
    attach_appsink(&appsink, shared);
    let appsink: gst::Element = appsink.upcast();
    advertise_video_meta(&appsink);
    let add = |e: &gst::Element| {
        pipeline
            .add(e)
            .map_err(|_| unsupported("could not assemble the pipeline"))
    };
    add(&appsink)?;

    if let SourceSpec::Uri { uri } = plan.spec {
        let src = make("uridecodebin")?;
        // Credentials go to the source element's properties, not into the URI.
        let target = crate::url::split_credentials(uri);
        src.set_property("uri", target.location.as_str());
        if target.user.is_some() {
            src.connect("source-setup", false, move |args| {
                let source = args.get(1).and_then(|v| v.get::<gst::Element>().ok());
                if let Some(source) = source {
                    for (prop, value) in [("user-id", &target.user), ("user-pw", &target.password)]
                    {
                        if let Some(v) = value {
                            if source.find_property(prop).is_some() {
                                source.set_property(prop, v.as_str());
                            }
                        }
                    }
                }
                None
            });
        }
        add(&src)?;
        hook_decodebin(&src, &pipeline, &appsink, plan, shared)?;
    } else {
        let decodebin = make("decodebin")?;
        add(&decodebin)?;
        hook_decodebin(&decodebin, &pipeline, &appsink, plan, shared)?;
        match plan.spec {
            SourceSpec::File { path, .. } => {
                let src = make("filesrc")?;
                src.set_property("location", path_str(path)?);
                add(&src)?;
                link(&src, &decodebin)?;
            }
            SourceSpec::Rtsp { .. } => {
                let target = plan
                    .rtsp
                    .as_ref()
                    .ok_or_else(|| unsupported("rtsp target missing"))?;
                let src = rtspsrc(target, plan)?;
                add(&src)?;
                let weak = pipeline.downgrade();
                let db = decodebin.clone();
                src.connect_pad_added(move |_, pad| {
                    let Some(p) = weak.upgrade() else { return };
                    let video = pad
                        .current_caps()
                        .and_then(|c| {
                            c.structure(0)
                                .and_then(|s| s.get::<&str>("media").ok().map(|m| m == "video"))
                        })
                        .unwrap_or(false);
                    match db.static_pad("sink") {
                        Some(sink) if video && !sink.is_linked() => {
                            if pad.link(&sink).is_err() {
                                tracing::debug!("could not link rtspsrc to decodebin");
                            }
                        }
                        _ => to_fakesink(&p, pad),
                    }
                });
            }
            SourceSpec::V4l2 {
                device,
                width,
                height,
                fps,
            } => {
                let src = make("v4l2src")?;
                src.set_property("device", path_str(device)?);
                add(&src)?;
                if width.is_some() || height.is_some() || fps.is_some() {
                    let filter = make("capsfilter")?;
                    filter.set_property("caps", v4l2_caps(*width, *height, *fps));
                    add(&filter)?;
                    link(&src, &filter)?;
                    link(&filter, &decodebin)?;
                } else {
                    link(&src, &decodebin)?;
                }
            }
            SourceSpec::TestPattern {
                pattern,
                width,
                height,
                fps,
                frame_count,
            } => {
                let src = make("videotestsrc")?;
                set_str(&src, "pattern", pattern)?;
                src.set_property("is-live", true);
                if let Some(n) = frame_count {
                    let n = i32::try_from(*n).map_err(|_| unsupported("frame_count too large"))?;
                    src.set_property("num-buffers", n);
                }
                let format = match plan.output_format {
                    OutputFormat::Exact(f) => f.name(),
                    _ => PixelFormat::I420.name(),
                };
                let caps = gst::Caps::builder("video/x-raw")
                    .field("format", format)
                    .field("width", to_i32(*width)?)
                    .field("height", to_i32(*height)?)
                    .field("framerate", gst::Fraction::new(to_i32(*fps)?, 1))
                    .build();
                let filter = make("capsfilter")?;
                filter.set_property("caps", caps);
                add(&src)?;
                add(&filter)?;
                link(&src, &filter)?;
                link(&filter, &decodebin)?;
            }
            SourceSpec::Custom { pipeline_fragment } => {
                let bin =
                    gst::parse::bin_from_description(pipeline_fragment, true).map_err(|e| {
                        unsupported(format!(
                            "custom pipeline fragment rejected: {}",
                            nv_core::security::sanitize_error_string(&e.to_string())
                        ))
                    })?;
                let bin: gst::Element = bin.upcast();
                add(&bin)?;
                link(&bin, &decodebin)?;
            }
            other => {
                return Err(MediaError::NoFactory { kind: other.kind() });
            }
        }
    }

    let decoder_shared = Arc::clone(shared);
    pipeline.connect_deep_element_added(move |_, _, element| {
        if let Some(info) = DecoderInfo::from_element(element) {
            *decoder_shared.decoder.lock() = Some(info);
        }
    });
    attach_bus(&pipeline, shared);
    Ok(pipeline)
}

fn to_i32(v: u32) -> Result<i32, MediaError> {
    i32::try_from(v).map_err(|_| unsupported(format!("value {v} out of range")))
}

fn rtspsrc(target: &RtspTarget, plan: &Plan<'_>) -> Result<gst::Element, MediaError> {
    let src = make("rtspsrc")?;
    src.set_property("location", target.location.as_str());
    if let Some(u) = &target.user {
        src.set_property("user-id", u.as_str());
    }
    if let Some(p) = &target.password {
        src.set_property("user-pw", p.as_str());
    }
    let latency = u32::try_from(plan.rtsp_latency.as_millis()).unwrap_or(u32::MAX);
    src.set_property("latency", latency);
    let tcp_timeout = u64::try_from(plan.rtsp_tcp_timeout.as_micros()).unwrap_or(u64::MAX);
    src.set_property("tcp-timeout", tcp_timeout);
    let protocols = match plan.spec {
        SourceSpec::Rtsp {
            transport: nv_core::source::RtspTransport::UdpUnicast,
            ..
        } => "udp",
        _ => "tcp",
    };
    set_str(&src, "protocols", protocols)?;
    Ok(src)
}

fn v4l2_caps(width: Option<u32>, height: Option<u32>, fps: Option<u32>) -> gst::Caps {
    let structure = |name: &str| {
        let mut s = gst::Structure::new_empty(name);
        if let Some(w) = width.and_then(|w| i32::try_from(w).ok()) {
            s.set("width", w);
        }
        if let Some(h) = height.and_then(|h| i32::try_from(h).ok()) {
            s.set("height", h);
        }
        if let Some(f) = fps.and_then(|f| i32::try_from(f).ok()) {
            s.set("framerate", gst::Fraction::new(f, 1));
        }
        s
    };
    gst::Caps::builder_full()
        .structure(structure("video/x-raw"))
        .structure(structure("image/jpeg"))
        .build()
}
