//! Latency summaries: nearest-rank percentiles of a set of samples (milliseconds).

use serde::Serialize;

/// Count, percentiles and extremes of a set of latencies, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of `sorted` (ascending); `None` when empty.
/// Nearest rank, not interpolation: the figure is always a latency that was measured.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Summarises `samples` (any order; NaN never occurs in measured durations and sorts last).
pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = |p| percentile(&sorted, p).unwrap_or(0.0);
    Summary {
        count: sorted.len(),
        p50: at(50.0),
        p90: at(90.0),
        p99: at(99.0),
        max: sorted.last().copied().unwrap_or(0.0),
        mean: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        },
    }
}
