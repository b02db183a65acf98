//! Files decoded through a real runtime: exact counts, order, timestamps, formats,
//! decoder decisions, corrupt input, looping.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::{
    assert_contiguous, clip, count, events_until_stopped, feed, run_to_stop, run_to_stop_with,
    runtime, truncated_copy, ClipSpec, Container, Recorder,
};
use nv_core::source::DecodeOutcome;
use nv_runtime::source::OutputFormat;
use nv_runtime::{HealthEvent, PixelFormat, SourceSpec, StopReason};
use nv_test_util::wait_for_event;

const FRAME_NS: f64 = 1e9 / 30.0;

fn decode_file(spec: &ClipSpec, output: OutputFormat) -> (Vec<common::Seen>, Vec<HealthEvent>) {
    let done = run_to_stop_with(SourceSpec::file(clip(spec)), |f| f.output_format(output));
    (done.seen, done.events)
}

fn assert_clean_eos(events: &[HealthEvent]) {
    assert_eq!(count(events, "source_eos"), 1, "{events:?}");
    assert_eq!(count(events, "source_connected"), 1, "{events:?}");
    assert_eq!(count(events, "decode_decision"), 1, "{events:?}");
    assert_eq!(count(events, "source_disconnected"), 0, "{events:?}");
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::EndOfStream,
            ..
        })
    ));
}

