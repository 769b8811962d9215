//! An executor's work pool: what its slots take their next invocation from.
//!
//! One **dispatcher** per executor pulls from the store's queue, for as many slots as are
//! idle, and reclaims entries of silent executors; the slots themselves never block on the
//! store. A walk that sends children away first offers them to the pool: each one that
//! finds an idle slot **stays in the process** ([`Pool::keep`]), ahead of anything pulled,
//! and never touches the queue. Its parent keeps custody of it: the parent's invocation is
//! acked only after every child it kept has finished ([`Kept::wait`]), so a crash anywhere
//! re-runs the parent, which sends the children again (their effects are idempotent).
//!
//! Accounting: `available` is the number of idle slots less the items queued for them. A
//! slot that finds nothing to do adds one while it waits; a queued item takes one until a
//! slot dequeues it. A child is
//! kept only when it can take one (so every kept child has a slot that will run it, and a
//! parent waiting for its children never waits on a slot that is itself waiting); the
//! dispatcher pulls at most `available` entries.

use crate::walk::Disposition;
use rukong_core::messages::Invocation;
use rukong_core::store::Delivery;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// What a slot runs next.
pub enum Work {
    /// A child kept in the process: run it, then tell its parent how it ended.
    Kept {
        invocation: Invocation,
        done: oneshot::Sender<Disposition>,
    },
    /// An entry pulled from the queue: run it, then ack it (or leave it for redelivery).
    Pulled(Delivery),
}

#[derive(Default)]
struct Queues {
    kept: VecDeque<(Invocation, oneshot::Sender<Disposition>)>,
    pulled: VecDeque<Delivery>,
}

/// The pool shared by an executor's slots, its dispatcher and its walks.
#[derive(Default)]
pub struct Pool {
    queues: Mutex<Queues>,
    available: AtomicIsize,
    /// Slots inside [`Pool::next`], waiting for work.
    waiting: AtomicUsize,
    /// Slots wait here for work.
    work: Notify,
    /// The dispatcher waits here for idle slots.
    idle: Notify,
}

impl Pool {
    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Dequeues an item: kept children first, then (with `pulled`) pulled entries. The item
    /// no longer holds a slot's place.
    fn dequeue(&self, pulled: bool) -> Option<Work> {
        let work = {
            let mut q = self.queues();
            match q.kept.pop_front() {
                Some((invocation, done)) => Some(Work::Kept { invocation, done }),
                None if pulled => q.pulled.pop_front().map(Work::Pulled),
                None => None,
            }
        };
        if work.is_some() {
            self.available.fetch_add(1, Ordering::AcqRel);
        }
        work
    }

    fn take(&self) -> Option<Work> {
        self.dequeue(true)
    }

    /// A kept child, if one waits (for a stopping slot: a parent may be waiting for it).
    pub fn take_kept(&self) -> Option<Work> {
        self.dequeue(false)
    }

    /// The next work for a slot, or `None` once `stop` is set (the slot then stops). The
    /// slot stays counted as idle for the whole wait, so a walk never finds fewer idle
    /// slots than there are; `wait` only bounds how long it sleeps between looks at
    /// `stop` (a stop also wakes it, [`Pool::wake_all`]).
    pub async fn next(&self, wait: Duration, stop: &AtomicBool) -> Option<Work> {
        if let Some(w) = self.take() {
            return Some(w);
        }
        // Idle: one more slot the dispatcher may pull for, or a walk may keep a child on.
        self.available.fetch_add(1, Ordering::AcqRel);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        self.idle.notify_one();
        let work = loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(w) = self.take() {
                break Some(w);
            }
            if stop.load(Ordering::Acquire) {
                break None;
            }
            let _ = tokio::time::timeout(wait, notified).await;
        };
        // Not idle any more: it runs what it took (or stops).
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.available.fetch_sub(1, Ordering::AcqRel);
        work
    }

    /// How many slots are waiting for work now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// How many entries the dispatcher may pull now (at least one idle slot waits).
    pub fn wanted(&self) -> usize {
        self.available.load(Ordering::Acquire).max(0) as usize
    }

    /// Waits until some slot is idle, or `wait` passes.
    pub async fn wait_idle(&self, wait: Duration) {
        let notified = self.idle.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.wanted() > 0 {
            return;
        }
        let _ = tokio::time::timeout(wait, notified).await;
    }

    /// Queues entries the dispatcher pulled.
    pub fn pulled(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let n = deliveries.len();
        self.available.fetch_sub(n as isize, Ordering::AcqRel);
        self.queues().pulled.extend(deliveries);
        for _ in 0..n {
            self.work.notify_one();
        }
    }

    /// Keeps in the process as many of `invocations` as there are idle slots for (from the
    /// front); returns the ones left to send through the queue.
    pub fn keep(&self, kept: &mut Kept, mut invocations: Vec<Invocation>) -> Vec<Invocation> {
        let mut n = 0;
        while n < invocations.len() {
            let a = self.available.load(Ordering::Acquire);
            if a <= 0 {
                break;
            }
            if self
                .available
                .compare_exchange(a, a - 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                n += 1;
            }
        }
        if n == 0 {
            return invocations;
        }
        let rest = invocations.split_off(n);
        {
            let mut q = self.queues();
            for invocation in invocations {
                let (tx, rx) = oneshot::channel();
                q.kept.push_back((invocation, tx));
                kept.children.push(rx);
            }
        }
        for _ in 0..n {
            self.work.notify_one();
        }
        rest
    }

    /// Wakes every waiting slot and the dispatcher (to notice a stop).
    pub fn wake_all(&self) {
        self.work.notify_waiters();
        self.idle.notify_waiters();
    }
}

