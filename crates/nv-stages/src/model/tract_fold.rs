//! Graph rewrites on tract's typed model, between decluttering and code generation.
//!
//! tract absorbs a per-channel `Add` (a TensorFlow `BiasAdd`, a folded batch norm's offset)
//! into the convolution before it only for ordinary convolutions (`group == 1`). After a
//! depthwise convolution the `Add` stays a node of its own: one more pass over the whole
//! activation tensor per depthwise layer (17 in SSDLite-MobileNetV2), although the
//! depthwise operator adds a bias as it computes each output. [`fold_depthwise_bias`]
//! moves such constants into the convolution's bias input.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::math::Add;

/// A fold found: the convolution, its `Add` successor and the new bias.
struct Found {
    conv: usize,
    add: usize,
    bias: Tensor,
}

/// The per-channel constant `operand` as `channels` values, when it is one: the same
/// number of values as channels, laid along the output's channel axis (`c_axis` of
/// `out_rank` axes, numpy broadcasting from the right), every other axis 1.
fn per_channel(
    operand: &Tensor,
    channels: usize,
    c_axis: usize,
    out_rank: usize,
) -> Option<Vec<f32>> {
    let shape = operand.shape();
    let r = shape.len();
    if operand.datum_type() != f32::datum_type() || r > out_rank || operand.len() != channels {
        return None;
    }
    let offset = out_rank - r;
    let aligned = shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || i + offset == c_axis);
    if !aligned || (channels > 1 && c_axis < offset) {
        return None;
    }
    Some(
        operand
            .try_as_plain_ram()
            .ok()?
            .as_slice::<f32>()
            .ok()?
            .to_vec(),
    )
}

fn find(model: &TypedModel) -> TractResult<Option<Found>> {
    for &id in &model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        if conv.group == 1 || conv.q_params.is_some() || node.inputs.len() != 3 {
            continue;
        }
        let [succ] = &*node.outputs[0].successors else {
            continue;
        };
        let add = model.node(succ.node);
        let Some(bin) = add.op_as::<TypedBinOp>() else {
            continue;
        };
        if !bin.0.is::<Add>() || model.output_outlets()?.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
        let c_axis = conv.pool_spec.data_format.shape(&out_fact.shape)?.c_axis();
        let channels = conv.output_channels();
        let other = add.inputs[1 - succ.slot];
        let (Some(operand), Some(bias)) = (
            model.outlet_fact(other)?.konst.clone(),
            model.outlet_fact(node.inputs[2])?.konst.clone(),
        ) else {
            continue;
        };
        // The sum must have the convolution's output shape (no broadcast beyond it).
        if model.outlet_fact(OutletId::new(add.id, 0))?.shape != out_fact.shape {
            continue;
        }
        let Some(offset) = per_channel(&operand, channels, c_axis, out_fact.rank()) else {
            continue;
        };
        if bias.datum_type() != f32::datum_type() || (bias.len() != 1 && bias.len() != channels) {
            continue;
        }
        let old: Vec<f32> = bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let summed: Vec<f32> = (0..channels)
            .map(|c| old[if old.len() == 1 { 0 } else { c }] + offset[c])
            .collect();
        return Ok(Some(Found {
            conv: id,
            add: add.id,
            bias: tensor1(&summed),
        }));
    }
    Ok(None)
}

