//! Keeping an oversubscribed pool's threads spread over its CPUs.
//!
//! Threads that spin or yield between rounds never leave their CPU, and a
//! CPU whose thread yields never goes idle, so the scheduler has no reason
//! to move one: four threads of a pool on two CPUs that start three and one
//! stay so for the whole process, and every round takes three shares' time
//! instead of two (measured on a 2-vCPU Xeon: 60-65 us rounds of 20 us
//! shares in two processes of three, 39-41 us in the third). Parking
//! instead lets the scheduler place each thread when it wakes, but costs a
//! wake-up per round (74-96 us). So the pool looks now and then at where
//! its threads ran ([`plan_move`]) and asks one thread on the busiest CPU
//! to move itself to the idlest ([`move_self_to`]), once, when the two
//! differ by two threads or more.

use crate::cpu_mask::{CpuMask, MAX_CPUS};

/// One thread to move: which participant, and where to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The participant's index (never the last one, the round's caller).
    pub participant: usize,
    /// The CPU it should move to.
    pub to_cpu: usize,
}

/// Which thread, if any, should move: `participants` threads of which the
/// last is the round's caller (never moved), `cpu_of(i)` the CPU
/// participant `i` last ran on (`None`: unknown), `allowed` the CPUs they
/// may use. A participant on the allowed CPU with the most of them moves to
/// the allowed CPU with the fewest (lowest numbers on ties) when the two
/// counts differ by two or more. Allocates nothing.
pub fn plan_move(
    participants: usize,
    cpu_of: impl Fn(usize) -> Option<usize>,
    allowed: &CpuMask,
) -> Option<Move> {
    let mut counts = [0u16; MAX_CPUS];
    for i in 0..participants {
        if let Some(cpu) = cpu_of(i).filter(|&c| allowed.contains(c)) {
            counts[cpu] = counts[cpu].saturating_add(1);
        }
    }
    let allowed_cpus = (0..allowed.end()).filter(|&c| allowed.contains(c));
    let busiest = allowed_cpus
        .clone()
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))?;
    let idlest = allowed_cpus.min_by_key(|&c| (counts[c], c))?;
    if counts[busiest] < counts[idlest].saturating_add(2) {
        return None;
    }
    // The highest-numbered sphere there (spheres are started in order; any
    // would do, but one choice keeps repeated plans moving the same one).
    let participant = (0..participants.saturating_sub(1))
        .rev()
        .find(|&i| cpu_of(i) == Some(busiest))?;
    Some(Move {
        participant,
        to_cpu: idlest,
    })
}

/// Moves the calling thread to `cpu` (an affinity mask of that CPU alone,
/// which the kernel applies at once), then gives it back its mask, so that
/// the scheduler may move it again later. Returns whether it moved: not if
/// `cpu` is outside its mask, or the system refused.
pub fn move_self_to(cpu: usize) -> bool {
    let Some(saved) = CpuMask::of_this_thread() else {
        return false;
    };
    if !saved.contains(cpu) {
        return false;
    }
    let moved = CpuMask::of([cpu]).apply_to(0);
    saved.apply_to(0);
    moved
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn plan(cpus: &[usize], allowed: &[usize]) -> Option<Move> {
        plan_move(
            cpus.len(),
            |i| Some(cpus[i]),
            &CpuMask::of(allowed.iter().copied()),
        )
    }

    #[test]
    fn three_on_one_cpu_and_one_on_the_other_moves_a_sphere() {
        // Participants 0..=2 are spheres, 3 the caller.
        assert_eq!(
            plan(&[0, 0, 1, 0], &[0, 1]),
            Some(Move {
                participant: 1,
                to_cpu: 1
            })
        );
        assert_eq!(
            plan(&[1, 0, 1, 1], &[0, 1]),
            Some(Move {
                participant: 2,
                to_cpu: 0
            })
        );
    }

    #[test]
    fn an_even_or_nearly_even_spread_stays() {
        assert_eq!(plan(&[0, 1, 1, 0], &[0, 1]), None);
        assert_eq!(plan(&[0, 1, 0], &[0, 1]), None);
        let sixteen: Vec<usize> = (0..16).map(|i| i % 2).collect();
        assert_eq!(plan(&sixteen, &[0, 1]), None);
    }

    #[test]
    fn an_idle_allowed_cpu_counts_as_zero() {
        assert_eq!(
            plan(&[2, 2, 5], &[2, 5, 7]),
            Some(Move {
                participant: 1,
                to_cpu: 7
            })
        );
    }

    #[test]
    fn the_caller_is_never_moved() {
        // Two on CPU 0: one sphere and the caller; the sphere moves.
        assert_eq!(
            plan(&[0, 1, 1, 0, 0], &[0, 1, 2]),
            Some(Move {
                participant: 3,
                to_cpu: 2
            })
        );
    }

    #[test]
    fn cpus_outside_the_mask_or_unknown_are_not_counted() {
        assert_eq!(plan(&[3, 3, 3, 0], &[0]), None);
        assert_eq!(plan(&[0, 0, 0, 0], &[0]), None);
        assert_eq!(
            plan_move(
                4,
                |i| [Some(0), None, Some(0), Some(0)][i],
                &CpuMask::of([0, 1])
            ),
            Some(Move {
                participant: 2,
                to_cpu: 1
            })
        );
        assert_eq!(plan(&[MAX_CPUS + 3, 0], &[0, 1]), None);
    }

    #[test]
    fn a_thread_moves_itself_and_keeps_its_mask() {
        let Some(mask) = CpuMask::of_this_thread() else {
            return;
        };
        let cpus: Vec<usize> = (0..mask.end()).filter(|&c| mask.contains(c)).collect();
        std::thread::spawn(move || {
            for &cpu in cpus.iter().rev() {
                assert!(move_self_to(cpu));
                let after = CpuMask::of_this_thread().unwrap();
                assert!(
                    cpus.iter().all(|&c| after.contains(c)),
                    "the mask was not restored"
                );
            }
            assert!(!move_self_to(MAX_CPUS + 1));
        })
        .join()
        .unwrap();
    }
}
