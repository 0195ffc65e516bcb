//! sourcebuild-operator: turns source code into container images inside a Kubernetes cluster,
//! the Source-to-Image way. See the README for the flow; each module owns one concern.

pub mod api;
pub mod builder_image;
pub mod contract;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod plugin;
pub mod pod;
pub mod prepare;
pub mod provenance;
pub mod publish;
pub mod reason;
pub mod render;
pub mod s2i;
pub mod source;
pub mod telemetry;
pub mod validation;
