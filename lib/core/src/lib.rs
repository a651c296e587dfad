//! reelay's core: plans, the domain, the engine, and the ports adapters implement.
//! Nothing here talks to AWS or SQLite; adapters live in their own crates.

pub mod background;
pub mod clock;
pub mod domain;
pub mod engine;
pub mod outbound;
pub mod plan;
pub mod ports;
pub mod scenes;
pub mod secrets;
pub mod signed_urls;
pub mod tenants;
pub mod time;
pub mod transcript;
pub mod webhooks;
pub mod worker;

pub use engine::{
    CallbackRejected, CancelError, Cancelled, Engine, EngineError, EngineSettings, Event, OutputRefused, Ports,
    Providers, Recorded, RetryPolicy, SubmitError, Via,
};
pub use worker::Handled;
