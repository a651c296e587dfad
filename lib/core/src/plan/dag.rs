//! The plan as a graph: its job ids, the dependencies between jobs, and cycles.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::draft::Draft;
use super::model::{JobId, MediaKind, Operation};
use super::params::{video_dependency, Kinds};
use super::PlanError;

/// What a plan may refer to in the base execution it builds on (`baseExecutionId`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseJobs {
    /// The base's jobs and what each produces.
    pub kinds: HashMap<JobId, MediaKind>,
    /// The base's final job: the input of a variant's root job that needs a video and names none.
    pub final_job: JobId,
}

/// Reports ids used twice, and dependencies on the job itself or on a job that neither the plan
/// nor its base execution has.
pub(super) fn check_dependencies(drafts: &[Draft], base: Option<&BaseJobs>, errors: &mut Vec<PlanError>) {
    let mut seen = HashSet::new();
    for draft in drafts {
        if !seen.insert(draft.id.as_str()) {
            errors.push(
                PlanError::new(
                    "duplicate_job_id",
                    format!("job id `{}` is used more than once", draft.id),
                )
                .job(&draft.id)
                .field("id"),
            );
        }
    }
    let in_base = |id: &str| base.is_some_and(|b| b.kinds.contains_key(id));
    let scope = if base.is_some() {
        "the plan or its base execution"
    } else {
        "the plan"
    };
    for draft in drafts {
        for (dep, field) in &draft.deps {
            let (code, message) = if dep == &draft.id {
                ("self_dependency", format!("job `{}` depends on itself", draft.id))
            } else if !seen.contains(dep.as_str()) && !in_base(dep) {
                let code = if field.starts_with("params") {
                    "unknown_reference"
                } else {
                    "unknown_dependency"
                };
                (
                    code,
                    format!("job `{}` refers to `{dep}`, which is not in {scope}", draft.id),
                )
            } else {
                continue;
            };
            errors.push(PlanError::new(code, message).job(&draft.id).field(field.clone()));
        }
    }
}

/// `compose(sceneA, sceneB, merge())` sends a merge with no items and no dependencies; its
/// documented intent is "merge the scenes before me": the preceding jobs nothing else consumes.
pub(super) fn infer_unwired_merges(drafts: &mut [Draft]) {
    for i in 0..drafts.len() {
        let d = &drafts[i];
        let empty_items = match d.params.get("items") {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if d.operation != Some(Operation::Merge) || !empty_items || !d.deps.is_empty() {
            continue;
        }
        let consumed: HashSet<String> = drafts.iter().flat_map(|d| d.dep_ids()).collect();
        let unconsumed: Vec<String> = drafts[..i]
            .iter()
            .filter(|p| !consumed.contains(&p.id))
            .map(|p| p.id.clone())
            .collect();
        let merge = &mut drafts[i];
        let items: Vec<Value> = unconsumed
            .iter()
            .map(|id| serde_json::json!({ "url": format!("${id}") }))
            .collect();
        for (n, id) in unconsumed.iter().enumerate() {
            merge.deps.push((id.clone(), format!("params.items[{n}].url")));
        }
        merge.params.insert("items".into(), Value::Array(items));
    }
}

/// Reports a dependency cycle, if the graph has one.
pub(super) fn check_cycle(drafts: &[Draft], errors: &mut Vec<PlanError>) {
    if let Some(cycle) = find_cycle(drafts) {
        errors.push(
            PlanError::new(
                "cycle",
                format!("the jobs {} form a dependency cycle", cycle.join(" → ")),
            )
            .job(&cycle[0])
            .field("dependsOn"),
        );
    }
}

/// A cycle's job ids, in order, if the graph has one.
fn find_cycle(drafts: &[Draft]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = drafts.iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> = drafts
        .iter()
        .map(|d| {
            d.dep_ids()
                .iter()
                .filter_map(|dep| index.get(dep.as_str()).copied())
                .collect()
        })
        .collect();
    // Iterative DFS: 0 = unvisited, 1 = on stack, 2 = done. Plans may be 500 deep: no recursion.
    let mut state = vec![0u8; drafts.len()];
    for start in 0..drafts.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = edges[node].get(*next) {
                *next += 1;
                match state[dep] {
                    0 => {
                        state[dep] = 1;
                        stack.push((dep, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..].iter().map(|(n, _)| drafts[*n].id.clone()).collect();
                        cycle.reverse();
                        cycle.push(cycle[0].clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    None
}

/// What every job the plan may refer to produces: its own jobs, then its base execution's.
pub(super) fn output_kinds(drafts: &[Draft], base: Option<&BaseJobs>) -> Kinds {
    let mut kinds: Kinds = drafts
        .iter()
        .map(|d| (d.id.clone(), d.operation.map(Operation::output_kind)))
        .collect();
    for (id, kind) in base.iter().flat_map(|b| &b.kinds) {
        kinds.entry(id.clone()).or_insert(Some(*kind));
    }
    kinds
}

/// A variant's video transform with no video to work on takes the base's final output.
pub(super) fn take_base_output(drafts: &mut [Draft], kinds: &Kinds, base: &BaseJobs) {
    for draft in drafts.iter_mut() {
        if draft.needs_video_input() && video_dependency(&draft.dep_ids(), kinds).is_none() {
            draft.deps.push((base.final_job.clone(), "params.video".to_string()));
        }
    }
}
