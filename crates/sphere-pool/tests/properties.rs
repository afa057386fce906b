//! Property tests (proptest) of every `SpherePool` function that takes
//! sizes, ranges, grains or counts from a caller: every index exactly once,
//! or a clear error for what the documentation calls invalid; never a wrap.
#![cfg(not(loom))]

use proptest::prelude::*;
use sphere_pool::{Error, MAX_RANGE_LEN, SpherePool};
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Pools of 0 (serial: one thread) to 3 spheres, made once (thread creation is slow), lent to
/// one test at a time (tests run in parallel; a pool runs one round at once).
fn pools() -> MutexGuard<'static, Vec<SpherePool>> {
    static POOLS: OnceLock<Mutex<Vec<SpherePool>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        Mutex::new(
            (1..=4)
                .map(|t| SpherePool::with_threads(t).unwrap())
                .collect(),
        )
    });
    pools.lock().unwrap_or_else(|e| e.into_inner())
}

/// The chunks a parallel-for made, each with its participant.
type Chunks = Vec<(Range<usize>, usize)>;

/// Runs a parallel-for and returns its outcome and the chunks it made,
/// sorted, with the participant of each.
fn chunks_of(pool: &SpherePool, range: Range<usize>, grain: usize) -> (Result<(), Error>, Chunks) {
    let chunks = Mutex::new(Vec::new());
    let result = pool.parallel_for_with(range, grain, |r, p| {
        chunks.lock().unwrap().push((r, p));
        Ok(())
    });
    let mut chunks = chunks.into_inner().unwrap();
    chunks.sort_by_key(|(r, _)| r.start);
    (result, chunks)
}

/// The chunks tile `range` exactly (so every index is covered once), none
/// is empty or longer than a non-zero grain, and participants are in range.
fn assert_tiles(
    chunks: &[(Range<usize>, usize)],
    range: &Range<usize>,
    grain: usize,
    participants: usize,
) -> Result<(), TestCaseError> {
    let mut next = range.start;
    for (r, p) in chunks {
        prop_assert_eq!(r.start, next, "gap or overlap at {:?}", r);
        prop_assert!(r.start < r.end, "empty chunk {:?}", r);
        if grain > 0 {
            prop_assert!(
                r.end - r.start <= grain,
                "chunk {:?} above grain {}",
                r,
                grain
            );
        }
        prop_assert!(*p < participants, "participant {} of {}", p, participants);
        next = r.end;
    }
    prop_assert_eq!(next, range.end, "the range's end is not covered");
    Ok(())
}

