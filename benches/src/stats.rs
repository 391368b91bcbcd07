//! Latency statistics.

use std::time::Duration;

/// Order statistics of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub samples: usize,
    /// The smallest sample.
    pub min: Duration,
    /// The median.
    pub median: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The 99.9th percentile.
    pub p999: Duration,
}

impl Summary {
    /// Summarises `samples` (any order); `None` if there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        // Nearest-rank percentile, in thousandths so that it stays in integers.
        let at = |permille: usize| {
            let rank = (permille * samples.len()).div_ceil(1000);
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Some(Summary {
            samples: samples.len(),
            min: samples[0],
            median: at(500),
            p99: at(990),
            p999: at(999),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=1000).rev().map(Duration::from_nanos).collect();
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.samples, 1000);
        assert_eq!(s.min, Duration::from_nanos(1));
        assert_eq!(s.median, Duration::from_nanos(500));
        assert_eq!(s.p99, Duration::from_nanos(990));
        assert_eq!(s.p999, Duration::from_nanos(999));
        assert!(Summary::of(&mut []).is_none());
        let one = Summary::of(&mut [Duration::from_nanos(7)]).unwrap();
        assert_eq!(
            (one.median, one.p99),
            (Duration::from_nanos(7), Duration::from_nanos(7))
        );
    }
}