#[test]
fn clips_of_several_sizes_and_containers_decode_exactly_in_native_format() {
    let specs = [
        ClipSpec::new(10, 64, 64, Container::Mp4),
        ClipSpec::new(45, 320, 240, Container::Mkv),
        // Not a multiple of 16: decoders pad, so strides and offsets matter.
        ClipSpec::new(30, 98, 58, Container::Mp4),
        ClipSpec::new(20, 98, 58, Container::Mkv),
    ];
    for spec in &specs {
        let (seen, events) = decode_file(spec, OutputFormat::Native);
        assert_eq!(seen.len(), spec.frames as usize, "{spec:?}");
        assert_contiguous(&seen, 0);
        assert_clean_eos(&events);
        for (i, s) in seen.iter().enumerate() {
            assert!(
                matches!(s.format, PixelFormat::I420 | PixelFormat::Nv12),
                "{s:?}"
            );
            assert_eq!((s.width, s.height), (spec.width, spec.height));
            assert!(s.zero_copy);
            // Media time follows the 30 fps PTS from 0.
            let expected = i as f64 * FRAME_NS;
            assert!(
                (s.ts as f64 - expected).abs() < 2e6,
                "frame {i}: ts {} vs {expected}",
                s.ts
            );
            // White: luma ~235 on every row, chroma neutral; a wrong stride or plane
            // offset would show up as rows of other values.
            assert!(
                s.plane0_row_min > 225.0 && s.plane0_row_max < 245.0,
                "{spec:?} {s:?}"
            );
            let chroma = s.plane1_mean.unwrap();
            assert!((chroma - 128.0).abs() < 6.0, "{s:?}");
        }
        let decision = events
            .iter()
            .find_map(|e| match e {
                HealthEvent::DecodeDecision {
                    outcome, detail, ..
                } => Some((*outcome, detail.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(decision.0, DecodeOutcome::Software, "{decision:?}");
    }
}

#[test]
fn rgb_and_gray_are_converted_only_when_asked() {
    let spec = ClipSpec::new(12, 98, 58, Container::Mp4);
    let (seen, events) = decode_file(&spec, OutputFormat::Exact(PixelFormat::Rgb8));
    assert_eq!(seen.len(), 12);
    assert_contiguous(&seen, 0);
    assert_clean_eos(&events);
    for s in &seen {
        assert_eq!(s.format, PixelFormat::Rgb8);
        assert!(s.plane0_row_min > 245.0, "{s:?}");
        assert!(s.plane1_mean.is_none());
    }
    let (seen, _) = decode_file(&spec, OutputFormat::Exact(PixelFormat::Gray8));
    assert_eq!(seen.len(), 12);
    assert!(seen.iter().all(|s| s.format == PixelFormat::Gray8));
}

#[test]
fn truncated_and_garbage_files_stop_with_a_typed_error() {
    let good = clip(&ClipSpec::new(30, 64, 64, Container::Mp4));
    let truncated = truncated_copy(&good, "truncated.mp4", 0.5);
    let garbage = common::temp_path("garbage.mp4");
    std::fs::write(&garbage, vec![0x5Au8; 4096]).unwrap();
    let missing = common::temp_path("does-not-exist.mp4");
    // decodebin swallows a demuxer error raised while it is still plugging the demuxer
    // (it filters errors during the element's state change), and the pipeline then
    // waits forever; the startup watchdog turns that into a typed timeout.
    let startup = std::time::Duration::from_secs(2);
    for path in [truncated, garbage, missing] {
        let t0 = std::time::Instant::now();
        let done = run_to_stop_with(SourceSpec::file(&path), |f| f.startup_timeout(startup));
        let events = done.events;
        assert_eq!(count(&events, "source_eos"), 0, "{path:?}: {events:?}");
        match events.last() {
            Some(HealthEvent::FeedStopped {
                reason: StopReason::SourceFailed { kind, cause },
                ..
            }) => assert!(
                matches!(
                    kind,
                    nv_core::FailureKind::NoPlayableStream | nv_core::FailureKind::FileNotFound
                ),
                "{kind}: {cause}"
            ),
            other => panic!("{path:?}: unexpected end {other:?}"),
        }
        assert!(t0.elapsed() < startup + std::time::Duration::from_secs(1));
        assert!(done.seen.is_empty());
    }
}

#[test]
fn truncated_mkv_keeps_decoded_frames_and_never_hangs() {
    // Matroska is streamable: the frames before the cut still decode.
    let good = clip(&ClipSpec::new(30, 64, 64, Container::Mkv));
    let truncated = truncated_copy(&good, "truncated.mkv", 0.6);
    let done = run_to_stop(SourceSpec::file(&truncated));
    let (seen, events) = (done.seen, done.events);
    assert!(seen.len() < 30, "{}", seen.len());
    assert_contiguous(&seen, 0);
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped { .. })
    ));
}

#[test]
fn looping_file_keeps_seq_and_time_monotonic() {
    let path = clip(&ClipSpec::new(10, 64, 64, Container::Mp4));
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let rec = Recorder::default();
    let h = rt
        .add_feed(feed(SourceSpec::file_looping(&path), &rec).build().unwrap())
        .unwrap();
    common::wait_frames(&rec, 35);
    rt.remove_feed(h.id()).unwrap();
    let events = events_until_stopped(&mut health, h.id());
    let seen = rec.seen();
    assert!(seen.len() >= 35);
    assert_contiguous(&seen, 0);
    assert_eq!(count(&events, "pts_discontinuity"), 0, "{events:?}");
    assert_eq!(count(&events, "source_disconnected"), 0, "{events:?}");
    assert_eq!(count(&events, "source_eos"), 0);
    // Each loop continues one frame after the previous one.
    let max_gap = seen.windows(2).map(|w| w[1].ts - w[0].ts).max().unwrap();
    assert!((max_gap as f64) < FRAME_NS * 1.5, "gap {max_gap}");
}

#[test]
fn decoder_preferences_are_reported_once() {
    let path = clip(&ClipSpec::new(10, 64, 64, Container::Mp4));
    let hw_present = !nv_media::hardware_decoder_names().unwrap().is_empty();
    for pref in [
        nv_core::source::DecodePreference::CpuOnly,
        nv_core::source::DecodePreference::PreferHardware,
    ] {
        let done = run_to_stop_with(SourceSpec::file(&path), |f| f.decode(pref));
        let (events, h) = (&done.events, &done.handle);
        assert_eq!(done.seen.len(), 10, "{pref:?}");
        let decisions: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                HealthEvent::DecodeDecision {
                    outcome,
                    preference,
                    fallback_active,
                    fallback_reason,
                    ..
                } => Some((
                    *outcome,
                    *preference,
                    *fallback_active,
                    fallback_reason.clone(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(decisions.len(), 1, "{events:?}");
        let (outcome, preference, fallback, reason) = decisions[0].clone();
        assert_eq!(preference, pref);
        if pref == nv_core::source::DecodePreference::CpuOnly {
            assert_eq!((outcome, fallback), (DecodeOutcome::Software, false));
        } else if !hw_present {
            // No hardware decoder here: software at once, and said so.
            assert_eq!(outcome, DecodeOutcome::Software);
            assert!(fallback, "{reason:?}");
            assert!(reason.unwrap().contains("video/x-h264"));
        }
        // The runtime refreshes decode status on ticks; a 10-frame file may end first.
        if let Some(status) = h.decode_status() {
            assert_eq!(status.outcome, outcome);
        }
    }
    if !hw_present {
        let rt = runtime();
        let mut health = rt.health_subscribe();
        let rec = Recorder::default();
        let h = rt
            .add_feed(
                feed(SourceSpec::file(&path), &rec)
                    .decode(nv_core::source::DecodePreference::RequireHardware)
                    .build()
                    .unwrap(),
            )
            .unwrap();
        let ev = wait_for_event(
            &mut health,
            |e| matches!(e, HealthEvent::FeedStopped { feed_id, .. } if *feed_id == h.id()),
        );
        assert!(
            matches!(&ev, HealthEvent::FeedStopped { reason: StopReason::SourceFailed { cause, .. }, .. } if cause.contains("hardware")),
            "{ev:?}"
        );
        assert!(rec.seen().is_empty());
    }
}

#[test]
fn finite_test_pattern_ends_at_its_frame_count() {
    let done = run_to_stop(SourceSpec::TestPattern {
        pattern: "smpte".into(),
        width: 32,
        height: 24,
        fps: 60,
        frame_count: Some(15),
    });
    let (seen, events) = (done.seen, done.events);
    assert_eq!(seen.len(), 15);
    assert_contiguous(&seen, 0);
    assert!(seen.iter().all(|s| s.format == PixelFormat::I420));
    assert_eq!(count(&events, "source_eos"), 1);
    let decision = events.iter().find_map(|e| match e {
        HealthEvent::DecodeDecision { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert_eq!(
        decision,
        Some(DecodeOutcome::Unknown),
        "raw video has no decoder"
    );
}

#[test]
fn uri_source_decodes_through_uridecodebin() {
    let path = clip(&ClipSpec::new(10, 64, 64, Container::Mkv));
    let done = run_to_stop(SourceSpec::Uri {
        uri: format!("file://{}", path.display()),
    });
    let (seen, events) = (done.seen, done.events);
    assert_eq!(seen.len(), 10);
    assert_contiguous(&seen, 0);
    assert_clean_eos(&events);
}

#[test]
fn trusted_custom_fragment_runs_and_reconnects_at_eos() {
    let rt = nv_runtime::Runtime::builder()
        .health_capacity(4096)
        .custom_pipeline_policy(nv_core::source::CustomPipelinePolicy::AllowTrusted)
        .source_factory(std::sync::Arc::new(nv_media::GstSourceFactory::new()))
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let rec = Recorder::default();
    let spec = SourceSpec::Custom {
        pipeline_fragment:
            "videotestsrc num-buffers=5 ! capsfilter caps=\"video/x-raw,format=NV12,width=32,height=16,framerate=30/1\""
                .into(),
    };
    let h = rt
        .add_feed(
            feed(spec, &rec)
                .reconnect(
                    nv_runtime::ReconnectPolicy::default()
                        .with_delays(
                            std::time::Duration::from_millis(10),
                            std::time::Duration::from_millis(10),
                        )
                        .with_max_attempts(Some(1)),
                )
                .build()
                .unwrap(),
        )
        .unwrap();
    // A custom pipeline is live: its EOS is a disconnect and a reconnect. Every session
    // delivers frames, so the attempt counter resets and a budget of one never runs out.
    for _ in 0..3 {
        wait_for_event(&mut health, |e| e.name() == "source_reconnecting");
    }
    common::wait_frames(&rec, 15);
    rt.remove_feed(h.id()).unwrap();
    let events = events_until_stopped(&mut health, h.id());
    let seen = rec.seen();
    assert!(seen.len() >= 15);
    assert_contiguous(&seen, 0);
    assert!(seen.iter().all(|s| s.format == PixelFormat::Nv12));
    assert!(events.iter().all(|e| !matches!(
        e,
        HealthEvent::SourceReconnecting { attempt, .. } if *attempt != 1
    )));
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::UserRequested,
            ..
        })
    ));
}

#[test]
fn pts_jump_is_reported_and_media_time_stays_continuous() {
    // Two MPEG-TS clips back to back; the second one's timestamps start 20 s later.
    let parts: Vec<std::path::PathBuf> = [0u64, 20_000_000_000]
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            let path = common::temp_path(&format!("part{i}.ts"));
            common::run_to_eos(&format!(
                "videotestsrc num-buffers=10 timestamp-offset={offset} \
                 ! video/x-raw,format=I420,width=64,height=64,framerate=30/1 \
                 ! x264enc ! h264parse ! mpegtsmux ! filesink location={}",
                path.display()
            ));
            path
        })
        .collect();
    let joined = common::temp_path("jump.ts");
    let mut bytes = std::fs::read(&parts[0]).unwrap();
    bytes.extend(std::fs::read(&parts[1]).unwrap());
    std::fs::write(&joined, bytes).unwrap();

    let done = run_to_stop(SourceSpec::file(&joined));
    let (seen, events) = (done.seen, done.events);
    assert_eq!(seen.len(), 20);
    assert_contiguous(&seen, 0);
    let jumps: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            HealthEvent::PtsDiscontinuity {
                previous_pts_nanos,
                new_pts_nanos,
                ..
            } => Some((*previous_pts_nanos, *new_pts_nanos)),
            _ => None,
        })
        .collect();
    assert_eq!(jumps.len(), 1, "{events:?}");
    assert!(jumps[0].1 - jumps[0].0 > 19_000_000_000, "{jumps:?}");
    let max_gap = seen.windows(2).map(|w| w[1].ts - w[0].ts).max().unwrap();
    assert!((max_gap as f64) < FRAME_NS * 1.5, "gap {max_gap}");
}

#[test]
fn real_time_pacing_plays_at_the_clip_rate() {
    let path = clip(&ClipSpec::new(15, 64, 64, Container::Mp4));
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let rec = Recorder::default();
    let spec = SourceSpec::File {
        path,
        looping: false,
        pacing: nv_core::source::FilePacing::RealTime,
    };
    let started = std::time::Instant::now();
    let h = rt.add_feed(feed(spec, &rec).build().unwrap()).unwrap();
    events_until_stopped(&mut health, h.id());
    let took = started.elapsed();
    assert_eq!(rec.seen().len(), 15);
    // 15 frames at 30 fps: the last one is due 14/30 s after the first.
    assert!(took >= std::time::Duration::from_millis(440), "{took:?}");
}
