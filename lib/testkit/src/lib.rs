//! Stand-ins for the benchmark (`reelay bench`) and the tests: ports that do their work at
//! once, and the DAG shapes the engine is measured on. Nothing in a running node uses them.

pub mod dag_shapes;
pub mod faults;
pub mod instant;
pub mod writer;
