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
}
