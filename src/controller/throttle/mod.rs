//! How many API requests the controller makes at once, and in which order.
//!
//! The decisions never see this module. A reconcile takes a [`write_gate::Permit`] before it
//! talks to the API server (Pod creates first) and reads the starts waiting at the gate into the
//! pressure snapshot that [`super::writes`] decides from; [`queue`] counts what waits for a
//! reconcile, for the queue depth metric.

pub mod queue;
pub mod write_gate;

use queue::Pending;
use write_gate::WriteGate;

/// The gate and the queue count, shared by every watched scope. Cheap to clone.
#[derive(Clone)]
pub struct Throttle {
    /// Bounds the reconciles making API requests at once; Pod creates first.
    pub gate: WriteGate,
    /// SourceBuilds a watch event asked to reconcile, for the queue depth metric.
    pub pending: Pending,
}
