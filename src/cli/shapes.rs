//! `--input-shape NAME=1,3,48,192` parsing and binding against a graph's inputs.

use anyhow::{Result, bail};

use qtune::ir::{Dim, Graph};

/// One `--input-shape` value: an optional input name and its dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct InputShape {
    pub name: Option<String>,
    pub dims: Vec<usize>,
}

/// Parses `NAME=1,3,48,192` or `1,3,48,192` (when the model has one input).
pub fn parse_input_shape(s: &str) -> std::result::Result<InputShape, String> {
    let (name, dims) = match s.rsplit_once('=') {
        Some((n, d)) => (Some(n.to_string()), d),
        None => (None, s),
    };
    let dims = dims
        .split([',', 'x'])
        .map(|d| {
            d.trim().parse::<usize>().map_err(|_| {
                format!("`{d}` is not a dimension in `{s}` (expected e.g. x=1,3,48,192)")
            })
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(InputShape { name, dims })
}

/// Concrete shapes for every graph input: from `given`, else from the declared shape when
/// it is fully static. `None` when some input stays dynamic.
pub fn bind_shapes(graph: &Graph, given: &[InputShape]) -> Result<Option<Vec<Vec<usize>>>> {
    for g in given {
        if let Some(n) = &g.name
            && !graph.inputs.iter().any(|i| graph.value_name(*i) == n)
        {
            let names: Vec<&str> = graph.inputs.iter().map(|i| graph.value_name(*i)).collect();
            bail!(
                "--input-shape names `{n}`, which is not a model input (inputs: {})",
                names.join(", ")
            );
        }
    }
    if given.iter().any(|g| g.name.is_none()) && graph.inputs.len() != 1 {
        bail!(
            "the model has {} inputs: write --input-shape NAME=DIMS",
            graph.inputs.len()
        );
    }
    let mut out = Vec::new();
    for id in &graph.inputs {
        let name = graph.value_name(*id);
        let explicit = given
            .iter()
            .find(|g| g.name.as_deref().is_none_or(|n| n == name));
        if let Some(g) = explicit {
            out.push(g.dims.clone());
            continue;
        }
        match graph.value(*id).shape.as_deref() {
            Some(dims) if dims.iter().all(|d| matches!(d, Dim::Fixed(_))) => out.push(
                dims.iter()
                    .map(|d| if let Dim::Fixed(n) = d { *n } else { 0 })
                    .collect(),
            ),
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_and_bare_shapes() {
        assert_eq!(
            parse_input_shape("x=1,3,48,192").unwrap(),
            InputShape {
                name: Some("x".into()),
                dims: vec![1, 3, 48, 192]
            }
        );
        assert_eq!(parse_input_shape("1x3x8x8").unwrap().dims, vec![1, 3, 8, 8]);
        assert!(parse_input_shape("x=1,a").is_err());
    }
}
