//! Folds inference-mode batch normalisation into the convolution before it, in a frozen
//! TensorFlow graph.
//!
//! Frozen TF Object Detection API exports keep every `FusedBatchNorm` (76 in SSDLite
//! MobileNetV2). tract turns each into a multiply and an add over the whole activation
//! tensor, and folds them into the convolution's weights only for ordinary convolutions,
//! not depthwise ones. Rewriting the graph first (`w' = w * s`, `b = offset - mean * s`
//! with `s = scale / sqrt(variance + epsilon)`) leaves a convolution and a `BiasAdd`,
//! what converters to ONNX produce, and saves those passes over memory on every frame.

use std::collections::HashMap;

use tract_tensorflow::prelude::*;
use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef, NodeDef, TensorProto};

/// A float constant read from a `Const` node (through any `Identity` nodes).
fn constant(graph: &GraphDef, index: &HashMap<String, usize>, name: &str) -> Option<Tensor> {
    let mut node = &graph.node[*index.get(tensor_node(name)?)?];
    for _ in 0..16 {
        match node.op.as_str() {
            "Identity" => node = &graph.node[*index.get(tensor_node(node.input.first()?)?)?],
            "Const" => {
                let Some(Value::Tensor(t)) = node.attr.get("value")?.value.as_ref() else {
                    return None;
                };
                let t = Tensor::try_from(t).ok()?;
                return (t.datum_type() == f32::datum_type()).then_some(t);
            }
            _ => return None,
        }
    }
    None
}

/// The node of a tensor name (`node`, `node:0`); `None` for other ports and control inputs.
fn tensor_node(s: &str) -> Option<&str> {
    if s.starts_with('^') {
        return None;
    }
    match s.rsplit_once(':') {
        Some((node, "0")) => Some(node),
        Some(_) => None,
        None => Some(s),
    }
}

