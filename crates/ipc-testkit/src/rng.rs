//! A small deterministic random generator for tests.

/// The environment variable that replaces every [`Rng`]'s seed, to repeat a failing run.
pub const SEED_ENV: &str = "IPC_TEST_SEED";

/// A small deterministic random generator (xorshift), so that a failing run can be
/// repeated from its seed ([`SEED_ENV`] overrides the seed a test chose).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`, or from [`SEED_ENV`] when it is set.
    pub fn new(seed: u64) -> Self {
        let seed = std::env::var(SEED_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(seed);
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next number below `bound` (at least 1).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// One of `items`, at random.
    ///
    /// # Panics
    ///
    /// If `items` is empty.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}