/// Grains a caller may pass: automatic, small, around the range's length,
/// and huge (the values that made a cursor wrap in another pool).
fn grain(len: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        1..=16usize,
        0..=len.saturating_add(8),
        Just(usize::MAX),
        Just(1usize << 63),
        any::<usize>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn parallel_for_covers_every_index_once_for_any_grain(
        pool in 0..4usize,
        (start, len, grain) in (0..2000usize, 0..3000usize).prop_flat_map(|(s, l)| (Just(s), Just(l), grain(l))),
    ) {
        let pools = pools();
        let pool = &pools[pool];
        let range = start..start + len;
        let (result, chunks) = chunks_of(pool, range.clone(), grain);
        prop_assert_eq!(result, Ok(()));
        assert_tiles(&chunks, &range, grain, pool.participants())?;
    }

    #[test]
    fn parallel_for_at_the_top_of_the_index_space_does_not_wrap(
        pool in 0..4usize,
        (len, grain) in (0..500usize).prop_flat_map(|l| (Just(l), grain(l))),
    ) {
        let pools = pools();
        let pool = &pools[pool];
        let range = usize::MAX - len..usize::MAX;
        let (result, chunks) = chunks_of(pool, range.clone(), grain);
        prop_assert_eq!(result, Ok(()));
        assert_tiles(&chunks, &range, grain, pool.participants())?;
    }

    /// Huge ranges up to the limit, with grains large enough that the
    /// chunks can be listed (the body does not touch the indices).
    #[test]
    fn parallel_for_huge_ranges_up_to_the_limit(
        pool in 0..4usize,
        len in prop_oneof![MAX_RANGE_LEN - 1000..=MAX_RANGE_LEN, (1usize << 40)..=MAX_RANGE_LEN],
        start in prop_oneof![Just(0usize), 0..=(usize::MAX / 2)],
        extra in prop_oneof![Just(usize::MAX), Just(0usize), 0usize..1 << 20],
    ) {
        let pools = pools();
        let pool = &pools[pool];
        let grain = (len / 256).saturating_add(extra);
        let range = start..start + len;
        let (result, chunks) = chunks_of(pool, range.clone(), grain);
        prop_assert_eq!(result, Ok(()));
        assert_tiles(&chunks, &range, grain, pool.participants())?;
    }

    #[test]
    fn parallel_for_beyond_the_limit_is_an_error_and_calls_nothing(
        pool in 0..4usize,
        len in MAX_RANGE_LEN + 1..=usize::MAX,
        grain in any::<usize>(),
    ) {
        let pools = pools();
        let pool = &pools[pool];
        let start = usize::MAX - len;
        let (result, chunks) = chunks_of(pool, start..start + len, grain);
        prop_assert!(matches!(result, Err(Error::InvalidArgument(ref m)) if m.contains("too long")), "{:?}", result);
        prop_assert!(chunks.is_empty());
    }

    #[test]
    fn a_reversed_range_is_an_error_and_calls_nothing(
        pool in 0..4usize,
        a in any::<usize>(),
        b in any::<usize>(),
        grain in any::<usize>(),
    ) {
        prop_assume!(a != b);
        let (start, end) = (a.max(b), a.min(b));
        let (result, chunks) = chunks_of(&pools()[pool], start..end, grain);
        prop_assert!(matches!(result, Err(Error::InvalidArgument(_))), "{:?}", result);
        prop_assert!(chunks.is_empty());
    }
}

/// A reduce whose partials are the chunk lists themselves: the result must
/// be the chunks in order, tiling the range, none longer than the chunk
/// length, and the same on every pool.
fn reduce_chunks(
    pool: &SpherePool,
    range: Range<usize>,
    chunk: usize,
) -> Result<Vec<Range<usize>>, Error> {
    pool.reduce(
        range,
        chunk,
        Vec::new(),
        |r| vec![r],
        |mut a, b| {
            a.extend(b);
            a
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn reduce_combines_every_chunk_once_in_order_on_any_pool(
        start in prop_oneof![0..1000usize, usize::MAX - 20_000..=usize::MAX - 10_000],
        len in 0..10_000usize,
        chunk in prop_oneof![Just(0usize), 1..64usize, 0..20_000usize, Just(usize::MAX)],
    ) {
        let pools = pools();
        let range = start..start + len;
        let first = reduce_chunks(&pools[0], range.clone(), chunk);
        let first = first.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let step = if chunk == 0 { sphere_pool::REDUCE_CHUNK } else { chunk };
        let mut next = range.start;
        for r in &first {
            prop_assert_eq!(r.start, next);
            prop_assert!(r.start < r.end && r.end - r.start <= step);
            next = r.end;
        }
        prop_assert_eq!(next, range.end);
        for pool in pools.iter().skip(1) {
            prop_assert_eq!(reduce_chunks(pool, range.clone(), chunk), Ok(first.clone()));
        }
    }

    /// Huge ranges with chunk lengths that keep the chunk count small: the
    /// lengths add up to the range's length (no wrap, no lost chunk).
    #[test]
    fn reduce_huge_ranges_count_every_item(
        pool in 0..4usize,
        len in (1usize << 40)..=usize::MAX / 2,
        start in 0..=usize::MAX / 2,
        parts in 1..3000usize,
    ) {
        let pools = pools();
        let chunk = len.div_ceil(parts);
        let total = pools[pool].reduce(start..start + len, chunk, 0u128, |r| (r.end - r.start) as u128, |a, b| a + b);
        prop_assert_eq!(total, Ok(len as u128));
    }

    #[test]
    fn reduce_reversed_ranges_are_errors(a in any::<usize>(), b in any::<usize>(), chunk in any::<usize>()) {
        prop_assume!(a != b);
        let r = reduce_chunks(&pools()[1], a.max(b)..a.min(b), chunk);
        prop_assert!(matches!(r, Err(Error::InvalidArgument(_))), "{:?}", r);
    }
}