fn attr_str(node: &NodeDef, name: &str) -> Option<String> {
    match node.attr.get(name)?.value.as_ref()? {
        Value::S(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

fn const_node(name: String, t: &Tensor) -> Option<NodeDef> {
    let proto = TensorProto::try_from(t).ok()?;
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        input: Vec::new(),
        device: String::new(),
        attr: Default::default(),
    };
    node.attr.insert("dtype".into(), DataType::DtFloat.into());
    node.attr.insert("value".into(), AttrValue::from(proto));
    Some(node)
}

fn floats(t: &Tensor) -> Option<&[f32]> {
    t.try_as_plain_ram().ok()?.as_slice::<f32>().ok()
}

/// One fold found: the norm node, its convolution, and the new filter and bias.
struct Fold {
    norm: usize,
    conv: usize,
    filter: Tensor,
    bias: Tensor,
}

fn plan(
    graph: &GraphDef,
    index: &HashMap<String, usize>,
    readers: &HashMap<&str, usize>,
    i: usize,
) -> Option<Fold> {
    let norm = &graph.node[i];
    if !matches!(norm.op.as_str(), "FusedBatchNorm" | "FusedBatchNormV3") {
        return None;
    }
    let nhwc = attr_str(norm, "data_format").is_none_or(|f| f == "NHWC");
    let training = matches!(
        norm.attr.get("is_training").and_then(|a| a.value.as_ref()),
        Some(Value::B(true))
    );
    if !nhwc || training || norm.input.len() < 5 {
        return None;
    }
    let epsilon = match norm.attr.get("epsilon").and_then(|a| a.value.as_ref()) {
        Some(Value::F(e)) => *e,
        _ => 1e-3,
    };
    let conv_name = tensor_node(&norm.input[0])?;
    let conv_ix = *index.get(conv_name)?;
    let conv = &graph.node[conv_ix];
    let depthwise = match conv.op.as_str() {
        "Conv2D" => false,
        "DepthwiseConv2dNative" => true,
        _ => return None,
    };
    // The convolution's output must feed this norm only (its weights change).
    if readers.get(conv_name).copied() != Some(1)
        || attr_str(conv, "data_format").is_some_and(|f| f != "NHWC")
    {
        return None;
    }
    let params: Vec<Tensor> = norm.input[1..5]
        .iter()
        .map(|n| constant(graph, index, n))
        .collect::<Option<_>>()?;
    let vec = |t: &Tensor| floats(t).map(<[f32]>::to_vec);
    let (scale, offset, mean, variance) = (
        vec(&params[0])?,
        vec(&params[1])?,
        vec(&params[2])?,
        vec(&params[3])?,
    );
    let channels = scale.len();
    if [offset.len(), mean.len(), variance.len()] != [channels; 3] {
        return None;
    }
    let filter = constant(graph, index, conv.input.get(1)?)?;
    // Conv2D: [kh, kw, in, out]; depthwise: [kh, kw, in, multiplier], output in * m + k.
    let shape = filter.shape().to_vec();
    if shape.len() != 4 {
        return None;
    }
    let out_channels = if depthwise {
        shape[2] * shape[3]
    } else {
        shape[3]
    };
    if out_channels != channels {
        return None;
    }
    let slope: Vec<f32> = scale
        .iter()
        .zip(&variance)
        .map(|(s, v)| s / (v + epsilon).sqrt())
        .collect();
    let mut filter = filter;
    // The innermost dimensions (in, out) or (in, multiplier) run over the output channel
    // in order, so the flat index modulo the channel count is the output channel.
    {
        let mut view = filter.try_as_plain_ram_mut().ok()?;
        for (k, w) in view.as_slice_mut::<f32>().ok()?.iter_mut().enumerate() {
            *w *= slope[k % channels];
        }
    }
    let bias: Vec<f32> = (0..channels)
        .map(|c| offset[c] - mean[c] * slope[c])
        .collect();
    Some(Fold {
        norm: i,
        conv: conv_ix,
        filter,
        bias: tensor1(&bias),
    })
}

/// Rewrites every foldable `FusedBatchNorm` (inference mode, NHWC, constant parameters,
/// after a `Conv2D` or `DepthwiseConv2dNative` with a constant filter that feeds nothing
/// else) into new filter and bias constants and a `BiasAdd` under the norm's name.
/// Returns how many were folded; anything else is left as it was.
pub(crate) fn fold_batch_norms(graph: &mut GraphDef) -> usize {
    let index: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut readers: HashMap<&str, usize> = HashMap::new();
    // Any read of another port (a norm's batch statistics) makes a node unfoldable.
    let mut other_port: Vec<&str> = Vec::new();
    for n in &graph.node {
        for inp in &n.input {
            match tensor_node(inp) {
                Some(name) => *readers.entry(name).or_default() += 1,
                None if !inp.starts_with('^') => {
                    other_port.extend(inp.rsplit_once(':').map(|(n, _)| n));
                }
                None => {}
            }
        }
    }
    let folds: Vec<Fold> = (0..graph.node.len())
        .filter(|&i| !other_port.contains(&graph.node[i].name.as_str()))
        .filter_map(|i| plan(graph, &index, &readers, i))
        .collect();
    let mut added = Vec::with_capacity(folds.len() * 2);
    for f in &folds {
        let conv_name = graph.node[f.conv].name.clone();
        let filter_name = format!("{conv_name}/nv_folded_filter");
        let bias_name = format!("{conv_name}/nv_folded_bias");
        let (Some(filter), Some(bias)) = (
            const_node(filter_name.clone(), &f.filter),
            const_node(bias_name.clone(), &f.bias),
        ) else {
            continue;
        };
        graph.node[f.conv].input[1] = filter_name;
        let norm = &mut graph.node[f.norm];
        norm.op = "BiasAdd".into();
        norm.input = vec![conv_name, bias_name];
        norm.attr.clear();
        norm.attr.insert("T".into(), DataType::DtFloat.into());
        added.push(filter);
        added.push(bias);
    }
    let folded = added.len() / 2;
    graph.node.extend(added);
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            device: String::new(),
            attr: Default::default(),
        }
    }

    fn konst(name: &str, t: Tensor) -> NodeDef {
        const_node(name.into(), &t).unwrap()
    }

    fn graph(conv_op: &str, filter: Tensor) -> GraphDef {
        let conv = node("conv", conv_op, &["x", "w/read"]);
        let mut bn = node("bn", "FusedBatchNorm", &["conv", "s", "o", "m", "v"]);
        bn.attr.insert("epsilon".into(), AttrValue::from(0.001f32));
        GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                konst("w", filter),
                node("w/read", "Identity", &["w"]),
                conv,
                konst("s", tensor1(&[2.0f32, 0.5])),
                konst("o", tensor1(&[1.0f32, -1.0])),
                konst("m", tensor1(&[0.5f32, 4.0])),
                konst("v", tensor1(&[3.999f32, 0.999])),
                bn,
                node("relu", "Relu6", &["bn"]),
            ],
            ..Default::default()
        }
    }

    fn filter_of(g: &GraphDef) -> Vec<f32> {
        let index: HashMap<String, usize> = g
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let conv = &g.node[index["conv"]];
        floats(&constant(g, &index, &conv.input[1]).unwrap())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn folds_scale_into_the_filter_and_the_rest_into_a_bias() {
        // s = scale / sqrt(v + eps) = [1.0, 0.5]; bias = o - m * s = [0.5, -3.0].
        let filter = Tensor::from_shape(&[1, 1, 1, 2], &[3.0f32, 4.0]).unwrap();
        for op in ["Conv2D", "DepthwiseConv2dNative"] {
            let mut g = graph(op, filter.clone());
            assert_eq!(fold_batch_norms(&mut g), 1, "{op}");
            let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
            assert!(close(&filter_of(&g), &[3.0, 2.0]), "{:?}", filter_of(&g));
            let bn = g.node.iter().find(|n| n.name == "bn").unwrap();
            assert_eq!(bn.op, "BiasAdd");
            assert_eq!(bn.input, ["conv", "conv/nv_folded_bias"]);
            let index: HashMap<String, usize> = g
                .node
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect();
            let bias = constant(&g, &index, "conv/nv_folded_bias").unwrap();
            assert!(close(floats(&bias).unwrap(), &[0.5, -3.0]));
        }
    }

    #[test]
    fn leaves_norms_it_cannot_fold() {
        let filter = Tensor::from_shape(&[1, 1, 1, 2], &[3.0f32, 4.0]).unwrap();
        // The convolution's output is read elsewhere too.
        let mut g = graph("Conv2D", filter.clone());
        g.node.push(node("other", "Relu", &["conv"]));
        assert_eq!(fold_batch_norms(&mut g), 0);
        // Training mode.
        let mut g = graph("Conv2D", filter.clone());
        let bn = g.node.iter_mut().find(|n| n.name == "bn").unwrap();
        bn.attr.insert("is_training".into(), AttrValue::from(true));
        assert_eq!(fold_batch_norms(&mut g), 0);
        // A batch statistic output is read.
        let mut g = graph("Conv2D", filter.clone());
        g.node.push(node("stat", "Identity", &["bn:1"]));
        assert_eq!(fold_batch_norms(&mut g), 0);
        // Channel counts that do not match.
        let mut g = graph(
            "Conv2D",
            Tensor::from_shape(&[1, 1, 2, 1], &[3.0f32, 4.0]).unwrap(),
        );
        assert_eq!(fold_batch_norms(&mut g), 0);
        assert_eq!(
            g.node.iter().filter(|n| n.op == "FusedBatchNorm").count(),
            1
        );
    }
}
