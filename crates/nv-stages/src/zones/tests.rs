use super::*;
use nv_core::geometry::BBox;
use nv_core::id::FeedId;
use nv_core::metrics::StageMetrics;
use nv_core::source::PixelFormat;
use nv_frame::FrameEnvelope;
use nv_perception::{NullTemporalAccess, PerceptionArtifacts, TrackObservation, ViewSnapshot};
use nv_view::ViewState;
use proptest::prelude::*;

const FRAME: Duration = Duration::from_millis(100);

fn ts(frame: u64) -> MonotonicTs {
    MonotonicTs::ZERO + FRAME * frame as u32
}

/// A confirmed track whose bottom-centre anchor is at `(x, y)`.
fn track_at(id: u64, x: f32, y: f32) -> Track {
    track_with_state(id, x, y, TrackState::Confirmed)
}

fn track_with_state(id: u64, x: f32, y: f32, state: TrackState) -> Track {
    let bbox = BBox::new(x - 0.02, y - 0.1, x + 0.02, y);
    let obs = TrackObservation::new(MonotonicTs::ZERO, bbox, 0.9, state, None);
    Track::new(TrackId::new(id), 0, state, obs)
}

fn square(name: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> ZoneSpec {
    ZoneSpec {
        name: name.into(),
        polygon: Polygon::new(vec![
            Point2::new(x0, y0),
            Point2::new(x1, y0),
            Point2::new(x1, y1),
            Point2::new(x0, y1),
        ]),
    }
}

fn line(name: &str, x0: f32, y0: f32, x1: f32, y1: f32) -> LineSpec {
    LineSpec {
        name: name.into(),
        start: Point2::new(x0, y0),
        end: Point2::new(x1, y1),
    }
}

fn analytics(zones: Vec<ZoneSpec>, lines: Vec<LineSpec>) -> ZoneAnalytics {
    ZoneAnalytics::new(ZoneConfig {
        zones,
        lines,
        dwell_threshold: Some(Duration::from_millis(500)),
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// Runs a scripted trajectory (one point per frame, `None` = track absent) and returns
/// `(frame, kind)` for every event.
fn run(z: &mut ZoneAnalytics, path: &[Option<(f32, f32)>]) -> Vec<(u64, ZoneEventKind)> {
    let mut out = Vec::new();
    for (f, p) in path.iter().enumerate() {
        let tracks: Vec<Track> = p.iter().map(|&(x, y)| track_at(1, x, y)).collect();
        let ev = z.update(ts(f as u64), &tracks, None);
        out.extend(ev.events.iter().map(|e| (f as u64, e.kind)));
    }
    out
}

#[test]
fn enter_dwell_exit_exactly() {
    let mut z = analytics(vec![square("door", 0.3, 0.3, 0.7, 0.7)], vec![]);
    // x = 0.1, 0.2, ..., 0.9 at y = 0.5: inside for x in {0.4, 0.5, 0.6, 0.7?}.
    // 0.7 is on the edge; use points clearly off the boundary instead.
    let xs = [0.1, 0.2, 0.35, 0.45, 0.5, 0.55, 0.6, 0.65, 0.75, 0.85];
    let path: Vec<_> = xs.iter().map(|&x| Some((x, 0.5))).collect();
    let events = run(&mut z, &path);
    assert_eq!(
        events,
        vec![
            (2, ZoneEventKind::Enter),
            // Inside since frame 2; 500 ms later is frame 7.
            (
                7,
                ZoneEventKind::Dwell {
                    dwell: Duration::from_millis(500)
                }
            ),
            (
                8,
                ZoneEventKind::Exit {
                    dwell: Duration::from_millis(600)
                }
            ),
        ]
    );
}

#[test]
fn track_ending_inside_exits() {
    let mut z = analytics(vec![square("a", 0.0, 0.0, 0.5, 0.5)], vec![]);
    let events = run(&mut z, &[Some((0.2, 0.2)), Some((0.25, 0.2)), None]);
    assert_eq!(
        events,
        vec![
            (0, ZoneEventKind::Enter),
            (
                2,
                ZoneEventKind::Exit {
                    dwell: Duration::from_millis(200)
                }
            )
        ]
    );
    // A track reported as Lost ends the same way.
    let mut z = analytics(vec![square("a", 0.0, 0.0, 0.5, 0.5)], vec![]);
    z.update(ts(0), &[track_at(7, 0.2, 0.2)], None);
    let ev = z.update(
        ts(1),
        &[track_with_state(7, 0.2, 0.2, TrackState::Lost)],
        None,
    );
    assert!(matches!(ev.events[0].kind, ZoneEventKind::Exit { .. }));
    assert_eq!(ev.occupancy[0].1, 0);
}

#[test]
fn line_crossing_directions_and_non_crossings() {
    // Horizontal line at y = 0.5 from x = 0.2 to 0.8, pointing right: below is "right".
    let mut z = analytics(vec![], vec![line("gate", 0.2, 0.5, 0.8, 0.5)]);
    let down = |x: f32| -> Vec<Option<(f32, f32)>> {
        [0.3, 0.4, 0.5, 0.6, 0.7]
            .iter()
            .map(|&y| Some((x, y)))
            .collect()
    };
    // Straight down through the middle: one left-to-right crossing, on the frame that
    // leaves the line (frame 3, y = 0.6), not on the frame that touches it.
    assert_eq!(
        run(&mut z, &down(0.5)),
        vec![(
            3,
            ZoneEventKind::LineCrossed {
                direction: CrossingDirection::LeftToRight
            }
        )]
    );
    // Touch the line and go back: nothing.
    let mut z = analytics(vec![], vec![line("gate", 0.2, 0.5, 0.8, 0.5)]);
    let touch = [Some((0.5, 0.4)), Some((0.5, 0.5)), Some((0.5, 0.4))];
    assert!(run(&mut z, &touch).is_empty());
    // Beside the segment: nothing.
    let mut z = analytics(vec![], vec![line("gate", 0.2, 0.5, 0.8, 0.5)]);
    assert!(run(&mut z, &down(0.9)).is_empty());
    // Back up: right to left; totals count both.
    let mut z = analytics(vec![], vec![line("gate", 0.2, 0.5, 0.8, 0.5)]);
    let mut path = down(0.5);
    path.extend(down(0.5).into_iter().rev());
    let events = run(&mut z, &path);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].1,
        ZoneEventKind::LineCrossed {
            direction: CrossingDirection::RightToLeft
        }
    );
    let totals = z.update(ts(99), &[], None).line_totals;
    assert_eq!(totals[0].1, 1);
    assert_eq!(totals[0].2, 1);
}

#[test]
fn view_transform_maps_anchors_back_to_the_reference_view() {
    let mut z = analytics(vec![square("a", 0.4, 0.4, 0.6, 0.6)], vec![]);
    // The camera panned: the reference point (0.5, 0.5) now appears at (0.3, 0.5).
    let pan = AffineTransform2D::translation(-0.2, 0.0);
    let inv = invert(&pan).unwrap();
    let ev = z.update(ts(0), &[track_at(1, 0.3, 0.5)], Some(&inv));
    assert_eq!(ev.events.len(), 1);
    assert_eq!(ev.occupancy[0].1, 1);
}

#[test]
fn config_validation_lists_everything() {
    let err = ZoneConfig {
        zones: vec![
            square("a", 0.0, 0.0, 0.1, 0.1),
            square("a", 0.0, 0.0, 0.1, 0.1),
            ZoneSpec {
                name: String::new(),
                polygon: Polygon::new(vec![Point2::new(0.0, 0.0)]),
            },
        ],
        lines: vec![line("l", 0.1, 0.1, 0.1, 0.1)],
        ..ZoneConfig::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(err.problems.len(), 4, "{err}");
}

#[test]
fn stage_emits_signals_and_artifact() {
    let mut stage = analytics(
        vec![square("a", 0.0, 0.0, 0.5, 0.5)],
        vec![line("l", 0.0, 0.5, 1.0, 0.5)],
    );
    assert_eq!(stage.category(), StageCategory::TemporalAnalysis);
    let frame = FrameEnvelope::new_owned(
        FeedId::new(1),
        0,
        ts(3),
        2,
        2,
        PixelFormat::Gray8,
        vec![0; 4],
    )
    .unwrap();
    let mut artifacts = PerceptionArtifacts::new();
    artifacts.merge(StageOutput::with_tracks(vec![
        track_at(4, 0.2, 0.2),
        track_with_state(5, 0.3, 0.3, TrackState::Tentative),
    ]));
    let view = ViewSnapshot::new(ViewState::fixed_initial());
    let temporal = NullTemporalAccess::default();
    let ctx = StageContext::new(
        FeedId::new(1),
        &frame,
        &artifacts,
        &view,
        &temporal,
        StageMetrics::default(),
        ts(3),
    );
    let out = stage.process(&ctx).unwrap();
    let names: Vec<&str> = out.signals.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "zone.a.enter",
            "zone.a.occupancy",
            "line.l.total_left_to_right",
            "line.l.total_right_to_left"
        ]
    );
    assert_eq!(out.signals[0].value, SignalValue::Scalar(4.0));
    assert_eq!(out.signals[1].value, SignalValue::Scalar(1.0));
    assert_eq!(out.signals[0].ts, ts(3));
    let ev = out.artifacts.get::<ZoneEvents>().unwrap();
    assert_eq!(ev.events.len(), 1);
}

fn point() -> impl Strategy<Value = (f32, f32)> {
    (0.0f32..1.0, 0.0f32..1.0)
}

proptest! {
    /// Zone events along any trajectory: enters and exits alternate starting with an
    /// enter, match the brute-force inside/outside transitions frame by frame, and the
    /// occupancy is the point-in-polygon count.
    #[test]
    fn zone_events_follow_containment(
        corners in prop::array::uniform4(0.05f32..0.95),
        path in prop::collection::vec(point(), 1..40),
    ) {
        let zone = square("z", corners[0], corners[1], corners[2], corners[3]);
        prop_assume!(zone.polygon.area() > 1e-3);
        let poly = zone.polygon.clone();
        let mut z = ZoneAnalytics::new(ZoneConfig { zones: vec![zone], ..ZoneConfig::default() }).unwrap();
        let mut was_inside = false;
        for (f, &(x, y)) in path.iter().enumerate() {
            let ev = z.update(ts(f as u64), &[track_at(1, x, y)], None);
            let inside = poly.contains(Point2::new(x, y));
            let expected = match (was_inside, inside) {
                (false, true) => vec![ZoneEventKind::Enter],
                (true, false) => vec![ZoneEventKind::Exit { dwell: Duration::ZERO }],
                _ => vec![],
            };
            let got: Vec<ZoneEventKind> = ev.events.iter().map(|e| match e.kind {
                ZoneEventKind::Exit { .. } => ZoneEventKind::Exit { dwell: Duration::ZERO },
                k => k,
            }).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(ev.occupancy[0].1, usize::from(inside));
            was_inside = inside;
        }
    }

    /// A straight walk from `a` to `b` in small steps crosses a line exactly when the
    /// segments intersect, in the direction given by the side `b` ends on.
    #[test]
    fn straight_walk_crosses_once_iff_segments_intersect(
        s in point(), e in point(), a in point(), b in point(), steps in 1usize..20,
    ) {
        let (s, e) = (Point2::new(s.0, s.1), Point2::new(e.0, e.1));
        let (pa, pb) = (Point2::new(a.0, a.1), Point2::new(b.0, b.1));
        prop_assume!(s.distance(e) > 0.05 && pa.distance(pb) > 0.05);
        // Keep the walk's ends and the crossing point well away from degenerate cases.
        let (sa, sb) = (side(s, e, pa), side(s, e, pb));
        prop_assume!(sa.abs() > 1e-3 && sb.abs() > 1e-3);
        let (sla, slb) = (side(pa, pb, s), side(pa, pb, e));
        prop_assume!(sla.abs() > 1e-3 && slb.abs() > 1e-3);
        let intersect = (sa > 0.0) != (sb > 0.0) && (sla > 0.0) != (slb > 0.0);
        let mut z = ZoneAnalytics::new(ZoneConfig {
            lines: vec![LineSpec { name: "l".into(), start: s, end: e }],
            anchor: Anchor::Center,
            ..ZoneConfig::default()
        }).unwrap();
        let mut crossings = Vec::new();
        for k in 0..=steps {
            let t = k as f32 / steps as f32;
            let p = Point2::new(pa.x + (pb.x - pa.x) * t, pa.y + (pb.y - pa.y) * t);
            let bbox = BBox::new(p.x - 0.01, p.y - 0.01, p.x + 0.01, p.y + 0.01);
            let obs = TrackObservation::new(MonotonicTs::ZERO, bbox, 1.0, TrackState::Confirmed, None);
            let tr = Track::new(TrackId::new(1), 0, TrackState::Confirmed, obs);
            let ev = z.update(ts(k as u64), &[tr], None);
            crossings.extend(ev.events.iter().map(|e| e.kind));
        }
        if intersect {
            let direction = if sb > 0.0 { CrossingDirection::LeftToRight } else { CrossingDirection::RightToLeft };
            prop_assert_eq!(crossings, vec![ZoneEventKind::LineCrossed { direction }]);
        } else {
            prop_assert!(crossings.is_empty(), "{:?}", crossings);
        }
    }
}

#[test]
fn epoch_change_forgets_tracks() {
    let mut z = analytics(vec![square("a", 0.0, 0.0, 0.5, 0.5)], vec![]);
    z.update(ts(0), &[track_at(1, 0.2, 0.2)], None);
    z.on_view_epoch_change(ViewEpoch::INITIAL.next()).unwrap();
    // Same track still inside after the reset: the visit of the old view ends (so that
    // occupancy counted from events stays exact), then a fresh one starts.
    let ev = z.update(ts(1), &[track_at(1, 0.2, 0.2)], None);
    let kinds: Vec<_> = ev.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ZoneEventKind::Exit {
                dwell: ts(1).saturating_duration_since(ts(0))
            },
            ZoneEventKind::Enter
        ]
    );
    assert_eq!(ev.occupancy[0].1, 1);
}

