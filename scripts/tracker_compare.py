#!/usr/bin/env python3
"""Runs Roboflow `trackers` on the tracker suite's exported detections and scores every
tracker (ours included) with py-motmetrics. Driven by scripts/tracker_bench.sh.

  tracker_compare.py run SCENES    # in a venv with trackers==2.6.1: writes SORT/ByteTrack/OC-SORT
  tracker_compare.py score SCENES  # in a venv with motmetrics: prints the Markdown table
  tracker_compare.py selftest      # checks the HOTA implementation on hand-computed cases

HOTA (Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking",
IJCV 2020) is computed here from the paper's definition (`hota` below), since
py-motmetrics has none: IoU similarity, alpha = 0.05, 0.10, ..., 0.95, per-frame
Hungarian matching that maximises global alignment score x IoU, HOTA = mean over alpha of
sqrt(DetA * AssA).

SCENES holds one folder per scene (from `tracker_suite --export`): gt.txt, det.txt,
nextvision.txt, seqinfo.ini; `run` adds sort.txt, bytetrack.txt, ocsort.txt and
timings.json (microseconds per frame of each tracker's update calls).
"""

import configparser
import json
import sys
import time
from pathlib import Path

TRACKERS = ["nextvision", "bytetrack", "ocsort", "sort"]


def scenes(root):
    return sorted(p for p in Path(root).iterdir() if (p / "det.txt").is_file())


def read_dets(path):
    frames = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        f = line.split(",")
        frame, x, y, w, h, conf = int(f[0]), *map(float, f[2:7])
        # MOTChallenge x, y are 1-based.
        frames.setdefault(frame, []).append((x - 1, y - 1, x - 1 + w, y - 1 + h, conf))
    return frames


def run(root):
    import numpy as np
    import supervision as sv
    from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

    makers = {"sort": SORTTracker, "bytetrack": ByteTrackTracker, "ocsort": OCSORTTracker}
    for scene in scenes(root):
        info = configparser.ConfigParser()
        info.read(scene / "seqinfo.ini")
        length = int(info["Sequence"]["seqLength"])
        dets = read_dets(scene / "det.txt")
        timings_path = scene / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        for name, make in makers.items():
            tracker = make()
            rows = []
            spent = 0.0
            for frame in range(1, length + 1):
                d = dets.get(frame, [])
                arr = np.array(d, dtype=float).reshape(-1, 5)
                detections = sv.Detections(
                    xyxy=arr[:, :4],
                    confidence=arr[:, 4],
                    class_id=np.zeros(len(arr), dtype=int),
                )
                t0 = time.perf_counter()
                out = tracker.update(detections)
                spent += time.perf_counter() - t0
                for (x0, y0, x1, y1), tid in zip(out.xyxy, out.tracker_id):
                    if tid >= 0:
                        rows.append(
                            f"{frame},{tid},{x0 + 1:.4f},{y0 + 1:.4f},{x1 - x0:.4f},{y1 - y0:.4f},1,-1,-1,-1"
                        )
            (scene / f"{name}.txt").write_text("\n".join(rows) + "\n")
            timings[name] = spent * 1e6 / length
        timings_path.write_text(json.dumps(timings))


ALPHAS = [0.05 * k for k in range(1, 20)]


def read_boxes(path):
    """{frame: (ids, xywh array)} from a MOTChallenge file."""
    import numpy as np

    rows = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        f = line.split(",")
        rows.setdefault(int(f[0]), []).append((int(float(f[1])), *map(float, f[2:6])))
    out = {}
    for frame, r in rows.items():
        a = np.array(r, dtype=float).reshape(-1, 5)
        out[frame] = (a[:, 0].astype(int), a[:, 1:5])
    return out


