//! Test support shared by the integration tests: real servers on loopback, started and stopped
//! by the tests themselves.
#![allow(dead_code, unused_imports)]

pub mod builder;
pub mod http;
pub mod kaniko;
pub mod registry;
pub mod tools;

pub use http::*;
