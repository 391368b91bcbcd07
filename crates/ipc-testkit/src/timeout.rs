//! The default deadline of every wait in a test.

use std::time::Duration;

use ipc_core::Deadline;

/// The environment variable that scales [`test_timeout`]: a positive number such as `3` for
/// a slow machine or a run under valgrind.
pub const TIMEOUT_SCALE_ENV: &str = "IPC_TEST_TIMEOUT_SCALE";

/// The unscaled default: long enough for a loaded two-core machine, short enough that a hung
/// test fails well before the suite's own limit.
const BASE: Duration = Duration::from_secs(10);

/// The longest a test waits for anything: a peer's readiness, a message, an exit.
///
/// Ten seconds, multiplied by `IPC_TEST_TIMEOUT_SCALE` when that is set to a positive
/// number. Tests never assert that something finished *faster* than this: it is a bound
/// against hanging, not a performance claim.
pub fn test_timeout() -> Duration {
    scaled(std::env::var(TIMEOUT_SCALE_ENV).ok().as_deref())
}

/// [`BASE`] times `scale`, when that is a positive number (at most 1000); [`BASE`]
/// otherwise.
fn scaled(scale: Option<&str>) -> Duration {
    let scale = scale
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    BASE.mul_f64(scale.min(1000.0))
}

/// A [`Deadline`] [`test_timeout`] from now.
pub fn test_deadline() -> Deadline {
    Deadline::after(test_timeout())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_multiplies_the_base() {
        assert_eq!(scaled(None), BASE);
        assert_eq!(scaled(Some("3")), BASE * 3);
        assert_eq!(scaled(Some(" 0.5 ")), BASE / 2);
        for ignored in ["0", "-2", "NaN", "inf", "fast", ""] {
            assert_eq!(scaled(Some(ignored)), BASE, "{ignored}");
        }
        assert_eq!(scaled(Some("1e9")), BASE * 1000);
    }
}
