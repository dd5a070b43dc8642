//! Independent jobs on a bounded number of threads, results in input order.
//! Layer writing and layer reading use it; a shared counter rather than
//! fixed chunks keeps every thread busy, since job sizes are not known up
//! front.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The thread count for `jobs`: 0 means one per core; never more than there
/// are items, never fewer than one.
pub fn threads(jobs: usize, items: usize) -> usize {
    let n = if jobs == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        jobs
    };
    n.clamp(1, items.max(1))
}

/// Applies `f` to every item on [`threads`]`(jobs, …)` threads. After the
/// first failure no new item is started; the error of the earliest failed
/// item is returned.
pub fn try_map<T, R, E, F>(items: &[T], jobs: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
{
    // `None`: not started after an earlier failure, whose error comes first.
    map_until(items, jobs, f, Result::is_err)
        .into_iter()
        .flatten()
        .collect()
}

/// Applies `f` to every item on [`threads`]`(jobs, …)` threads and keeps
/// every result, in input order. Once a result satisfies `stop`, no new item
/// is started; those come back as `None`.
pub fn map_until<T, R, F, S>(items: &[T], jobs: usize, f: F, stop: S) -> Vec<Option<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
    S: Fn(&R) -> bool + Sync,
{
    let total = items.len();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..total).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads(jobs, total) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    break;
                }
                let r = f(&items[i]);
                if stop(&r) {
                    next.store(total, Ordering::SeqCst);
                }
                // A panic in `f` propagates through the scope, so the lock
                // is never poisoned while it is used here.
                if let Ok(mut v) = results.lock() {
                    v[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_reports_the_first_failure() {
        let items: Vec<u32> = (0..50).collect();
        let doubled = try_map(&items, 3, |i| Ok::<_, String>(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = try_map(&items, 1, |i| {
            if *i >= 7 {
                Err(format!("item {i}"))
            } else {
                Ok(*i)
            }
        })
        .unwrap_err();
        assert_eq!(err, "item 7");
        let all = map_until(&items, 2, |i| *i, |_| false);
        assert_eq!(all.iter().flatten().count(), 50);
        let stopped = map_until(&items, 1, |i| *i, |i| *i == 3);
        assert_eq!(stopped.iter().flatten().count(), 4);
        assert_eq!(threads(0, 0), 1);
        assert_eq!(threads(8, 2), 2);
    }

    #[test]
    fn never_runs_more_than_jobs_at_once() {
        use std::sync::atomic::AtomicUsize;
        use std::time::Duration;
        for jobs in [1, 2, 3] {
            let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let items: Vec<u32> = (0..8).collect();
            map_until(
                &items,
                jobs,
                |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                },
                |_| false,
            );
            assert_eq!(peak.load(Ordering::SeqCst), jobs);
        }
    }
}
