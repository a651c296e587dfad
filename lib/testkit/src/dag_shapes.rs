//! The DAG shapes the engine is measured and tested on (those of the performance anchors),
//! as plans of instant-provider jobs. The benchmark runs them full size, tests scaled down.

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A job id and the ids of its parents.
pub type DagJob = (String, Vec<String>);

pub struct DagShape {
    pub name: String,
    pub jobs: Vec<DagJob>,
}

impl DagShape {
    /// The plan: every job an `instant` provider job that finishes on submit.
    pub fn plan(&self) -> Value {
        let jobs: Vec<Value> = self
            .jobs
            .iter()
            .map(|(id, parents)| {
                json!({"id": id, "type": "generate", "params": {"provider": "instant", "modelId": "done"}, "dependsOn": parents})
            })
            .collect();
        json!({ "jobs": jobs })
    }
}

fn id(i: usize) -> String {
    format!("j{i}")
}

/// Independent jobs, fan-out 1→n, fan-in n→1, `layers` × `width` with up to 3 random parents
/// each in the layer above (seed 42), a chain, and a diamond. `n` sizes the first three.
pub fn standard(n: usize, layers: usize, width: usize, chain: usize) -> Vec<DagShape> {
    let mut fan_out = vec![(id(0), vec![])];
    fan_out.extend((1..=n).map(|i| (id(i), vec![id(0)])));
    let mut fan_in: Vec<DagJob> = (0..n).map(|i| (id(i), vec![])).collect();
    fan_in.push((id(n), (0..n).map(id).collect()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut layered = Vec::new();
    for layer in 0..layers {
        for k in 0..width {
            let mut parents: Vec<String> = if layer == 0 {
                vec![]
            } else {
                (0..3)
                    .map(|_| id((layer - 1) * width + rng.random_range(0..width)))
                    .collect()
            };
            parents.sort();
            parents.dedup();
            layered.push((id(layer * width + k), parents));
        }
    }
    let diamond = vec![
        ("top".to_string(), vec![]),
        ("left".to_string(), vec!["top".to_string()]),
        ("right".to_string(), vec!["top".to_string()]),
        ("bottom".to_string(), vec!["left".to_string(), "right".to_string()]),
    ];
    let shape = |name: String, jobs| DagShape { name, jobs };
    vec![
        shape(
            format!("a: independent {}", 2 * n),
            (0..2 * n).map(|i| (id(i), vec![])).collect(),
        ),
        shape(format!("b: fan-out 1→{n}"), fan_out),
        shape(format!("c: fan-in {n}→1"), fan_in),
        shape(format!("d: {layers} layers × {width}, 3 random parents"), layered),
        shape(
            format!("e: chain {chain}"),
            (0..chain)
                .map(|i| (id(i), if i == 0 { vec![] } else { vec![id(i - 1)] }))
                .collect(),
        ),
        shape("f: diamond".to_string(), diamond),
    ]
}