/// The children a walk kept in the process, whose custody it holds.
#[derive(Default)]
pub struct Kept {
    children: Vec<oneshot::Receiver<Disposition>>,
}

impl Kept {
    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// Waits for every kept child; `Ack` when all finished, `Retry` when one must run again
    /// (the parent is then left for redelivery, and runs it again).
    pub async fn wait(&mut self) -> Disposition {
        let mut all = Disposition::Ack;
        for rx in self.children.drain(..) {
            match rx.await {
                Ok(Disposition::Ack) => {}
                // A retry, or a child dropped unrun (its executor is stopping).
                Ok(Disposition::Retry) | Err(_) => all = Disposition::Retry,
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::JobId;

    fn inv(n: u32) -> Invocation {
        Invocation {
            job: JobId::new("j"),
            warm: Vec::new(),
            warm_ttl_ms: 0,
            release: Vec::new(),
            starts: vec![rukong_core::messages::Start {
                task: rukong_core::TaskIdx(n),
                inputs: Vec::new(),
            }],
        }
    }

    #[tokio::test]
    async fn children_stay_only_on_idle_slots_and_come_first() {
        let pool = std::sync::Arc::new(Pool::default());
        let mut kept = Kept::default();
        // No idle slot: everything goes to the queue.
        assert_eq!(pool.keep(&mut kept, vec![inv(1), inv(2)]).len(), 2);
        assert!(kept.is_empty());
        // One slot goes idle: one child stays, the other goes.
        let p = pool.clone();
        let slot = tokio::spawn(async move {
            p.next(Duration::from_secs(5), &AtomicBool::new(false))
                .await
        });
        while pool.wanted() == 0 {
            tokio::task::yield_now().await;
        }
        let rest = pool.keep(&mut kept, vec![inv(3), inv(4)]);
        assert_eq!(rest.len(), 1);
        assert_eq!(kept.len(), 1);
        assert_eq!(pool.wanted(), 0, "the idle slot is taken by the kept child");
        match slot.await.unwrap() {
            Some(Work::Kept { invocation, done }) => {
                assert_eq!(invocation.starts[0].task, rukong_core::TaskIdx(3));
                done.send(Disposition::Retry).ok();
            }
            _ => panic!("the kept child runs"),
        }
        assert_eq!(kept.wait().await, Disposition::Retry);
    }

    #[tokio::test]
    async fn an_idle_slot_stays_counted_across_its_waits_until_it_stops() {
        let pool = std::sync::Arc::new(Pool::default());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (p, st) = (pool.clone(), stop.clone());
        let slot = tokio::spawn(async move { p.next(Duration::from_millis(5), &st).await });
        while pool.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        // Many of its 5 ms waits pass: it is counted idle all along.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            assert_eq!((pool.waiting(), pool.wanted()), (1, 1));
        }
        stop.store(true, Ordering::Release);
        pool.wake_all();
        assert!(slot.await.unwrap().is_none());
        assert_eq!((pool.waiting(), pool.wanted()), (0, 0));
        let mut kept = Kept::default();
        assert_eq!(pool.keep(&mut kept, vec![inv(1)]).len(), 1);
        // A stopped slot does not wait.
        assert!(pool.next(Duration::from_secs(60), &stop).await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_child_makes_its_parent_retry() {
        let pool = std::sync::Arc::new(Pool::default());
        let p = pool.clone();
        let slot = tokio::spawn(async move {
            p.next(Duration::from_secs(5), &AtomicBool::new(false))
                .await
        });
        while pool.wanted() == 0 {
            tokio::task::yield_now().await;
        }
        let mut kept = Kept::default();
        assert!(pool.keep(&mut kept, vec![inv(1)]).is_empty());
        drop(slot.await.unwrap());
        assert_eq!(kept.wait().await, Disposition::Retry);
    }
}
