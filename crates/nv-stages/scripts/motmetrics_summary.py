"""Scores a MOTChallenge ground-truth / hypothesis file pair with py-motmetrics, for
cross-checking nv_stages::eval on the same files (IoU >= 0.5 matching).

Usage: python motmetrics_summary.py GT.txt HYP.txt
Prints one `name value` line per metric, names as in nv_stages::eval::MotSummary.

Needs `motmetrics` (1.4.0 uses `np.asfarray`, removed in NumPy 2: pin `numpy<2` and a
pandas built for it, e.g. `pandas<2.3`).
"""

import sys

import motmetrics as mm


def main() -> None:
    gt_path, hyp_path = sys.argv[1], sys.argv[2]
    gt = mm.io.loadtxt(gt_path, fmt="mot15-2D", min_confidence=1)
    hyp = mm.io.loadtxt(hyp_path, fmt="mot15-2D")
    acc = mm.utils.compare_to_groundtruth(gt, hyp, "iou", distth=0.5)
    names = {
        "num_objects": "num_objects",
        "num_matches": "matches",
        "num_false_positives": "false_positives",
        "num_misses": "misses",
        "num_switches": "id_switches",
        "mota": "mota",
        "motp": "motp",
        "idf1": "idf1",
        "idp": "idp",
        "idr": "idr",
    }
    summary = mm.metrics.create().compute(acc, metrics=list(names), name="seq")
    for mm_name, ours in names.items():
        print(f"{ours} {summary.iloc[0][mm_name]}")


if __name__ == "__main__":
    main()
