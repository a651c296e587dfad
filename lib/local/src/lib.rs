//! reelay's embedded stack: the ports on SQLite and files, and the node that runs the engine's
//! workers and timer in one process (`reelay run`, `reelay serve`, and most tests).

pub mod blobs;
pub mod db;
pub mod node;
pub mod queue;
pub mod store;

pub use blobs::FileBlobs;
pub use db::{Db, DbError, Durability};
pub use node::{LocalNode, LocalSettings, OpenError};
pub use queue::SqliteQueue;
pub use store::SqliteStore;
