//! One way to build a reelay node. [`Settings`] reads and validates what every node is
//! configured with (one table of variables and defaults); [`Node::build`] wires the engine,
//! the webhook dispatcher, ffmpeg and the providers on the adapters a caller brings: the
//! embedded stack's (`reelay-local`) or AWS's (`reelay-lambda`).

pub mod node;
pub mod providers;
pub mod scratch;
pub mod settings;
pub mod workflows;

pub use node::{deliver_local_callbacks, Adapters, LocalCallbacks, Node, NodeError};
pub use providers::ProviderSettings;
pub use scratch::clear_scratch;
pub use settings::{Settings, SettingsError, Vars};
pub use workflows::SceneLimits;
