//! Warm instances: the opened backends a reusable adapter (one exporting
//! `wharf:storage/reuse`) left idle, handed to the next operation of the
//! same backend instead of instantiating and opening a fresh one.
//!
//! Each [`WasmAdapter`](super::WasmAdapter) has its own [`Pool`], so an
//! instance never serves another backend. An instance goes back to the pool
//! only through [`Pool::put_back`], called when an operation ended cleanly:
//! an operation that failed in a way that may have left it broken, or whose
//! future was dropped half-way, drops it instead (see [`keeps_instance`]).

use crate::error::ErrorKind;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, oneshot};

/// `[backends.<name>.pool]`: how a backend's idle instances are kept.
/// Applies to adapters that export `wharf:storage/reuse`; any other gets a
/// fresh instance per operation whatever this says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Idle instances kept (default 8); `0` turns reuse off.
    pub idle: usize,
    /// Operations one instance serves before it is dropped (default 10,000):
    /// bounds what a slow leak in an adapter can grow to.
    pub uses: u32,
    /// How long an instance may sit idle before it is dropped (default
    /// 60 s): below the idle timeouts servers and proxies commonly apply.
    pub idle_timeout: Duration,
    /// Instances of this backend alive at once, idle or busy (default: no
    /// bound of its own, only the runtime's `max_instances`). A storage that
    /// limits connections (PostgreSQL's `max_connections`) wants one.
    pub max: Option<usize>,
    /// How long an operation waits for an instance when `max` of this
    /// backend, or the runtime's `max_instances`, are all in use, before it
    /// fails as `transient`; `None` takes `[runtime] instance_wait`.
    pub wait: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            idle: 8,
            uses: 10_000,
            idle_timeout: Duration::from_secs(60),
            max: None,
            wait: None,
        }
    }
}

/// Counters of one backend's pool, for tests, benchmarks and `health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Instances instantiated and opened.
    pub created: u64,
    /// Operations that got an idle instance.
    pub reused: u64,
    /// Instances dropped instead of kept: broken, used up, idle too long,
    /// failed `recycle`, or no room in the pool.
    pub discarded: u64,
    /// Instances idle now.
    pub idle: usize,
}

/// Whether an instance whose operation ended with an error of this kind
/// may serve another operation. A connection that broke, a storage that
/// answered strangely or refused the credentials, a trap or a limit: the
/// instance goes. Answers about the object itself keep it.
pub(crate) fn keeps_instance(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::PreconditionFailed
            | ErrorKind::Invalid
            | ErrorKind::Unsupported
    )
}

struct Idle<T> {
    item: T,
    since: Instant,
    generation: u64,
}

/// One backend's idle instances, most recently used last.
pub(crate) struct Pool<T> {
    pub(crate) config: PoolConfig,
    idle: Mutex<Vec<Idle<T>>>,
    /// Bumped when an operation fails in a way that suggests the storage
    /// dropped its connections (server restarted): idle instances of an
    /// older generation are dropped, not tried one by one.
    generation: AtomicU64,
    created: AtomicU64,
    reused: AtomicU64,
    discarded: AtomicU64,
    /// One permit per instance of this backend, idle or busy, when `max`
    /// bounds them.
    pub(crate) limit: Option<Arc<Semaphore>>,
    /// Operations waiting for an instance of this backend (`limit` was
    /// reached), oldest first: an instance that finishes goes to the first
    /// of them instead of the idle list, so none waits past its turn.
    waiters: Mutex<VecDeque<oneshot::Sender<T>>>,
}

/// What the runtime asks of every pool when it needs an instance slot or
/// memory back.
pub(crate) trait Evict: Send + Sync {
    /// Drops the pool's longest-idle instance; whether there was one.
    fn evict_one(&self) -> bool;
}

impl<T: Send> Evict for Pool<T> {
    fn evict_one(&self) -> bool {
        let victim = {
            let mut idle = self.idle.lock().expect("pool lock");
            if idle.is_empty() {
                return false;
            }
            idle.remove(0)
        };
        self.discarded.fetch_add(1, Ordering::Relaxed);
        drop(victim); // outside the lock: dropping a store frees its slot
        true
    }
}

impl<T: Send> Pool<T> {
    pub(crate) fn new(config: PoolConfig) -> Self {
        Pool {
            limit: config.max.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            waiters: Mutex::new(VecDeque::new()),
            config,
            idle: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            created: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        }
    }

