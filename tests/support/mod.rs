//! Test support shared by the integration tests: real servers and tools on loopback, started and
//! stopped by the tests themselves.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod builder;
pub mod chaos;
pub mod chart_operator;
pub mod control_plane;
pub mod flux;
pub mod http;
pub mod kaniko;
pub mod node;
pub mod operator;
pub mod proxy;
pub mod registry;
pub mod sourcebuilds;
pub mod tools;

pub use control_plane::*;
pub use http::*;
