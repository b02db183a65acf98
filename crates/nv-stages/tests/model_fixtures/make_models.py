#!/usr/bin/env python3
"""Writes the tiny ONNX graphs the model detector tests load (tests/model_onnx.rs).

Usage: make_models.py OUT_DIR

Every graph takes one NCHW f32 image `images` of 64x64 (batch dimension dynamic unless
the name says static) and produces constants scaled by the maximum input value, so a
white frame yields the constants exactly and a black, unpadded frame yields zeros. The
constants below are mirrored in the Rust tests; change both together.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8

# YOLO anchors as rows of cx, cy, w, h, score(class 0), score(class 1), score(class 2),
# in model-input pixels.
YOLO_ROWS = [
    [16, 24, 8, 8, 0.9, 0.1, 0.0],
    [17, 24, 8, 8, 0.8, 0.0, 0.0],  # overlaps row 0, same class: suppressed by NMS
    [17, 24, 8, 8, 0.0, 0.7, 0.0],  # same box, other class: kept
    [48, 40, 16, 8, 0.0, 0.0, 0.6],
    [32, 32, 8, 8, 0.2, 0.2, 0.2],  # below the confidence threshold
    [40, 20, 4, 4, 0.3, 0.0, 0.0],
    [0, 0, 0, 0, 0.0, 0.0, 0.0],
    [0, 0, 0, 0, 0.0, 0.0, 0.0],
]

# YOLOv5 rows: cx, cy, w, h, objectness, class 0, class 1.
YOLOV5_ROWS = [
    [16, 24, 8, 8, 0.5, 0.2, 0.8],  # 0.4, class 1
    [40, 40, 8, 8, 0.2, 1.0, 0.0],  # objectness below threshold
    [48, 32, 8, 8, 0.9, 0.25, 0.0],  # 0.225 below threshold
]

# End-to-end rows: x1, y1, x2, y2, score, class.
E2E_ROWS = [
    [4, 20, 12, 28, 0.5, 2],
    [20, 24, 10, 40, 0.95, 0],  # corners in the wrong order
    [0, 0, 0, 0, 0.0, 0],  # padding row
    [30, 30, 34, 34, 0.1, 1],  # below threshold
]

# SSD: boxes y1, x1, y2, x2 normalised; scores with class 0 = background.
SSD_BOXES = [
    [0.25, 0.125, 0.5, 0.375],
    [0.25, 0.125, 0.5, 0.375],
    [0.75, 0.75, 1.0, 1.0],
]
SSD_SCORES = [
    [0.1, 0.8, 0.1],
    [0.1, 0.1, 0.6],
    [0.9, 0.05, 0.05],
]


def image_input(batch, channels=3, height=64, width=64):
    return helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, [batch, channels, height, width]
    )


def scaled_constant(name, value, nodes, inits):
    """Node computing `value * max(images)`, broadcast over the batch."""
    const = numpy_helper.from_array(np.asarray(value, dtype=np.float32), name + "_k")
    inits.append(const)
    if not any(n.output[0] == "max" for n in nodes):
        nodes.append(
            helper.make_node(
                "ReduceMax", ["images"], ["max"], axes=[1, 2, 3], keepdims=1
            )
        )
        # [N, 1, 1, 1] -> [N, 1, 1] so it broadcasts against rank-3 constants.
        inits.append(numpy_helper.from_array(np.array([-1, 1, 1], dtype=np.int64), "shape3"))
        nodes.append(helper.make_node("Reshape", ["max", "shape3"], ["max3"]))
    nodes.append(helper.make_node("Mul", [name + "_k", "max3"], [name]))


def save(out_dir, file_name, nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, file_name, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, file_name))


def constant_model(out_dir, file_name, named_values, batch="batch", channels=3, size=64):
    nodes, inits, outputs = [], [], []
    for name, value in named_values:
        scaled_constant(name, [value], nodes, inits)
        shape = [batch] + list(np.asarray(value).shape)
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    save(out_dir, file_name, nodes, [image_input(batch, channels, size, size)], outputs, inits)


def ink_model(out_dir):
    """[N, 1, H, W] map: 1 - mean over channels (dark pixels score high)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["one", "mean"], ["ink"]),
    ]
    inits = [numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")]
    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    out = helper.make_tensor_value_info("ink", TensorProto.FLOAT, ["batch", 1, "h", "w"])
    save(out_dir, "ink.onnx", nodes, [inp], [out], inits)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    yolo = np.asarray(YOLO_ROWS, dtype=np.float32)  # [A, 4 + C]
    constant_model(out_dir, "yolov8.onnx", [("output0", yolo.T)])
    constant_model(out_dir, "yolov8_static.onnx", [("output0", yolo.T)], batch=1)
    constant_model(out_dir, "yolov8_transposed.onnx", [("output0", yolo)])
    constant_model(out_dir, "yolov5.onnx", [("output0", YOLOV5_ROWS)])
    constant_model(out_dir, "e2e.onnx", [("output0", E2E_ROWS)])
    constant_model(out_dir, "ssd.onnx", [("boxes", SSD_BOXES), ("scores", SSD_SCORES)])
    constant_model(out_dir, "one_channel.onnx", [("output0", yolo.T)], batch=1, channels=1)
    constant_model(out_dir, "input32.onnx", [("output0", yolo.T)], batch=1, size=32)
    ink_model(out_dir)


if __name__ == "__main__":
    main()