    /// The most recently used idle instance that is still young enough and
    /// of the current generation, with how long it sat idle. Stale ones met
    /// on the way are dropped.
    pub(crate) fn take(&self) -> Option<(T, Duration)> {
        let now = Instant::now();
        let generation = self.generation.load(Ordering::Acquire);
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().expect("pool lock");
            // The oldest are at the front: drop every expired one.
            let expired = idle
                .iter()
                .take_while(|i| now.duration_since(i.since) > self.config.idle_timeout)
                .count();
            stale.extend(idle.drain(..expired));
            loop {
                match idle.pop() {
                    None => break None,
                    Some(i) if i.generation != generation => stale.push(i),
                    Some(i) => break Some(i),
                }
            }
        };
        self.discarded.fetch_add(stale.len() as u64, Ordering::Relaxed);
        drop(stale);
        let i = found?;
        Some((i.item, now.duration_since(i.since)))
    }

    /// Keeps `item` for a later operation, or drops it when it has served
    /// its uses, reuse is off, or `room` says the runtime needs the slot.
    /// Returns `false` when dropped.
    pub(crate) fn put_back(&self, item: T, uses: u32, room: bool) -> bool {
        if self.config.idle == 0 || uses >= self.config.uses || !room {
            self.discard(item);
            return false;
        }
        // The oldest waiter still waiting gets it.
        let mut item = item;
        loop {
            let Some(waiter) = self.waiters.lock().expect("pool lock").pop_front() else {
                break;
            };
            match waiter.send(item) {
                Ok(()) => return true,
                Err(back) => item = back,
            }
        }
        let overflow = {
            let mut idle = self.idle.lock().expect("pool lock");
            idle.push(Idle {
                item,
                since: Instant::now(),
                generation: self.generation.load(Ordering::Acquire),
            });
            (idle.len() > self.config.idle).then(|| idle.remove(0))
        };
        if let Some(o) = overflow {
            self.discarded.fetch_add(1, Ordering::Relaxed);
            drop(o);
        }
        true
    }

    pub(crate) fn discard(&self, item: T) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
        drop(item);
    }

    /// Drops the idle instances that are there now: their connections may
    /// be as broken as the one that just failed.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let gone = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        self.discarded.fetch_add(gone.len() as u64, Ordering::Relaxed);
    }

    /// Drops instances idle longer than the idle timeout.
    pub(crate) fn reap(&self) {
        let now = Instant::now();
        let gone: Vec<_> = {
            let mut idle = self.idle.lock().expect("pool lock");
            let expired = idle
                .iter()
                .take_while(|i| now.duration_since(i.since) > self.config.idle_timeout)
                .count();
            idle.drain(..expired).collect()
        };
        self.discarded.fetch_add(gone.len() as u64, Ordering::Relaxed);
    }

    /// Queues a wait for the next instance this backend finishes with.
    pub(crate) fn wait_for_returned(&self) -> oneshot::Receiver<T> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock().expect("pool lock");
        // Waits that gave up (their receiver is gone) are dropped here.
        waiters.retain(|w| !w.is_closed());
        waiters.push_back(tx);
        rx
    }

    pub(crate) fn created(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reused(&self) {
        self.reused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            created: self.created.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            idle: self.idle.lock().expect("pool lock").len(),
        }
    }
}

/// Drops idle instances past their idle timeout every so often, while the
/// pool lives, so connections do not sit open for ever in a quiet process.
pub(crate) fn spawn_reaper<T: Send + 'static>(pool: Weak<Pool<T>>, every: Duration) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return; // no runtime: expired instances go when next met
    };
    handle.spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            tick.tick().await;
            match pool.upgrade() {
                Some(p) => p.reap(),
                None => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(idle: usize, uses: u32, idle_timeout: Duration) -> Pool<u32> {
        Pool::new(PoolConfig {
            idle,
            uses,
            idle_timeout,
            max: None,
            wait: None,
        })
    }

    #[test]
    fn takes_the_most_recent_and_drops_expired() {
        let p = pool(4, 100, Duration::from_millis(50));
        assert!(p.put_back(1, 1, true));
        std::thread::sleep(Duration::from_millis(80));
        assert!(p.put_back(2, 1, true));
        assert_eq!(p.take().map(|(i, _)| i), Some(2));
        // 1 is past its idle timeout: dropped, not handed out.
        assert_eq!(p.take().map(|(i, _)| i), None);
        assert_eq!(p.stats().discarded, 1);
    }

    #[test]
    fn uses_room_and_size_bound_what_is_kept() {
        let p = pool(2, 3, Duration::from_secs(60));
        assert!(!p.put_back(1, 3, true), "used up");
        assert!(!p.put_back(2, 1, false), "the runtime needs the slot");
        assert!(p.put_back(3, 1, true));
        assert!(p.put_back(4, 1, true));
        assert!(p.put_back(5, 1, true));
        assert_eq!(p.stats().idle, 2, "the oldest went");
        assert_eq!(p.take().map(|(i, _)| i), Some(5));
        assert_eq!(p.take().map(|(i, _)| i), Some(4));
        assert_eq!(p.stats().discarded, 3);
        let off = pool(0, 100, Duration::from_secs(60));
        assert!(!off.put_back(1, 1, true));
    }

    #[test]
    fn invalidate_drops_what_is_idle() {
        let p = pool(4, 100, Duration::from_secs(60));
        p.put_back(1, 1, true);
        p.put_back(2, 1, true);
        p.invalidate();
        assert!(p.take().is_none());
        p.put_back(3, 1, true);
        assert_eq!(p.take().map(|(i, _)| i), Some(3), "new ones are kept again");
        assert!(p.evict_one() || p.stats().idle == 0);
    }

    #[test]
    fn kinds_that_keep_an_instance() {
        assert!(keeps_instance(ErrorKind::NotFound));
        assert!(keeps_instance(ErrorKind::PreconditionFailed));
        for k in [
            ErrorKind::Transient,
            ErrorKind::Unreachable,
            ErrorKind::Backend,
            ErrorKind::Denied,
            ErrorKind::Adapter,
        ] {
            assert!(!keeps_instance(k), "{k:?}");
        }
    }
}
