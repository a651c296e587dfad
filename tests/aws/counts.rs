//! Counts the AWS requests (HTTP attempts) an SDK client makes, by service and operation (a DynamoDB query of
//! an index as `Query(index)`), and the DynamoDB capacity each reports (asked for with
//! `ReturnConsumedCapacity: TOTAL`, which this adds to every DynamoDB request). Attached to
//! clients as an interceptor; the adapters know nothing of it.
//!
//! moto reports a nominal capacity per request (it does not size items), so the capacity
//! figures are a floor: AWS charges by the KB.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Count {
    pub calls: u64,
    pub capacity: f64,
}

/// Requests by `(service, operation)`.
#[derive(Debug, Default, Clone)]
pub struct RequestCounts {
    counts: Arc<Mutex<BTreeMap<(String, String), Count>>>,
}

impl RequestCounts {
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), Count> {
        self.counts.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    fn entry(&self, cfg: &ConfigBag, f: impl FnOnce(&mut Count)) {
        if let Some(meta) = cfg.load::<Metadata>() {
            let operation = match cfg.load::<IndexName>() {
                Some(IndexName(index)) => format!("{}({index})", meta.name()),
                None => meta.name().to_string(),
            };
            let mut counts = self.counts.lock().unwrap();
            f(counts.entry((meta.service().to_string(), operation)).or_default());
        }
    }
}

/// The index a DynamoDB request reads, noted while its body is at hand.
#[derive(Debug, Clone)]
struct IndexName(String);

impl aws_smithy_types::config_bag::Storable for IndexName {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

fn is_dynamodb(cfg: &ConfigBag) -> bool {
    cfg.load::<Metadata>().is_some_and(|m| m.service() == "DynamoDB")
}

/// The `CapacityUnits` of a DynamoDB response: one object, or one per table.
fn capacity_of(body: &[u8]) -> f64 {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return 0.0;
    };
    let units = |v: &serde_json::Value| v.get("CapacityUnits").and_then(|u| u.as_f64()).unwrap_or(0.0);
    match json.get("ConsumedCapacity") {
        Some(serde_json::Value::Array(all)) => all.iter().map(units).sum(),
        Some(one) => units(one),
        None => 0.0,
    }
}

impl Intercept for RequestCounts {
    fn name(&self) -> &'static str {
        "RequestCounts"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Counted per HTTP request (a retried call counts each attempt, as AWS bills them).
        if !is_dynamodb(cfg) {
            self.entry(cfg, |c| c.calls += 1);
            return Ok(());
        }
        let request = context.request_mut();
        let index = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|json| json.get("IndexName")?.as_str().map(str::to_string));
        if let Some(index) = index {
            cfg.interceptor_state().store_put(IndexName(index));
        }
        self.entry(cfg, |c| c.calls += 1);
        let Some(body) = request.body().bytes() else {
            return Ok(());
        };
        let Ok(serde_json::Value::Object(mut json)) = serde_json::from_slice(body) else {
            return Ok(());
        };
        json.insert("ReturnConsumedCapacity".into(), "TOTAL".into());
        let bytes = serde_json::to_vec(&json)?;
        request.headers_mut().insert("content-length", bytes.len().to_string());
        *request.body_mut() = SdkBody::from(bytes);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if is_dynamodb(cfg) {
            if let Some(body) = context.response().body().bytes() {
                let units = capacity_of(body);
                self.entry(cfg, |c| c.capacity += units);
            }
        }
        Ok(())
    }
}
