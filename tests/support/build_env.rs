//! Everything a real build through the operator needs next to the control plane: a local
//! registry with the S2I builder images, the Helm chart and the operator process (as the chart's
//! ServiceAccount, `--insecure-registry` for the registry, the sclorg-style builder as default),
//! and the pod runner that plays the kubelet. Shared by `tests/e2e_build.rs` and the demo.
#![allow(dead_code)]

use std::path::PathBuf;

use super::builder::{BuilderImages, push_builder_images};
use super::control_plane::ControlPlane;
use super::operator::{Operator, install_chart};
use super::pod_runner::PodRunner;
use super::registry::Registry;

/// The running pieces. They live until the process exits.
pub struct BuildEnv {
    pub registry: Registry,
    pub builders: BuilderImages,
    pub operator: Operator,
    pub runner: PodRunner,
    /// `operator.log` and the runner's per-Pod directories (`pods/<namespace>/<pod>/`).
    pub logs: PathBuf,
}

impl BuildEnv {
    /// Starts it all from a dedicated thread that then parks for the rest of the process: the
    /// registry and the operator die with the thread that started them (PR_SET_PDEATHSIG), and
    /// the tests that share them run on threads that come and go.
    pub fn start(cp: &'static ControlPlane) -> BuildEnv {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("build-env".into())
            .spawn(move || {
                let logs = tempfile::Builder::new()
                    .prefix("sourcebuild-e2e-")
                    .tempdir()
                    .unwrap()
                    .keep();
                let registry = Registry::start();
                let builders = push_builder_images(&registry);
                install_chart(cp, &[]);
                let operator = Operator::start_tied_to_thread(
                    cp,
                    &[
                        "--insecure-registry",
                        &registry.host(),
                        "--default-builder-image",
                        &builders.sclorg,
                    ],
                    &logs,
                );
                let runner = PodRunner::start(cp, &logs.join("pods"));
                let _ = tx.send(BuildEnv {
                    registry,
                    builders,
                    operator,
                    runner,
                    logs,
                });
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        rx.recv()
            .expect("starting the registry, builder images, operator and pod runner")
    }
}
