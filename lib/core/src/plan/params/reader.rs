//! Reading typed values out of one job's params, reporting each problem against the job.

use std::fmt::Display;

use serde_json::{Map, Value};

use crate::plan::{reference, AspectRatio, MediaRef, PlanError};

pub(super) struct ParamReader<'a> {
    job: &'a str,
    pub(super) params: &'a Map<String, Value>,
    errors: &'a mut Vec<PlanError>,
    failed: bool,
}

impl<'a> ParamReader<'a> {
    pub(super) fn new(job: &'a str, params: &'a Map<String, Value>, errors: &'a mut Vec<PlanError>) -> Self {
        ParamReader {
            job,
            params,
            errors,
            failed: false,
        }
    }

    /// Whether a problem was reported: the job is then left out of the plan.
    pub(super) fn failed(&self) -> bool {
        self.failed
    }

    pub(super) fn fail(&mut self, code: &str, field: impl Into<String>, detail: impl Display) {
        self.failed = true;
        self.errors.push(PlanError::in_job(code, self.job, field, detail));
    }

    /// An unusable value at `key` (a path inside params, such as `items[0].url`).
    pub(super) fn invalid(&mut self, key: &str, message: impl Display) {
        self.fail(
            "invalid_param",
            format!("params.{key}"),
            format_args!("`{key}` {message}"),
        );
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        match self.params.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => {
                self.invalid(key, "must be a string");
                None
            }
        }
    }

    pub(super) fn bool(&mut self, key: &str) -> Option<bool> {
        match self.params.get(key)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            _ => {
                self.invalid(key, "must be true or false");
                None
            }
        }
    }

    /// A finite number in `range`, described for the error message.
    pub(super) fn number_in(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        ok: fn(f64) -> bool,
        what: &str,
    ) -> Option<f64> {
        match obj.get(key)? {
            Value::Null => None,
            Value::Number(n) => match n.as_f64() {
                Some(v) if v.is_finite() && ok(v) => Some(v),
                _ => {
                    self.invalid(path, format_args!("must be {what}"));
                    None
                }
            },
            _ => {
                self.invalid(path, format_args!("must be a number ({what})"));
                None
            }
        }
    }

    pub(super) fn aspect_ratio(&mut self, key: &str) -> Option<AspectRatio> {
        let raw = self.string(key)?;
        let parsed = AspectRatio::parse(&raw);
        if parsed.is_none() {
            self.invalid(
                key,
                format_args!("must be a ratio like `16:9`, `9:16`, `1:1` or `4:5`, not `{raw}`"),
            );
        }
        parsed
    }

    pub(super) fn media_ref(&mut self, value: &Value, path: &str) -> Option<MediaRef> {
        match value {
            Value::String(s) => match reference(s) {
                Some(id) => Some(MediaRef::Job(id.to_string())),
                None if is_url(s) => Some(MediaRef::Url(s.clone())),
                None => {
                    self.invalid(path, "must be an http(s) URL or a job reference such as `$job1`");
                    None
                }
            },
            _ => {
                self.invalid(path, "must be a URL or job reference string");
                None
            }
        }
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://") || s.starts_with("data:")
}
