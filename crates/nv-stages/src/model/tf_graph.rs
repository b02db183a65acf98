//! Loading a TensorFlow frozen graph cut between two sets of tensors.
//!
//! Object-detection exports wrap the network in image decoding, resizing and
//! post-processing (`TensorArray` while loops, `NonMaxSuppressionV3`, `TopKV2`, `Where`)
//! that tract does not run. The cut replaces the input node by a placeholder and keeps only
//! the nodes the outputs depend on, so tract never sees the rest.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tract_tensorflow::prelude::*;
use tract_tensorflow::tfpb::tensorflow::{
    tensor_shape_proto::Dim, DataType, GraphDef, NodeDef, TensorShapeProto,
};

use super::config::TfGraphCut;

/// Splits `node:port` (port 0 when absent). Control inputs (`^node`) give `None`.
fn tensor_name(s: &str) -> Option<(&str, usize)> {
    if s.starts_with('^') {
        return None;
    }
    match s.rsplit_once(':') {
        Some((node, port)) => port.parse().ok().map(|p| (node, p)),
        None => Some((s, 0)),
    }
}

/// Cuts `graph` in place: `cut.input` becomes a float placeholder of `input_shape`
/// (`-1` for an open dimension), nodes the outputs do not need are removed. Errors name
/// the missing node or the input the outputs do not depend on.
pub(crate) fn cut_graph(
    graph: &mut GraphDef,
    cut: &TfGraphCut,
    input_shape: [i64; 4],
) -> Result<(), String> {
    let index: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let input = *index
        .get(cut.input.as_str())
        .ok_or_else(|| format!("graph has no node named {:?} (the cut's input)", cut.input))?;
    let mut keep: HashSet<usize> = HashSet::new();
    let mut stack = Vec::new();
    for o in &cut.outputs {
        let (name, _) =
            tensor_name(o).ok_or_else(|| format!("output {o:?} is not a tensor name"))?;
        let i = *index
            .get(name)
            .ok_or_else(|| format!("graph has no node named {name:?} (a cut output)"))?;
        stack.push(i);
    }
    while let Some(i) = stack.pop() {
        if !keep.insert(i) || i == input {
            continue;
        }
        // Control dependencies (`^node`) only order side effects: not needed here.
        for inp in &graph.node[i].input {
            if let Some((name, _)) = tensor_name(inp) {
                let j = *index.get(name).ok_or_else(|| {
                    format!(
                        "node {:?} reads {name:?}, which the graph lacks",
                        graph.node[i].name
                    )
                })?;
                stack.push(j);
            }
        }
    }
    if !keep.contains(&input) {
        return Err(format!(
            "the cut outputs {:?} do not depend on the input {:?}",
            cut.outputs, cut.input
        ));
    }
    let mut placeholder = NodeDef {
        name: cut.input.clone(),
        op: "Placeholder".into(),
        input: Vec::new(),
        device: String::new(),
        attr: Default::default(),
    };
    placeholder
        .attr
        .insert("dtype".into(), DataType::DtFloat.into());
    placeholder.attr.insert(
        "shape".into(),
        TensorShapeProto {
            dim: input_shape
                .iter()
                .map(|&size| Dim {
                    size,
                    name: String::new(),
                })
                .collect(),
            unknown_rank: false,
        }
        .into(),
    );
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(i, mut n)| {
            if i == input {
                return placeholder.clone();
            }
            n.input.retain(|s| !s.starts_with('^'));
            n
        })
        .collect();
    Ok(())
}

/// Reads `path`, cuts it and returns the inference model with the cut's outputs selected.
/// `input_shape` as in [`cut_graph`].
pub(crate) fn load(
    path: &Path,
    cut: &TfGraphCut,
    input_shape: [i64; 4],
) -> Result<InferenceModel, String> {
    let tf = tensorflow();
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read TensorFlow graph {}: {e}", path.display()))?;
    let mut graph = tf
        .read_frozen_model(&mut bytes.as_slice())
        .map_err(|e| format!("{} is not a TensorFlow frozen graph: {e:#}", path.display()))?;
    drop(bytes);
    cut_graph(&mut graph, cut, input_shape)
        .map_err(|e| format!("cannot cut TensorFlow graph {}: {e}", path.display()))?;
    super::tf_fold::fold_batch_norms(&mut graph);
    let mut model = tf
        .model_for_proto_model(&graph)
        .map_err(|e| format!("cannot load TensorFlow graph {}: {e:#}", path.display()))?;
    let mut outlets = Vec::with_capacity(cut.outputs.len());
    for o in &cut.outputs {
        let (name, port) =
            tensor_name(o).ok_or_else(|| format!("output {o:?} is not a tensor name"))?;
        let id = model
            .node_id_by_name(name)
            .map_err(|e| format!("cut output {o:?}: {e:#}"))?;
        outlets.push(OutletId::new(id, port));
    }
    model
        .select_output_outlets(&outlets)
        .map_err(|e| format!("cannot select outputs {:?}: {e:#}", cut.outputs))?;
    Ok(model)
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

    #[test]
    fn cut_keeps_only_what_the_outputs_need() {
        let mut g = GraphDef {
            node: vec![
                node("image", "Placeholder", &[]),
                node("pre/sub", "Sub", &["image", "c"]),
                node("c", "Const", &[]),
                node("net", "Conv2D", &["pre/sub", "w", "^init"]),
                node("w", "Const", &[]),
                node("init", "NoOp", &[]),
                node("post/loop", "While", &["net:0"]),
                node("head", "Identity", &["net"]),
            ],
            ..Default::default()
        };
        let cut = TfGraphCut {
            input: "pre/sub".into(),
            outputs: vec!["head:0".into()],
        };
        cut_graph(&mut g, &cut, [-1, 8, 8, 3]).unwrap();
        let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["pre/sub", "net", "w", "head"]);
        assert_eq!(g.node[0].op, "Placeholder");
        assert!(g.node[0].input.is_empty());
        assert_eq!(g.node[1].input, ["pre/sub", "w"]);

        let mut g2 = g.clone();
        let bad = TfGraphCut {
            input: "nowhere".into(),
            outputs: vec!["head".into()],
        };
        assert!(cut_graph(&mut g2, &bad, [1, 8, 8, 3])
            .unwrap_err()
            .contains("\"nowhere\""));
        let unrelated = TfGraphCut {
            input: "w".into(),
            outputs: vec!["pre/sub".into()],
        };
        assert!(cut_graph(&mut g2, &unrelated, [1, 8, 8, 3])
            .unwrap_err()
            .contains("do not depend"));
    }
}
