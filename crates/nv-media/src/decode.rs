//! Decoder choice: hardware classification, the registry probe, and decodebin's
//! `autoplug-select` policy for each [`DecodePreference`].

use std::sync::Arc;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use parking_lot::Mutex;

use nv_core::source::{DecodeOutcome, DecodePreference};

/// Name prefixes of hardware decoder families (NVIDIA, VA-API, Intel, AMD, Windows,
/// V4L2 stateful/stateless, OpenMAX, Rockchip, Apple).
const HW_PREFIXES: &[&str] = &[
    "nv", "va", "msdk", "qsv", "amf", "d3d11", "d3d12", "v4l2", "omx", "mpp", "vtdec",
];

/// True for video decoders (klass mentions both).
pub(crate) fn is_video_decoder(klass: &str) -> bool {
    klass.contains("Decoder") && klass.contains("Video")
}

/// Heuristic hardware classification: the klass says so, or the name is of a known
/// hardware family.
pub(crate) fn is_hardware(name: &str, klass: &str) -> bool {
    klass.contains("Hardware") || HW_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn klass_of(f: &gst::ElementFactory) -> String {
    f.metadata(gst::ELEMENT_METADATA_KLASS)
        .unwrap_or_default()
        .to_owned()
}

/// Hardware video decoders present in the registry (probed once per factory).
#[derive(Clone, Debug, Default)]
pub(crate) struct HwDecoders {
    factories: Vec<gst::ElementFactory>,
}

impl HwDecoders {
    pub fn probe() -> Self {
        let all = gst::ElementFactory::factories_with_type(
            gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
            gst::Rank::MARGINAL,
        );
        let factories = all
            .into_iter()
            .filter(|f| {
                let k = klass_of(f);
                is_video_decoder(&k) && is_hardware(f.name().as_str(), &k)
            })
            .collect();
        Self { factories }
    }
    pub fn names(&self) -> Vec<String> {
        self.factories
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }
    fn any_for(&self, caps: &gst::Caps) -> bool {
        self.factories.iter().any(|f| f.can_sink_any_caps(caps))
    }
}

/// The decoder decodebin actually used in a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecoderInfo {
    pub name: String,
    pub hardware: bool,
}

impl DecoderInfo {
    pub fn from_element(e: &gst::Element) -> Option<Self> {
        let f = e.factory()?;
        let k = klass_of(&f);
        is_video_decoder(&k).then(|| Self {
            hardware: is_hardware(f.name().as_str(), &k),
            name: f.name().to_string(),
        })
    }
    pub fn outcome(&self) -> DecodeOutcome {
        if self.hardware {
            DecodeOutcome::Hardware
        } else {
            DecodeOutcome::Software
        }
    }
}

/// What decodebin may plug in one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selection {
    /// decodebin's own ranking.
    Any,
    SoftwareOnly,
    /// Hardware where the registry has one for the stream, else software at once.
    HardwareFirst,
    HardwareOnly,
}

impl Selection {
    /// Selection for a preference; `hw_failed` = a hardware session of this source
    /// failed before its first frame (PreferHardware then uses software).
    pub fn for_preference(pref: DecodePreference, hw_failed: bool) -> Self {
        match pref {
            DecodePreference::CpuOnly => Self::SoftwareOnly,
            DecodePreference::PreferHardware if hw_failed => Self::SoftwareOnly,
            DecodePreference::PreferHardware => Self::HardwareFirst,
            DecodePreference::RequireHardware => Self::HardwareOnly,
            _ => Self::Any,
        }
    }
}

// GstAutoplugSelectResult values.
const TRY: i32 = 0;
const SKIP: i32 = 2;

fn select_value(v: i32) -> Option<glib::Value> {
    let t = glib::Type::from_name("GstAutoplugSelectResult")?;
    glib::EnumClass::with_type(t)?.to_value(v)
}

/// Installs the selection on a decodebin-like element. `fallback` receives the reason
/// when HardwareFirst had to use software. Returns false if the hook could not be set.
pub(crate) fn install(
    decodebin: &gst::Element,
    selection: Selection,
    hw: Arc<HwDecoders>,
    fallback: Arc<Mutex<Option<String>>>,
) -> bool {
    if selection == Selection::Any {
        return true;
    }
    if select_value(TRY).is_none() || select_value(SKIP).is_none() {
        return false;
    }
    decodebin.connect("autoplug-select", false, move |args| {
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        let factory = args
            .get(3)
            .and_then(|v| v.get::<gst::ElementFactory>().ok());
        let verdict = match (caps, factory) {
            (Some(caps), Some(f)) => verdict(selection, &caps, &f, &hw, &fallback),
            _ => TRY,
        };
        select_value(verdict)
    });
    true
}

fn verdict(
    selection: Selection,
    caps: &gst::Caps,
    f: &gst::ElementFactory,
    hw: &HwDecoders,
    fallback: &Mutex<Option<String>>,
) -> i32 {
    let k = klass_of(f);
    if !is_video_decoder(&k) {
        return TRY;
    }
    let hardware = is_hardware(f.name().as_str(), &k);
    match selection {
        Selection::Any => TRY,
        Selection::SoftwareOnly if hardware => SKIP,
        Selection::SoftwareOnly => TRY,
        Selection::HardwareOnly if hardware => TRY,
        Selection::HardwareOnly => SKIP,
        Selection::HardwareFirst if hardware => TRY,
        Selection::HardwareFirst => {
            if hw.any_for(caps) {
                SKIP
            } else {
                let media = caps
                    .structure(0)
                    .map_or_else(|| "this stream".to_owned(), |s| s.name().to_string());
                fallback
                    .lock()
                    .get_or_insert_with(|| format!("no hardware decoder for {media}"));
                TRY
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(is_hardware("nvh264dec", "Codec/Decoder/Video/Hardware"));
        assert!(is_hardware("vah264dec", "Codec/Decoder/Video"));
        assert!(!is_hardware("avdec_h264", "Codec/Decoder/Video"));
        assert!(is_video_decoder("Codec/Decoder/Video"));
        assert!(!is_video_decoder("Codec/Decoder/Audio"));
        assert!(!is_video_decoder("Codec/Demuxer"));
    }

    #[test]
    fn selection_per_preference() {
        use DecodePreference as P;
        assert_eq!(Selection::for_preference(P::Auto, false), Selection::Any);
        assert_eq!(
            Selection::for_preference(P::CpuOnly, false),
            Selection::SoftwareOnly
        );
        assert_eq!(
            Selection::for_preference(P::PreferHardware, false),
            Selection::HardwareFirst
        );
        assert_eq!(
            Selection::for_preference(P::PreferHardware, true),
            Selection::SoftwareOnly
        );
        assert_eq!(
            Selection::for_preference(P::RequireHardware, true),
            Selection::HardwareOnly
        );
    }
}
