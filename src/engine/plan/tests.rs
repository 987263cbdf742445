use super::*;
use crate::ir::{Dim, Node};

/// x → a = Relu(x) → b = Add(a, x) → c = Mul(b, a); output c.
fn chain() -> Graph {
    let mut g = Graph {
        opset: 13,
        ..Graph::default()
    };
    let x = g.add_value("x", Some(DType::F32));
    g.values[x.0].shape = Some(vec![Dim::Fixed(3)]);
    let [a, b, c] = ["a", "b", "c"].map(|n| g.add_value(n, None));
    let node = |name: &str, op: &str, ins: Vec<ValueId>, out: ValueId| Node {
        name: name.into(),
        op_type: op.into(),
        domain: String::new(),
        inputs: ins.into_iter().map(Some).collect(),
        outputs: vec![Some(out)],
        attrs: Default::default(),
    };
    g.nodes = vec![
        node("relu", "Relu", vec![x], a),
        node("add", "Add", vec![a, x], b),
        node("mul", "Mul", vec![b, a], c),
    ];
    g.inputs = vec![x];
    g.outputs = vec![c];
    g
}

/// x → Q → DQ → Relu (per tensor, uint8) and x → Q' → DQ' (per channel, int8, its
/// quantized value also a graph output: not fused); outputs r, d2, q2.
fn qdq() -> Graph {
    let mut g = Graph {
        opset: 13,
        ..Graph::default()
    };
    let x = g.add_value("x", Some(DType::F32));
    g.values[x.0].shape = Some(vec![Dim::Fixed(2), Dim::Fixed(3)]);
    let s = g.add_constant("s", Tensor::scalar_f32(0.037));
    let z = g.add_constant(
        "z",
        Tensor::U8(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), 131)),
    );
    let s2 = g.add_constant("s2", Tensor::from_f32(&[3], vec![0.01, 0.02, 0.5]));
    let z2 = g.add_constant(
        "z2",
        Tensor::I8(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3]), vec![0, 3, -7]).unwrap()),
    );
    let [q, d, r, q2, d2] = ["q", "d", "r", "q2", "d2"].map(|n| g.add_value(n, None));
    let node = |name: &str, op: &str, ins: Vec<ValueId>, out: ValueId| Node {
        name: name.into(),
        op_type: op.into(),
        domain: String::new(),
        inputs: ins.into_iter().map(Some).collect(),
        outputs: vec![Some(out)],
        attrs: Default::default(),
    };
    g.nodes = vec![
        node("q", "QuantizeLinear", vec![x, s, z], q),
        node("dq", "DequantizeLinear", vec![q, s, z], d),
        node("relu", "Relu", vec![d], r),
        node("q2", "QuantizeLinear", vec![x, s2, z2], q2),
        node("dq2", "DequantizeLinear", vec![q2, s2, z2], d2),
    ];
    g.inputs = vec![x];
    g.outputs = vec![r, d2, q2];
    g
}

#[test]
fn fused_qdq_pairs_compute_the_same_values() {
    let g = qdq();
    let fused = Plan::new(&g, &[vec![2, 3]]).unwrap();
    let kept = Plan::with_options(
        &g,
        &[vec![2, 3]],
        PlanOptions {
            keep_qdq: true,
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let ops = |p: &Plan| {
        p.steps()
            .iter()
            .map(|s| s.op_type.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ops(&fused),
        [
            "QuantizeLinear+DequantizeLinear",
            "Relu",
            "QuantizeLinear",
            "DequantizeLinear"
        ]
    );
    assert_eq!(kept.steps().len(), 5);
    let x = Tensor::from_f32(&[2, 3], vec![-1e9, -4.8301, 0.0185, 3.33, f32::NAN, 1e9]);
    let mut a = Vec::new();
    let out_a = fused
        .run_observed(vec![x.clone()], &mut |v, t| a.push((v, t.clone())))
        .unwrap();
    let out_b = kept.run(vec![x]).unwrap();
    let bits = |t: &Tensor| match t {
        Tensor::F32(a) => a.iter().map(|v| v.to_bits() as i64).collect::<Vec<_>>(),
        Tensor::I8(a) => a.iter().map(|&v| v as i64).collect(),
        _ => unreachable!(),
    };
    assert_eq!(
        out_a.iter().map(bits).collect::<Vec<_>>(),
        out_b.iter().map(bits).collect::<Vec<_>>()
    );
    // The fused step produces the dequantized value (the observer sees it).
    assert!(a.iter().any(|(v, _)| fused.value_name(*v) == "d"));
}

#[test]
fn run_subset_matches_a_full_run() {
    let g = chain();
    let plan = Plan::new(&g, &[vec![3]]).unwrap();
    let x = Tensor::from_f32(&[3], vec![-1.0, 2.0, 3.0]);
    let mut seen = Vec::new();
    let full = plan
        .run_observed(vec![x.clone()], &mut |v, t| seen.push((v, t.clone())))
        .unwrap();
    let held = |name: &str| {
        let id = g.find_value(name).unwrap();
        let t = seen.iter().find(|(v, _)| *v == id).unwrap().1.clone();
        (id, Arc::new(t))
    };
    // The last two steps from `a` and the input; then the last step alone.
    let x_id = g.find_value("x").unwrap();
    let sub = plan.subset(&[2, 1]);
    assert_eq!(sub.steps(), &[1, 2]);
    let mut produced = Vec::new();
    let out = plan
        .run_subset(
            &sub,
            vec![held("a"), (x_id, Arc::new(x.clone()))],
            &mut |v, _| produced.push(plan.value_name(v).to_string()),
        )
        .unwrap();
    assert_eq!(out, vec![Some(full[0].clone())]);
    assert_eq!(produced, ["b", "c"]);
    let out = plan
        .run_subset(
            &plan.subset(&[2]),
            vec![held("a"), held("b")],
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(out, vec![Some(full[0].clone())]);
    // Nothing run: a seeded output is returned, an absent one is `None`.
    let empty = plan.subset(&[]);
    let out = plan
        .run_subset(&empty, vec![held("c")], &mut |_, _| {})
        .unwrap();
    assert_eq!(out, vec![Some(full[0].clone())]);
    assert_eq!(
        plan.run_subset(&empty, vec![], &mut |_, _| {}).unwrap(),
        vec![None]
    );
    // A missing seed is an error naming the value; a bad input is checked.
    let err = plan
        .run_subset(&sub, vec![held("a")], &mut |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("`x`"), "{err}");
    let bad = Arc::new(Tensor::from_f32(&[2], vec![0.0, 1.0]));
    assert!(
        plan.run_subset(&sub, vec![held("a"), (x_id, bad)], &mut |_, _| {})
            .is_err()
    );
    assert!(!plan.is_constant(x_id) && plan.value_count() == 4);
}
