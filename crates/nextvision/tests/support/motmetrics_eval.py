"""Scores a MOTChallenge hypothesis file against ground truth with py-motmetrics.

Usage: motmetrics_eval.py GT HYP  ->  prints "MOTA IDF1 IDSW" (IoU threshold 0.5).
"""
import sys

import motmetrics as mm

gt = mm.io.loadtxt(sys.argv[1], fmt="mot15-2D", min_confidence=1)
ts = mm.io.loadtxt(sys.argv[2], fmt="mot15-2D")
acc = mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5)
mh = mm.metrics.create()
s = mh.compute(acc, metrics=["mota", "idf1", "num_switches"], name="seq")
print(f"{s['mota'].iloc[0]:.6f} {s['idf1'].iloc[0]:.6f} {int(s['num_switches'].iloc[0])}")
