//! sourcebuild-operator: turns source code into container images inside a Kubernetes cluster,
//! the Source-to-Image way. See the README for the flow; each module owns one concern.

pub mod api;
pub mod crd;
pub mod prepare;
pub mod s2i;
pub mod source;
