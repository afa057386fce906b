//! Loom model checks of the loader's two concurrency protocols: the
//! directory work queue (every item processed once, every thread ends) and
//! the hand-over of files opened ahead (every file opened exactly once).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p corpus-loader --release
//! --test loom` (`make loom`). Loom explores every interleaving of the
//! threads (up to the preemption bound) and fails on a deadlock, a thread
//! that never ends, or an assertion.
#![cfg(loom)]

use corpus_loader::loom_api::{OnceSlots, WorkQueue};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

#[test]
fn every_item_of_a_growing_work_queue_is_processed_once_and_all_threads_end() {
    loom::model(|| {
        // Item 0 (the root) finds items 1 and 2; item 1 finds item 3.
        let queue = Arc::new(WorkQueue::new(vec![0usize]));
        let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
        let work = |seen: &Vec<AtomicUsize>, item: usize| {
            seen[item].fetch_add(1, Ordering::Relaxed);
            match item {
                0 => vec![1, 2],
                1 => vec![3],
                _ => vec![],
            }
        };
        let other = {
            let (queue, seen) = (queue.clone(), seen.clone());
            thread::spawn(move || {
                queue.run(|item| work(&seen, item));
                // No thread gives up while another may still add work.
                assert!(queue.is_finished());
            })
        };
        queue.run(|item| work(&seen, item));
        assert!(queue.is_finished());
        other.join().unwrap();
        for (item, count) in seen.iter().enumerate() {
            assert_eq!(count.load(Ordering::Relaxed), 1, "item {item}");
        }
    });
}

#[test]
fn a_file_is_opened_once_by_the_look_ahead_or_by_its_reader() {
    loom::model(|| {
        // The look-ahead opens files 0 and 1 while a reader takes them: in
        // every interleaving each file is opened exactly once, and the
        // reader gets the file the look-ahead opened.
        let slots = Arc::new(OnceSlots::<usize>::new(2, |_| false));
        let opens: Arc<Vec<AtomicUsize>> = Arc::new((0..2).map(|_| AtomicUsize::new(0)).collect());
        let ahead = {
            let (slots, opens) = (slots.clone(), opens.clone());
            thread::spawn(move || {
                for j in 0..2 {
                    slots.open_ahead(j, || {
                        opens[j].fetch_add(1, Ordering::Relaxed);
                        Some(j)
                    });
                }
            })
        };
        for k in 0..2 {
            match slots.take(k) {
                Some(file) => assert_eq!(file, k, "a reader gets its own file"),
                None => {
                    opens[k].fetch_add(1, Ordering::Relaxed); // the reader opens it
                }
            }
        }
        ahead.join().unwrap();
        assert_eq!(opens[0].load(Ordering::Relaxed), 1, "file 0 opened once");
        assert_eq!(opens[1].load(Ordering::Relaxed), 1, "file 1 opened once");
    });
}

#[test]
fn a_failed_early_open_is_left_to_the_reader() {
    loom::model(|| {
        let slots = Arc::new(OnceSlots::<usize>::new(1, |_| false));
        let ahead = {
            let slots = slots.clone();
            thread::spawn(move || slots.open_ahead(0, || None))
        };
        assert_eq!(
            slots.take(0),
            None,
            "nothing parked: the reader opens (and reports) it"
        );
        ahead.join().unwrap();
    });
}
