use super::*;

fn b(x: f32, y: f32) -> BBox {
    BBox::from_xywh(x, y, 0.1, 0.1)
}

#[test]
fn perfect_tracking_scores_one() {
    let mut e = MotEvaluator::new(0.5);
    for f in 0..10 {
        let x = 0.01 * f as f32;
        let gt = [(1, b(x, 0.1)), (2, b(x, 0.6))];
        let hyp = [(7, b(x, 0.1)), (9, b(x, 0.6))];
        e.update(&gt, &hyp);
    }
    let s = e.summary();
    assert_eq!(
        (s.matches, s.false_positives, s.misses, s.id_switches),
        (20, 0, 0, 0)
    );
    assert_eq!(s.mota, 1.0);
    assert_eq!(s.idf1, 1.0);
    assert!(s.motp < 1e-6);
}

/// Hand-counted: A = gt 1, B = gt 2.
/// f1: 10 on A, 20 on B. f2: same plus a stray 30 (FP). f3: 20 on A (switch), B missed.
/// f4: 10 on A (switch back), 20 on B (kept).
#[test]
fn hand_counted_sequence() {
    let (a, bb, far) = (b(0.1, 0.1), b(0.6, 0.6), b(0.85, 0.1));
    let mut e = MotEvaluator::new(0.5);
    e.update(&[(1, a), (2, bb)], &[(10, a), (20, bb)]);
    e.update(&[(1, a), (2, bb)], &[(10, a), (20, bb), (30, far)]);
    e.update(&[(1, a), (2, bb)], &[(20, a)]);
    e.update(&[(1, a), (2, bb)], &[(10, a), (20, bb)]);
    let s = e.summary();
    assert_eq!(s.num_objects, 8);
    assert_eq!(s.num_predictions, 8);
    assert_eq!(s.matches, 7);
    assert_eq!(s.false_positives, 1);
    assert_eq!(s.misses, 1);
    assert_eq!(s.id_switches, 2);
    assert!((s.mota - 0.5).abs() < 1e-12);
    // Identity map {1->10, 2->20}: 3 + 3 frames.
    assert_eq!((s.idtp, s.idfp, s.idfn), (6, 2, 2));
    assert!((s.idf1 - 0.75).abs() < 1e-12);
}

/// CLEAR-MOT keeps a still-valid correspondence even if another hypothesis overlaps
/// better, so a decoy does not cause a switch.
#[test]
fn previous_correspondence_is_kept() {
    let truth = BBox::from_xywh(0.1, 0.1, 0.2, 0.2);
    let okay = BBox::from_xywh(0.13, 0.1, 0.2, 0.2);
    let mut e = MotEvaluator::new(0.5);
    e.update(&[(1, truth)], &[(5, okay)]);
    e.update(&[(1, truth)], &[(5, okay), (6, truth)]);
    let s = e.summary();
    assert_eq!(s.id_switches, 0);
    assert_eq!(s.false_positives, 1);
}

#[test]
fn threshold_is_inclusive() {
    // IoU exactly 0.5: x spans [0, 0.25] and [0, 0.125], same y span.
    let g = BBox::new(0.0, 0.0, 0.25, 0.25);
    let h = BBox::new(0.0, 0.0, 0.125, 0.25);
    let mut e = MotEvaluator::new(0.5);
    e.update(&[(1, g)], &[(1, h)]);
    assert_eq!(e.summary().matches, 1);
}

#[test]
fn mot_challenge_round_trip() {
    let mut log = SequenceLog::new();
    log.push_frame(&[(1, b(0.1, 0.2))], &[(3, b(0.1, 0.2), 0.75)]);
    log.push_frame(&[], &[]);
    log.push_frame(
        &[(1, b(0.2, 0.2)), (2, b(0.5, 0.5))],
        &[(3, b(0.2, 0.2), 0.5)],
    );
    let text = format_mot_challenge(&log.gt, 640, 480);
    assert_eq!(
        text.lines().next().unwrap(),
        "1,1,65.0000,97.0000,64.0000,48.0000,1.0000,-1,-1,-1"
    );
    let back = parse_mot_challenge(&text, 640, 480).unwrap();
    assert_eq!(back.len(), 3);
    for (a, r) in back.iter().zip(&log.gt) {
        assert_eq!((a.frame, a.id), (r.frame, r.id));
        assert!(a.bbox.iou(&r.bbox) > 0.9999);
    }
    assert_eq!(
        parse_mot_challenge("1,2,x", 10, 10).unwrap_err(),
        ParseMotError { line: 1 }
    );
    let s = log.evaluate(0.5);
    assert_eq!((s.frames, s.num_objects, s.matches, s.misses), (3, 3, 2, 1));

    let dir = std::env::temp_dir().join(format!("nv-stages-mot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (g, h) = (dir.join("gt.txt"), dir.join("hyp.txt"));
    log.write_mot_challenge(&g, &h, 640, 480).unwrap();
    let hyp = parse_mot_challenge(&std::fs::read_to_string(&h).unwrap(), 640, 480).unwrap();
    assert_eq!(hyp.len(), 2);
    assert!((hyp[0].confidence - 0.75).abs() < 1e-6);
    let back = SequenceLog::read_mot_challenge(&g, &h, 640, 480).unwrap();
    assert_eq!(back.evaluate(0.5), s);
    std::fs::remove_dir_all(&dir).unwrap();
}
