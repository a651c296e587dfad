//! Attribute values in and out: the builders every entity writes its items with, and the
//! reader it reads them back with.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use reelay_core::ports::StoreError;

/// An item's attributes, as the SDK hands them over.
pub(super) type Attrs = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The table key `pk`, `sk`: every item starts as one.
pub(super) fn key(pk: String, sk: &str) -> Attrs {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        key: String::new(),
        message: e.to_string(),
    })
}

/// Reads an item's attributes; a missing or mistyped one is a corrupt record.
pub(super) struct Item<'a> {
    pub(super) attrs: &'a Attrs,
}

impl<'a> Item<'a> {
    pub(super) fn new(attrs: &'a Attrs) -> Self {
        Item { attrs }
    }

    pub(super) fn corrupt(&self, message: String) -> StoreError {
        let pk = self
            .attrs
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let sk = self
            .attrs
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        StoreError::Corrupt {
            key: format!("{pk}/{sk}"),
            message,
        }
    }

    pub(super) fn opt_s(&self, name: &str) -> Option<&'a str> {
        self.attrs.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
    }

    pub(super) fn str(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_s(name).ok_or_else(|| self.corrupt(format!("no {name}")))
    }

    pub(super) fn opt_i64(&self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.attrs.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(format!("{name} is not an integer"))),
            Some(_) => Err(self.corrupt(format!("{name} is not a number"))),
        }
    }

    pub(super) fn i64(&self, name: &str) -> Result<i64, StoreError> {
        self.opt_i64(name)?.ok_or_else(|| self.corrupt(format!("no {name}")))
    }

    pub(super) fn record<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(self.str("record")?).map_err(|e| self.corrupt(e.to_string()))
    }
}
