//! Client webhooks: the messages, their signatures, the retry schedule, delivery, and the
//! transport port they leave through.
pub mod dispatcher;
pub mod message;
pub mod schedule;
pub mod signature;
pub mod transport;

pub use dispatcher::{DispatchError, DispatchSettings, Dispatcher};
