"""Checks a conversion of the person detector against TensorFlow (see convert-person-onnx.sh).

Usage: convert-person-onnx-check.py FROZEN_GRAPH.pb CONVERTED.onnx; exits 0 when both outputs
match TensorFlow's on a fixed input within 1e-3.
"""

import sys

import numpy as np
import onnxruntime as ort
import tensorflow as tf

pb, onnx_path = sys.argv[1:3]
graph_def = tf.compat.v1.GraphDef()
with open(pb, "rb") as f:
    graph_def.ParseFromString(f.read())
g = tf.Graph()
with g.as_default():
    tf.import_graph_def(graph_def, name="")
# A fixed, textured input in the model's range [-1, 1].
x = ((np.arange(300 * 300 * 3, dtype=np.float32).reshape(1, 300, 300, 3) * 7.0) % 251.0) / 125.0 - 1.0
with tf.compat.v1.Session(graph=g) as s:
    tb, tc = s.run(["Squeeze:0", "concat_1:0"], {"Preprocessor/sub:0": x})
sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
ob, oc = sess.run(["Squeeze:0", "concat_1:0"], {"Preprocessor/sub:0": x})
diff = max(float(np.abs(tb - ob).max()), float(np.abs(tc - oc).max()))
print(f"convert-person-onnx: max |tensorflow - onnx| = {diff:.2e}", file=sys.stderr)
sys.exit(0 if diff <= 1e-3 else 1)