/// Folds every per-channel constant `Add` after a grouped (depthwise) convolution into the
/// convolution's bias; returns how many were folded. The result is the same up to float
/// rounding (the bias is added first instead of last).
pub(crate) fn fold_depthwise_bias(model: &mut TypedModel) -> TractResult<usize> {
    let mut folded = 0;
    while let Some(f) = find(model)? {
        let node = model.node(f.conv);
        let Some(conv) = node.op_as::<Conv>().cloned() else {
            break;
        };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let kernel = patch.tap_model(model, node.inputs[1])?;
        let bias = patch.add_const(format!("{}.bias_folded", node.name), f.bias)?;
        let wire = patch.wire_node(&node.name, conv, &[input, kernel, bias])?[0];
        patch.shunt_outside(model, OutletId::new(f.add, 0), wire)?;
        patch.apply(model)?;
        folded += 1;
        if folded > 100_000 {
            return Err(TractError::msg("depthwise bias folding did not converge"));
        }
    }
    if folded > 0 {
        model.compact()?;
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_constants_are_recognised_on_the_channel_axis_only() {
        // NHWC output of rank 4, 3 channels on the last axis.
        let t = tensor1(&[1f32, 2., 3.]);
        assert_eq!(per_channel(&t, 3, 3, 4), Some(vec![1., 2., 3.]));
        let t = Tensor::from_shape(&[1, 1, 1, 3], &[1f32, 2., 3.]).unwrap();
        assert!(per_channel(&t, 3, 3, 4).is_some());
        // NCHW: a rank-1 operand broadcasts along W, not C.
        assert!(per_channel(&tensor1(&[1f32, 2., 3.]), 3, 1, 4).is_none());
        let t = Tensor::from_shape(&[1, 3, 1, 1], &[1f32, 2., 3.]).unwrap();
        assert!(per_channel(&t, 3, 1, 4).is_some());
        // Wrong count, wrong axis, wrong type.
        assert!(per_channel(&tensor1(&[1f32, 2.]), 3, 3, 4).is_none());
        let t = Tensor::from_shape(&[1, 3, 1, 1], &[1f32, 2., 3.]).unwrap();
        assert!(per_channel(&t, 3, 3, 4).is_none());
        assert!(per_channel(&tensor1(&[1i32, 2, 3]), 3, 3, 4).is_none());
    }

    /// A depthwise convolution (3x3, SAME, 2 channels) and a `BiasAdd`, as TensorFlow
    /// writes them, loaded by tract-tensorflow.
    fn depthwise_then_bias() -> TypedModel {
        use tract_tensorflow::tfpb::tensorflow::{
            AttrValue, DataType, GraphDef, NodeDef, TensorProto,
        };
        let node = |name: &str, op: &str, inputs: &[&str]| NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            device: String::new(),
            attr: Default::default(),
        };
        let konst = |name: &str, t: Tensor| {
            let mut n = node(name, "Const", &[]);
            n.attr.insert("dtype".into(), DataType::DtFloat.into());
            n.attr.insert(
                "value".into(),
                AttrValue::from(TensorProto::try_from(&t).unwrap()),
            );
            n
        };
        let mut x = node("x", "Placeholder", &[]);
        x.attr.insert("dtype".into(), DataType::DtFloat.into());
        let mut conv = node("conv", "DepthwiseConv2dNative", &["x", "w"]);
        conv.attr
            .insert("strides".into(), AttrValue::from(vec![1i64, 1, 1, 1]));
        conv.attr
            .insert("dilations".into(), AttrValue::from(vec![1i64, 1, 1, 1]));
        conv.attr.insert("padding".into(), AttrValue::from("SAME"));
        conv.attr.insert("T".into(), DataType::DtFloat.into());
        let filter: Vec<f32> = (0..18).map(|i| (i as f32 - 8.0) / 10.0).collect();
        let graph = GraphDef {
            node: vec![
                x,
                konst("w", Tensor::from_shape(&[3, 3, 2, 1], &filter).unwrap()),
                conv,
                konst("b", tensor1(&[0.25f32, -1.5])),
                node("out", "BiasAdd", &["conv", "b"]),
            ],
            ..Default::default()
        };
        let tf = tract_tensorflow::tensorflow();
        let mut model = tf.model_for_proto_model(&graph).unwrap();
        model
            .set_input_fact(0, f32::fact([1, 4, 5, 2]).into())
            .unwrap();
        model.into_typed().unwrap().into_decluttered().unwrap()
    }

    fn run(model: TypedModel, input: &Tensor) -> Vec<f32> {
        let out = model
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec![input.clone().into_tvalue()])
            .unwrap();
        out[0]
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn folding_keeps_the_result_and_removes_the_add() {
        let input: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let input = Tensor::from_shape(&[1, 4, 5, 2], &input).unwrap();
        let plain = depthwise_then_bias();
        let adds = |m: &TypedModel| {
            m.nodes()
                .iter()
                .filter(|n| n.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>()))
                .count()
        };
        assert_eq!(adds(&plain), 1);
        let mut folded = plain.clone();
        assert_eq!(fold_depthwise_bias(&mut folded).unwrap(), 1);
        assert_eq!(adds(&folded), 0);
        let (want, got) = (run(plain, &input), run(folded, &input));
        assert_eq!(want.len(), 40);
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < 1e-5, "{want:?} vs {got:?}");
        }
        // Folding twice finds nothing more.
        let mut again = depthwise_then_bias();
        fold_depthwise_bias(&mut again).unwrap();
        assert_eq!(fold_depthwise_bias(&mut again).unwrap(), 0);
    }
}
