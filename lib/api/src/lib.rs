//! reelay's HTTP API: one `Router`, so the same routes serve locally (`axum::serve`) and on
//! AWS (`lambda_http::run`).

mod error;
mod files;
mod routes;
mod view;
mod workflow_view;
mod workflows;

pub use error::ApiError;
pub use reelay_core::time::iso8601;
pub use routes::{callback_router, reread_while_waiting, router, routes, ApiState};
pub use view::{status_view, StatusView};
