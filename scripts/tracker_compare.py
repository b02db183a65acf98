#!/usr/bin/env python3
"""Runs Roboflow `trackers` on the tracker suite's exported detections and scores every
tracker (ours included) with py-motmetrics. Driven by scripts/tracker_bench.sh.

  tracker_compare.py run SCENES    # in a venv with trackers==2.6.1: writes SORT/ByteTrack/OC-SORT
  tracker_compare.py score SCENES  # in a venv with motmetrics: prints the Markdown table

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
    print("| scene | tracker | MOTA | IDF1 | IDSW | FP | FN | us/frame |")
    print("|---|---|---|---|---|---|---|---|")
    for scene in scenes(root):
        gt = mm.io.loadtxt(str(scene / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        timings_path = scene / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
        timings["nextvision"] = ours_us.get(scene.name, float("nan"))
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
            print(
                f"| {scene.name} | {name} | {r['mota']:.3f} | {r['idf1']:.3f} | "
                f"{int(r['num_switches'])} | {int(r['num_false_positives'])} | "
                f"{int(r['num_misses'])} | {timings.get(name, float('nan')):.1f} |"
            )


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("run", "score"):
        sys.exit(__doc__)
    if sys.argv[1] == "run":
        run(sys.argv[2])
    else:
        score(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
