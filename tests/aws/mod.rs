//! Test support for the AWS adapters: moto, request counting, and a whole AWS world on it.

pub mod counts;
pub mod moto;
pub mod world;
