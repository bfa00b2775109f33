//! Deterministic fault injection for segment creation.
//!
//! The seed fails a segment allocation when the uptime in milliseconds is a
//! multiple of a configured MTBF. Time makes tests flaky, so here the clock is
//! a seeded xorshift generator: with mean time between failures `mtbf`, each
//! attempt fails with probability `1 / mtbf`, and the same seed always fails
//! the same attempts.

/// A seeded fault injector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultInjection {
    /// Mean number of attempts between failures; 1 fails every attempt.
    pub mtbf: u64,
    /// Seed of the generator.
    pub seed: u64,
}

#[derive(Debug)]
pub(crate) struct Injector {
    mtbf: u64,
    state: u64,
    pub(crate) attempts: u64,
}

impl Injector {
    pub(crate) fn new(config: FaultInjection) -> Self {
        Injector {
            mtbf: config.mtbf.max(1),
            // xorshift must not start at zero.
            state: config.seed ^ 0x9E37_79B9_7F4A_7C15,
            attempts: 0,
        }
    }

    /// Returns `Some(attempt number)` when this attempt must fail.
    pub(crate) fn should_fail(&mut self) -> Option<u64> {
        self.attempts += 1;
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        (x % self.mtbf == 0).then_some(self.attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_failures() {
        let run = |seed| {
            let mut inj = Injector::new(FaultInjection { mtbf: 4, seed });
            (0..64)
                .map(|_| inj.should_fail().is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fails = run(7).iter().filter(|&&f| f).count();
        assert!(
            (4..=32).contains(&fails),
            "about 1 in 4 should fail, got {fails}"
        );
    }

    #[test]
    fn mtbf_one_fails_always() {
        let mut inj = Injector::new(FaultInjection { mtbf: 1, seed: 0 });
        assert!((0..10).all(|_| inj.should_fail().is_some()));
    }
}
