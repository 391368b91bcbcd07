//! Latency statistics, and intervals of medians over interleaved rounds.

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

/// A 95% interval of the median of `values` (one figure per interleaved round): the
/// 2.5th and 97.5th percentiles of the medians of 2 000 resamples with replacement (a
/// percentile bootstrap), drawn from a fixed seed so that a report is reproducible from
/// its figures. `None` for fewer than three values.
pub fn median_interval(values: &[f64]) -> Option<(f64, f64)> {
    const RESAMPLES: usize = 2000;
    if values.len() < 3 {
        return None;
    }
    // splitmix64: enough randomness for resampling, and no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ values.len() as u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut resample = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for slot in &mut resample {
                let pick = next() % values.len() as u64;
                *slot = values[usize::try_from(pick).unwrap_or(0)];
            }
            crate::report::median(&resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    Some((
        medians[RESAMPLES * 25 / 1000],
        medians[RESAMPLES * 975 / 1000 - 1],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_interval_holds_the_median_and_widens_with_the_spread() {
        let steady = [100.0, 101.0, 99.0, 100.0, 100.5, 99.5, 100.0, 100.2, 99.8];
        let (lo, hi) = median_interval(&steady).unwrap();
        assert!(lo <= 100.0 && 100.0 <= hi, "{lo} {hi}");
        assert!(hi - lo <= 1.5, "{lo} {hi}");
        let noisy = [100.0, 60.0, 140.0, 80.0, 120.0, 50.0, 150.0, 100.0, 90.0];
        let (lo, hi) = median_interval(&noisy).unwrap();
        assert!(hi - lo >= 20.0, "{lo} {hi}");
        assert_eq!(median_interval(&noisy), Some((lo, hi)), "reproducible");
        assert!(median_interval(&[1.0, 2.0]).is_none());
    }

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
