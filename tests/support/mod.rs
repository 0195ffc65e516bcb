//! Test support shared by the integration tests: real servers on loopback, started and stopped
//! by the tests themselves.
#![allow(dead_code, unused_imports)]

pub mod control_plane;
pub mod http;
pub mod operator;

pub use control_plane::*;
pub use http::*;
