//! `lib/api/openapi.json` as the tests read it: its schemas compiled with the whole document
//! as their root, and answers checked against what it documents.

#![allow(dead_code)] // Each test binary uses part of it.

use axum::http::StatusCode;
use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::{json, Value};

pub const DOCUMENT: &str = include_str!("../../lib/api/openapi.json");

pub fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("lib/api/openapi.json is not JSON")
}

/// Follows a `$ref` to another part of the document (responses, parameters).
pub fn resolve<'d>(doc: &'d Value, item: &'d Value) -> &'d Value {
    match item["$ref"].as_str() {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
        None => item,
    }
}

/// A validator for `schema`, a schema taken from the document. The whole document is the root
/// resource (its other keys are not schema keywords, so they are ignored), so the
/// `#/components/schemas/...` references inside `schema` resolve as they do for OpenAPI tools.
fn validator(doc: &Value, schema: &Value) -> Validator {
    let mut root = doc.clone();
    root["allOf"] = json!([schema]);
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("the schema {schema} does not compile: {e}"))
}

/// The problems of `instance` against `schema`, one line each (none when it is valid).
pub fn problems(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for error in validator(doc, schema).iter_errors(instance) {
        describe(&error, 0, &mut out);
    }
    out
}

/// A problem, without the value (the body is printed once), and for a failed `anyOf` or
/// `oneOf` the problems of each branch beneath: otherwise "matches none" is all one learns.
fn describe(error: &ValidationError, depth: usize, out: &mut Vec<String>) {
    let indent = "    ".repeat(depth);
    out.push(format!("{indent}at `{}`: {}", error.instance_path(), error.masked()));
    if let ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } = error.kind() {
        for (i, branch) in context.iter().enumerate() {
            out.push(format!("{indent}  branch {i}:"));
            for error in branch {
                describe(error, depth + 1, out);
            }
        }
    }
}

pub fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let problems = problems(doc, schema, instance);
    assert!(
        problems.is_empty(),
        "{what} does not match its documented schema:\n  {}\nbody: {instance}",
        problems.join("\n  ")
    );
}

pub fn request_schema(doc: &Value) -> &Value {
    let schema = &doc["paths"]["/api/execute"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "POST /api/execute documents no JSON request body");
    schema
}

/// The JSON schema documented for one answer of one operation.
pub fn response_schema<'d>(doc: &'d Value, method: &str, path: &str, status: StatusCode) -> &'d Value {
    let response = &doc["paths"][path][method]["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} does not document a {status} answer"
    );
    let schema = &resolve(doc, response)["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status} documents no JSON body");
    schema
}

/// Checks an answer's status is the expected one and its body the documented shape.
pub fn assert_answer(doc: &Value, answer: &crate::support::Answer, method: &str, path: &str, expected: StatusCode) {
    assert_eq!(answer.status, expected, "{method} {path}: {}", answer.body);
    let what = format!("the {expected} answer of {method} {path}");
    assert_valid(doc, response_schema(doc, method, path, expected), &answer.body, &what);
}