def iou_xywh(a, b):
    import numpy as np

    ax0, ay0, ax1, ay1 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None, :]) - np.maximum(ax0[:, None], bx0[None, :]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None, :]) - np.maximum(ay0[:, None], by0[None, :]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def hota(gt, hyp):
    """(HOTA, DetA, AssA), each averaged over ALPHAS. gt, hyp: {frame: (ids, xywh)}."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    eps = 1e-9
    empty = (np.zeros(0, dtype=int), np.zeros((0, 4)))
    frames = sorted(set(gt) | set(hyp))
    gid = {g: i for i, g in enumerate(sorted({int(x) for f in gt.values() for x in f[0]}))}
    tid = {t: i for i, t in enumerate(sorted({int(x) for f in hyp.values() for x in f[0]}))}
    ng, nt = len(gid), len(tid)
    per_frame = []
    gt_count, tr_count = np.zeros(ng), np.zeros(nt)
    potential = np.zeros((ng, nt))
    for frame in frames:
        g_ids, g_boxes = gt.get(frame, empty)
        t_ids, t_boxes = hyp.get(frame, empty)
        gi = np.array([gid[int(x)] for x in g_ids], dtype=int)
        ti = np.array([tid[int(x)] for x in t_ids], dtype=int)
        sim = iou_xywh(g_boxes, t_boxes) if len(gi) and len(ti) else np.zeros((len(gi), len(ti)))
        per_frame.append((gi, ti, sim))
        gt_count[gi] += 1
        tr_count[ti] += 1
        if len(gi) and len(ti):
            # Each pair's share of the frame's similarity (an IoU of the similarity
            # mass), summed over frames: how strongly the two ids are aligned overall.
            denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
            potential[np.ix_(gi, ti)] += np.where(denom > eps, sim / np.maximum(denom, eps), 0)
    alignment = potential / np.maximum(gt_count[:, None] + tr_count[None, :] - potential, eps)
    tp = np.zeros(len(ALPHAS))
    matches = np.zeros((len(ALPHAS), ng, nt))
    for gi, ti, sim in per_frame:
        if not (len(gi) and len(ti)):
            continue
        score = alignment[np.ix_(gi, ti)] * sim
        rows, cols = linear_sum_assignment(-score)
        for a, alpha in enumerate(ALPHAS):
            ok = sim[rows, cols] >= alpha - eps
            tp[a] += ok.sum()
            np.add.at(matches[a], (gi[rows[ok]], ti[cols[ok]]), 1)
    fn = gt_count.sum() - tp
    fp = tr_count.sum() - tp
    det_a = tp / np.maximum(tp + fn + fp, 1)
    ass_a = np.zeros(len(ALPHAS))
    for a in range(len(ALPHAS)):
        m = matches[a]
        ass = m / np.maximum(gt_count[:, None] + tr_count[None, :] - m, 1)
        ass_a[a] = (m * ass).sum() / max(tp[a], 1)
    h = np.sqrt(det_a * ass_a)
    return float(h.mean()), float(det_a.mean()), float(ass_a.mean())


def selftest():
    import numpy as np

    box = np.array([[10.0, 10.0, 20.0, 40.0]])
    one = lambda i: (np.array([i]), box)  # noqa: E731
    gt2 = {1: one(1), 2: one(1)}
    assert hota(gt2, gt2) == (1.0, 1.0, 1.0)
    # Found in one frame of two: DetA 1/2, AssA 1 / (2 + 1 - 1) = 1/2, HOTA 1/2.
    h, d, a = hota(gt2, {1: one(5)})
    assert abs(h - 0.5) < 1e-12 and abs(d - 0.5) < 1e-12 and abs(a - 0.5) < 1e-12, (h, d, a)
    # An id switch half-way: DetA 1, AssA 2 / (4 + 2 - 2) = 1/2, HOTA sqrt(1/2).
    gt4 = {f: one(1) for f in range(1, 5)}
    h, d, a = hota(gt4, {1: one(7), 2: one(7), 3: one(8), 4: one(8)})
    assert abs(h - 0.5**0.5) < 1e-12 and d == 1.0 and abs(a - 0.5) < 1e-12, (h, d, a)
    # Shifted by half its width: overlap 10 of a union of 30, IoU 1/3, a match for the
    # alphas up to 1/3 only (0.05 .. 0.30: 6 of 19), perfect there: HOTA 6/19.
    shifted = np.array([[20.0, 10.0, 20.0, 40.0]])
    h, _, _ = hota({1: one(1)}, {1: (np.array([3]), shifted)})
    assert abs(h - 6 / 19) < 1e-12, h
    print("hota selftest ok")


def score(root, ours_md):
    import motmetrics as mm

    # Our own timing comes from the suite's table (the Rust binary measured it).
    ours_us = {}
    if ours_md and Path(ours_md).is_file():
        for line in Path(ours_md).read_text().splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 10 and cells[0] not in ("scene", "---"):
                try:
                    ours_us[cells[0]] = float(cells[9])
                except ValueError:
                    pass
    mh = mm.metrics.create()
    print("| scene | tracker | MOTA | IDF1 | HOTA | IDSW | FP | FN | us/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for scene in scenes(root):
        gt = mm.io.loadtxt(str(scene / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        timings_path = scene / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        timings["nextvision"] = ours_us.get(scene.name, float("nan"))
        gt_boxes = read_boxes(scene / "gt.txt")
        results = {}
        for name in TRACKERS:
            path = scene / f"{name}.txt"
            if not path.is_file():
                continue
            hyp = mm.io.loadtxt(str(path), fmt="mot15-2D")
            acc = mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=0.5)
            s = mh.compute(
                acc,
                metrics=["mota", "idf1", "num_switches", "num_false_positives", "num_misses"],
                name=name,
            )
            r = s.iloc[0]
            h, _, _ = hota(gt_boxes, read_boxes(path))
            us = timings.get(name, float("nan"))
            results[name] = (r["mota"], r["idf1"], h, us)
            print(
                f"| {scene.name} | {name} | {r['mota']:.3f} | {r['idf1']:.3f} | {h:.3f} | "
                f"{int(r['num_switches'])} | {int(r['num_false_positives'])} | "
                f"{int(r['num_misses'])} | {us:.1f} |"
            )
        if "nextvision" in results and "bytetrack" in results:
            o, b = results["nextvision"], results["bytetrack"]
            # Unrounded differences: a tie at the table's precision can still be a loss.
            d = lambda k: f"{o[k] - b[k]:+.4f}{'' if o[k] >= b[k] else ' NO'}"  # noqa: E731
            verdicts.append(f"| {scene.name} | {d(0)} | {d(1)} | {d(2)} | {b[3] / o[3]:.0f}x |")
    print()
    print("| scene | MOTA - ByteTrack | IDF1 - ByteTrack | HOTA - ByteTrack | ByteTrack time / ours |")
    print("|---|---|---|---|---|")
    for v in verdicts:
        print(v)


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "selftest":
        selftest()
    elif len(sys.argv) < 3 or sys.argv[1] not in ("run", "score"):
        sys.exit(__doc__)
    elif sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        score(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
