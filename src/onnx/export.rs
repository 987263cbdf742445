//! Writing a graph back as an ONNX model (used to export the quantized QDQ model).

use std::collections::HashSet;

use prost::Message;

use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_shape_proto::Dimension, tensor_shape_proto::dimension::Value as DimValue, type_proto,
};
use crate::ir::{Attr, DType, Dim, Graph, Tensor, ValueId};

/// IR version written (ONNX 1.10+, understood by every current runtime).
pub const IR_VERSION: i64 = 8;

/// Serializes `graph` as ONNX model bytes with the graph's opset.
pub fn model_bytes(graph: &Graph, metadata: &[(String, String)]) -> Vec<u8> {
    to_model(graph, metadata).encode_to_vec()
}

/// Converts `graph` to a `ModelProto`.
pub fn to_model(graph: &Graph, metadata: &[(String, String)]) -> ModelProto {
    let mut opsets = vec![OperatorSetIdProto {
        domain: Some(String::new()),
        version: Some(graph.opset),
    }];
    for (d, v) in &graph.other_opsets {
        opsets.push(OperatorSetIdProto {
            domain: Some(d.clone()),
            version: Some(*v),
        });
    }
    let used: HashSet<ValueId> = graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().flatten().copied())
        .chain(graph.outputs.iter().copied())
        .collect();
    let mut consts: Vec<(&ValueId, _)> = graph
        .constants
        .iter()
        .filter(|(id, _)| used.contains(id))
        .collect();
    consts.sort_by_key(|(id, _)| **id);
    let initializer = consts
        .iter()
        .map(|(id, t)| tensor_proto(graph.value_name(**id), t))
        .collect();
    let vi = |id: &ValueId| value_info(graph, *id);
    let g = GraphProto {
        node: graph.nodes.iter().map(|n| node_proto(graph, n)).collect(),
        name: Some("qtune".into()),
        initializer,
        input: graph.inputs.iter().map(vi).collect(),
        output: graph.outputs.iter().map(vi).collect(),
        ..Default::default()
    };
    let mut props: Vec<(String, String)> = graph
        .metadata
        .iter()
        .filter(|(k, _)| !metadata.iter().any(|(m, _)| m == k))
        .cloned()
        .collect();
    props.extend_from_slice(metadata);
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: opsets,
        producer_name: Some("qtune".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(g),
        metadata_props: props
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
        ..Default::default()
    }
}

fn value_info(graph: &Graph, id: ValueId) -> ValueInfoProto {
    let v = graph.value(id);
    let shape = v.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Dim::Fixed(n) => DimValue::DimValue(*n as i64),
                    Dim::Dynamic(s) if s.is_empty() => DimValue::DimParam("?".into()),
                    Dim::Dynamic(s) => DimValue::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(v.name.clone()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(v.dtype.unwrap_or(DType::F32).onnx_code()),
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node_proto(graph: &Graph, n: &crate::ir::Node) -> NodeProto {
    let name = |v: &Option<ValueId>| {
        v.map(|v| graph.value_name(v).to_string())
            .unwrap_or_default()
    };
    NodeProto {
        input: n.inputs.iter().map(name).collect(),
        output: n.outputs.iter().map(name).collect(),
        name: Some(n.name.clone()),
        op_type: Some(n.op_type.clone()),
        domain: Some(n.domain.clone()),
        attribute: n
            .attrs
            .iter()
            .filter_map(|(k, a)| attr_proto(k, a))
            .collect(),
        ..Default::default()
    }
}

fn attr_proto(name: &str, a: &Attr) -> Option<AttributeProto> {
    let mut p = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let ty = match a {
        Attr::Float(f) => {
            p.f = Some(*f);
            AttributeType::Float
        }
        Attr::Int(i) => {
            p.i = Some(*i);
            AttributeType::Int
        }
        Attr::String(s) => {
            p.s = Some(s.as_bytes().to_vec());
            AttributeType::String
        }
        Attr::Tensor(t) => {
            p.t = Some(tensor_proto("", t));
            AttributeType::Tensor
        }
        Attr::Floats(v) => {
            p.floats = v.clone();
            AttributeType::Floats
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            AttributeType::Ints
        }
        Attr::Strings(v) => {
            p.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            AttributeType::Strings
        }
        Attr::Unsupported(_) => return None,
    };
    p.r#type = Some(ty as i32);
    Some(p)
}

/// A tensor as a `TensorProto` with little-endian `raw_data`.
pub fn tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut raw = Vec::with_capacity(t.nbytes());
    match t {
        Tensor::F32(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::F64(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::I64(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::I32(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::I8(a) => raw.extend(a.iter().map(|v| *v as u8)),
        Tensor::U8(a) => raw.extend(a.iter()),
        Tensor::Bool(a) => raw.extend(a.iter().map(|v| *v as u8)),
        Tensor::F16(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::BF16(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::I16(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::U16(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::U32(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
        Tensor::U64(a) => a
            .iter()
            .for_each(|v| raw.extend_from_slice(&v.to_le_bytes())),
    }
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype().onnx_code()),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::onnx::load::graph_from_bytes;

    #[test]
    fn export_then_load_round_trips() {
        let mut g = Graph {
            opset: 13,
            ..Default::default()
        };
        let x = g.add_value("x", Some(DType::F32));
        g.values[x.0].shape = Some(vec![Dim::Dynamic("N".into()), Dim::Fixed(4)]);
        g.inputs.push(x);
        let w = g.add_constant("w", Tensor::from_f32(&[4], vec![1.0, -2.0, 3.5, 0.0]));
        let y = g.add_value("y", Some(DType::F32));
        g.nodes.push(crate::ir::Node {
            name: "mul".into(),
            op_type: "Mul".into(),
            domain: String::new(),
            inputs: vec![Some(x), Some(w)],
            outputs: vec![Some(y)],
            attrs: [("note".to_string(), Attr::Ints(vec![1, 2]))]
                .into_iter()
                .collect(),
        });
        g.outputs.push(y);
        let bytes = model_bytes(&g, &[("qtune_version".into(), "test".into())]);
        let back = graph_from_bytes(&bytes, Path::new("mem.onnx")).unwrap();
        assert_eq!(back.opset, 13);
        assert_eq!(back.nodes[0].op_type, "Mul");
        assert_eq!(back.nodes[0].attrs["note"], Attr::Ints(vec![1, 2]));
        let wid = back.find_value("w").unwrap();
        assert_eq!(back.constants[&wid].to_f64_vec(), vec![1.0, -2.0, 3.5, 0.0]);
        assert_eq!(
            back.value(back.inputs[0]).shape,
            Some(vec![Dim::Dynamic("N".into()), Dim::Fixed(4)])
        );
        assert!(
            back.metadata
                .contains(&("qtune_version".into(), "test".into()))
        );
    }
}
