//! Magazine sizes: the ladder a cache climbs under depot contention.
//!
//! A magazine holds up to `rounds` object pointers. Small objects get big
//! magazines (the pointers are cheap next to the objects they stand for),
//! big objects small ones. A cache picks its starting step from its chunk
//! size when it is created and, in dynamic mode, climbs one step whenever
//! depot lock contention in an update interval passes its threshold, as
//! long as the chunk size is below the step's `max_chunk`.
//!
//! A ladder is a zero-sized policy type ([`Ladder`]) with the steps as an
//! associated constant, checked when a [`Cache`](crate::Cache) on it is
//! compiled. The cache's non-generic core only sees the steps, a
//! `&'static [MagType]`, and sizes each magazine at run time to exactly its
//! step's rounds (no capacity is a type parameter, so no slow-path code is
//! compiled per ladder). [`SeedLadder`] is the 64-bit table of the seed;
//! [`TinyLadder`] has magazines of 1, 2 and 4 rounds and is for tests and
//! models that want every exchange path to run often.

/// One step of a ladder (the seed's `skmem_magtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MagType {
    /// Objects a magazine of this step holds.
    pub rounds: u32,
    /// Caches whose chunk size is at most this start further up the ladder
    /// (the step is skipped at creation).
    pub min_chunk: usize,
    /// Caches climb past this step only while their chunk size is below this.
    pub max_chunk: usize,
}

/// A ladder of magazine sizes.
///
/// `STEPS` must be non-empty with strictly increasing, non-zero `rounds`;
/// [`Cache`](crate::Cache) checks this at compile time.
pub trait Ladder: Send + Sync + 'static {
    /// The steps, smallest magazine first.
    const STEPS: &'static [MagType];
}

/// The seed's ladder for 64-bit platforms: 14 to 158 rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeedLadder;

impl Ladder for SeedLadder {
    const STEPS: &'static [MagType] = &[
        MagType {
            rounds: 14,
            min_chunk: 128,
            max_chunk: 512,
        },
        MagType {
            rounds: 30,
            min_chunk: 96,
            max_chunk: 256,
        },
        MagType {
            rounds: 46,
            min_chunk: 64,
            max_chunk: 128,
        },
        MagType {
            rounds: 62,
            min_chunk: 32,
            max_chunk: 64,
        },
        MagType {
            rounds: 94,
            min_chunk: 16,
            max_chunk: 32,
        },
        MagType {
            rounds: 126,
            min_chunk: 8,
            max_chunk: 16,
        },
        MagType {
            rounds: 142,
            min_chunk: 0,
            max_chunk: 8,
        },
        MagType {
            rounds: 158,
            min_chunk: 0,
            max_chunk: 0,
        },
    ];
}

/// Magazines of 1, 2 and 4 rounds, every chunk size starting at 1 and
/// allowed to grow: for tests and loom models.
#[derive(Debug, Clone, Copy, Default)]
pub struct TinyLadder;

impl Ladder for TinyLadder {
    const STEPS: &'static [MagType] = &[
        MagType {
            rounds: 1,
            min_chunk: 0,
            max_chunk: usize::MAX,
        },
        MagType {
            rounds: 2,
            min_chunk: 0,
            max_chunk: usize::MAX,
        },
        MagType {
            rounds: 4,
            min_chunk: 0,
            max_chunk: 0,
        },
    ];
}

/// Derived facts about a ladder (private extension, sharded-slab style).
pub(crate) trait LadderExt: Ladder {
    /// Evaluating this fails the build for a malformed ladder.
    const VALID: () = validate(Self::STEPS);
}

impl<G: Ladder> LadderExt for G {}

const fn validate(steps: &[MagType]) {
    assert!(
        !steps.is_empty(),
        "a magazine ladder needs at least one step"
    );
    let mut i = 0;
    while i < steps.len() {
        assert!(
            steps[i].rounds > 0,
            "a magazine step must hold at least one round"
        );
        if i > 0 {
            assert!(
                steps[i].rounds > steps[i - 1].rounds,
                "ladder steps must grow"
            );
        }
        i += 1;
    }
}

/// The step a cache with this chunk size starts at.
pub(crate) fn start_step(steps: &[MagType], chunk: usize) -> usize {
    let mut i = 0;
    while i + 1 < steps.len() && chunk <= steps[i].min_chunk {
        i += 1;
    }
    i
}

/// Whether a cache at `step` with this chunk size may climb further.
pub(crate) fn can_grow(steps: &[MagType], step: usize, chunk: usize) -> bool {
    step + 1 < steps.len() && chunk < steps[step].max_chunk
}

/// The largest magazine (rounds) a cache with this chunk size can ever use
/// on ladder `G`: its starting step, climbed while growth is allowed.
pub fn max_rounds<G: Ladder>(chunk_size: usize) -> u32 {
    max_rounds_on(G::STEPS, chunk_size)
}

