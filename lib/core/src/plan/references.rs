//! References from one job to another inside params: `$job1`, `_jobDependency:job1`,
//! `_videoJobDependency:job1`.

use serde_json::{Map, Value};

/// The job id a reference string points at, if it is one.
pub fn reference(s: &str) -> Option<&str> {
    if let Some(id) = s.strip_prefix('$') {
        return (!id.is_empty() && !id.contains(char::is_whitespace)).then_some(id);
    }
    let (marker, id) = s.split_once(':')?;
    (is_marker(marker) && !id.is_empty()).then_some(id)
}

/// Whether `s` reads as a reference, or as the start of one (`$`, `_videoJobDependency:`):
/// a job id must not, or `$id` and the markers would be ambiguous.
pub(super) fn looks_like_reference(s: &str) -> bool {
    s.starts_with('$') || reference(s).is_some() || s.split_once(':').is_some_and(|(marker, _)| is_marker(marker))
}

/// `_jobDependency` (generic) or `_<kind>JobDependency` (`_videoJobDependency`, ...).
fn is_marker(marker: &str) -> bool {
    let Some(marker) = marker.strip_prefix('_') else {
        return false;
    };
    let kind = if marker == "jobDependency" {
        ""
    } else {
        match marker.strip_suffix("JobDependency") {
            Some(kind) => kind,
            None => return false,
        }
    };
    kind.chars().all(|c| c.is_ascii_alphabetic())
}

/// Finds `$job1` and `_videoJobDependency:job1`-style markers anywhere in params, in document
/// order, without recursion.
pub(super) fn collect_references(params: &Map<String, Value>, out: &mut Vec<(String, String)>) {
    // Entries in reverse, so that popping the stack visits them in order. A provider key is a
    // secret, never a reference, and never echoed.
    fn entries<'v>(o: &'v Map<String, Value>, path: &str) -> Vec<(&'v Value, String)> {
        o.iter()
            .rev()
            .filter(|(k, _)| *k != "apiKey")
            .map(|(k, v)| (v, format!("{path}.{k}")))
            .collect()
    }
    let mut stack: Vec<(&Value, String)> = entries(params, "params");
    while let Some((value, path)) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(id) = reference(s) {
                    out.push((id.to_string(), path));
                }
            }
            Value::Array(items) => {
                stack.extend(items.iter().enumerate().rev().map(|(i, v)| (v, format!("{path}[{i}]"))))
            }
            Value::Object(o) => stack.extend(entries(o, &path)),
            _ => {}
        }
    }
}
