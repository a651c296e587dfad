//! reelay's HTTP API: one `Router`, so the same routes serve locally (`axum::serve`) and on
//! AWS (`lambda_http::run`).

mod error;
mod routes;
mod time;
mod view;

pub use error::ApiError;
pub use routes::{router, ApiState};
pub use time::iso8601;
pub use view::{status_view, StatusView};