/// [`max_rounds`] on the steps of a ladder.
fn max_rounds_on(steps: &[MagType], chunk_size: usize) -> u32 {
    let chunk = chunk_size.max(1);
    let mut step = start_step(steps, chunk);
    while can_grow(steps, step, chunk) {
        step += 1;
    }
    steps[step].rounds
}

/// Worst-case number of objects the CPU layer of a cache on ladder `G` can
/// hold: two magazines of the largest size it may reach, per slot (the
/// seed's `skmem_cache_magazine_max`), plus a full per-CPU front
/// ([`FRONT_CAP`](crate::local::FRONT_CAP) objects) per slot, which a
/// `PerCpu` cache on rseq keeps in front of its magazines. A region under
/// such a cache adds this to its object count
/// (`RegionParams::magazine_max_objs`).
///
/// Objects resting in the depot are not bounded by this; an exhausted
/// region asks the caches above it to reap them.
pub fn magazine_max_objs_for<G: Ladder>(chunk_size: usize, slots: usize) -> usize {
    let per_slot = (max_rounds::<G>(chunk_size) as usize)
        .saturating_mul(2)
        .saturating_add(crate::local::FRONT_CAP);
    slots.saturating_mul(per_slot)
}

/// [`magazine_max_objs_for`] for a cache whose locality policy is known:
/// two magazines per slot plus the policy's own front
/// ([`CpuLocal::FRONT_OBJS_PER_SLOT`](skmem_traits::CpuLocal::FRONT_OBJS_PER_SLOT):
/// [`FRONT_CAP`](crate::local::FRONT_CAP) for `PerCpu` where it runs rseq
/// fronts, 0 for `PerThread` and `Global`), so regions under front-less
/// caches reserve no front objects.
pub fn magazine_max_objs_local<G: Ladder, L: skmem_traits::CpuLocal>(
    chunk_size: usize,
    slots: usize,
) -> usize {
    let per_slot = (max_rounds::<G>(chunk_size) as usize)
        .saturating_mul(2)
        .saturating_add(L::FRONT_OBJS_PER_SLOT);
    slots.saturating_mul(per_slot)
}

/// [`magazine_max_objs_for`] on the [`SeedLadder`].
pub fn magazine_max_objs(chunk_size: usize, ncpus: usize) -> usize {
    magazine_max_objs_for::<SeedLadder>(chunk_size, ncpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ladder_start_steps_match_the_seed() {
        // chunk <= 128 skips the 14-round step, <= 96 the 30, and so on.
        assert_eq!(start_step(SeedLadder::STEPS, 1024), 0);
        assert_eq!(start_step(SeedLadder::STEPS, 129), 0);
        assert_eq!(start_step(SeedLadder::STEPS, 128), 1);
        assert_eq!(start_step(SeedLadder::STEPS, 96), 2);
        assert_eq!(start_step(SeedLadder::STEPS, 64), 3);
        assert_eq!(start_step(SeedLadder::STEPS, 32), 4);
        assert_eq!(start_step(SeedLadder::STEPS, 16), 5);
        assert_eq!(start_step(SeedLadder::STEPS, 8), 6);
        assert_eq!(start_step(SeedLadder::STEPS, 1), 6);
    }

    #[test]
    fn seed_ladder_growth_limits() {
        // 192-byte chunks start at 14 rounds and may climb to 46.
        assert_eq!(max_rounds::<SeedLadder>(192), 46);
        // 128-byte chunks start at 30 and climb to 46.
        assert_eq!(max_rounds::<SeedLadder>(128), 46);
        // 64-byte chunks start at 62 and stay.
        assert_eq!(max_rounds::<SeedLadder>(64), 62);
        assert_eq!(max_rounds::<SeedLadder>(4096), 14);
        assert_eq!(max_rounds::<SeedLadder>(256), 30);
        assert_eq!(magazine_max_objs(64, 4), 4 * (62 * 2 + 127));
        // Front-less policies reserve only their magazines.
        assert_eq!(
            magazine_max_objs_local::<SeedLadder, crate::Global>(64, 4),
            4 * 62 * 2
        );
        assert_eq!(
            magazine_max_objs_local::<SeedLadder, crate::PerCpu>(64, 4),
            4 * (62 * 2 + <crate::PerCpu as skmem_traits::CpuLocal>::FRONT_OBJS_PER_SLOT)
        );
        assert_eq!(
            magazine_max_objs_for::<TinyLadder>(64, 3),
            3 * (4 * 2 + 127)
        );
    }

    #[test]
    fn ladders_are_valid() {
        let () = <SeedLadder as LadderExt>::VALID;
        let () = <TinyLadder as LadderExt>::VALID;
    }
}
