//! The chart installed on the test control plane and one operator process running as its
//! ServiceAccount, shared by the tests of a binary that judge what the API server allows and
//! admits (tests/security.rs). No node: builds run on the real one (tests/node.rs).
#![allow(dead_code)]

use std::path::PathBuf;

use super::control_plane::ControlPlane;
use super::operator::{Operator, install_chart};

/// The running operator. It lives until the process exits.
pub struct ChartOperator {
    pub operator: Operator,
    /// Where `operator.log` is.
    pub logs: PathBuf,
}

impl ChartOperator {
    /// Installs the chart and starts the operator from a dedicated thread that then parks for
    /// the rest of the process: the operator dies with the thread that started it
    /// (PR_SET_PDEATHSIG), and the tests that share it run on threads that come and go.
    pub fn start(cp: &'static ControlPlane) -> ChartOperator {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("chart-operator".into())
            .spawn(move || {
                let logs = tempfile::Builder::new()
                    .prefix("sourcebuild-operator-")
                    .tempdir()
                    .unwrap()
                    .keep();
                install_chart(cp, &[]);
                let operator = Operator::start_tied_to_thread(cp, &[], &logs);
                let _ = tx.send(ChartOperator { operator, logs });
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        rx.recv()
            .expect("installing the chart and starting the operator")
    }
}
