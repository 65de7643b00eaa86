//! Latency percentiles from plain samples: a sorted `Vec<u64>` of microseconds is
//! exact and small enough for every scenario here, so no histogram crate is needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `micros`; `None` when there is no sample.
    pub fn of(mut micros: Vec<u64>) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let rank = |p: f64| {
            let index = ((p / 100.0) * micros.len() as f64).ceil() as usize;
            micros[index.clamp(1, micros.len()) - 1] as f64 / 1000.0
        };
        Some(Self {
            count: micros.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: *micros.last().expect("not empty") as f64 / 1000.0,
        })
    }
}

/// Latency samples shared by the receiving tasks of one measurement.
#[derive(Debug, Clone, Default)]
pub struct Samples(Arc<Mutex<Vec<u64>>>);

impl Samples {
    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(micros);
    }

    /// How many were recorded so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The percentiles of everything recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        Percentiles::of(self.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// `count` per second over `elapsed`.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=100).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(p.count, 100);
        let one = Percentiles::of(vec![1500]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (1.5, 1.5, 1.5));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn rates() {
        assert_eq!(rate(10, Duration::from_secs(2)), 5.0);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
    }
}