#[test]
fn run_time_edit_applies_at_the_next_frame_and_closes_open_visits() {
    let mut z = analytics(
        vec![square("a", 0.0, 0.0, 0.5, 0.5)],
        vec![LineSpec {
            name: "l".into(),
            start: Point2::new(0.7, 0.0),
            end: Point2::new(0.7, 1.0),
        }],
    );
    let editor = z.editor();
    z.update(ts(0), &[track_at(1, 0.2, 0.2)], None);
    // An invalid edit is refused whole and changes nothing.
    let mut bad = editor.current();
    bad.zones.push(square("a", 0.5, 0.5, 0.9, 0.9));
    assert!(editor.submit(bad).is_err());
    // Replace zone `a` by zone `b` around the same spot; keep line `l`.
    let mut next = editor.current();
    next.zones = vec![square("b", 0.1, 0.1, 0.3, 0.3)];
    let n = editor.submit(next).unwrap();
    assert!(!editor.wait_applied(n, Duration::ZERO));
    let ev = z.update(ts(1), &[track_at(1, 0.2, 0.2)], None);
    assert!(editor.wait_applied(n, Duration::ZERO));
    let got: Vec<_> = ev.events.iter().map(|e| (&*e.name, e.kind)).collect();
    assert_eq!(
        got,
        [
            (
                "a",
                ZoneEventKind::Exit {
                    dwell: ts(1).saturating_duration_since(ts(0))
                }
            ),
            ("b", ZoneEventKind::Enter)
        ]
    );
    assert_eq!(ev.occupancy, [("b".into(), 1)]);
    assert_eq!(editor.current().zones[0].name, "b");
}
