//! reelay's AWS adapters: the [`Store`](reelay_core::ports::Store) and
//! [`KeyStore`](reelay_core::ports::KeyStore) ports on DynamoDB ([`DynamoStore`]), the
//! [`Queue`](reelay_core::ports::Queue) port on SQS ([`SqsQueue`]) and the
//! [`Blobs`](reelay_core::ports::Blobs) port on S3 ([`S3Blobs`]), and the
//! [`SceneRunner`](reelay_core::ports::SceneRunner) port on the scene-renderer function
//! ([`LambdaScenes`]).
//!
//! Both are built from an [`aws_config::SdkConfig`] (region, credentials) plus their settings.
//! A settings' `endpoint_url` points the client elsewhere (moto in the tests; S3 then uses
//! path-style addressing, which a `127.0.0.1` endpoint needs).

pub mod blobs;
pub mod queue;
pub mod scenes;
pub mod secrets;
pub mod store;

pub use blobs::{S3Blobs, S3Settings};
pub use queue::{SqsQueue, SqsSettings};
pub use scenes::{LambdaScenes, LambdaScenesSettings};
pub use store::{DynamoSettings, DynamoStore};

/// An SDK error as text for a port error: the error and its sources (service code and message,
/// or the transport failure). Never carries credentials: the SDK's errors hold none.
pub(crate) fn sdk_message<E>(err: &E) -> String
where
    E: std::error::Error,
{
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
