//! MemoryLimiter: the in-process keyed store of rolling windows, one per (route class, client).
//!
//! Keys are (class id, grouped client address): IPv4 by full address, IPv6 by the configured
//! prefix (an IPv4-mapped IPv6 address counts as its IPv4 address). Class names are interned
//! once into small ids, so a check on an existing key allocates nothing: one class lookup (an
//! `ArcSwap` snapshot, no shared write), one `DashMap` lookup whose shard write lock makes
//! check-and-count atomic, and 21 additions.
//!
//! Idle keys are removed by [`MemoryLimiter::sweep`]. The cap and its overflow policy (shared
//! per-class overflow windows, never evicting live counters) are described in the parent
//! module's docs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::window::{Verdict, Window};
use super::{Decision, Limit, Settings, ceil_secs};
use crate::clock::SharedClock;

/// Least time between two sweeps forced by a full store, ms.
const FULL_SWEEP_EVERY_MS: u64 = 1000;

/// (class, client) as stored: 20 bytes, 4-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: [u32; 4],
    class: u32,
}

/// Class name -> class. Names come from the config, never from clients, so a fast
/// non-keyed hash (FNV-1a) is fine here; the client-keyed `windows` map keeps SipHash.
type ClassMap = HashMap<Box<str>, Arc<Class>, BuildHasherDefault<Fnv>>;

/// FNV-1a, 64-bit.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Per-class state: its id in keys, and the window shared by clients that found the store full.
#[derive(Debug)]
struct Class {
    id: u32,
    overflow: Mutex<Window>,
    /// Set (under the mutex) when the overflow window admits; cleared once it is idle. Read
    /// without the lock so a new key costs no mutex while no overflow happened.
    overflow_active: AtomicBool,
}

impl Class {
    fn new(id: u32) -> Self {
        Self {
            id,
            overflow: Mutex::new(Window::new()),
            overflow_active: AtomicBool::new(false),
        }
    }

    fn overflow(&self) -> std::sync::MutexGuard<'_, Window> {
        self.overflow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The window a newly tracked key starts with: empty, unless the overflow window still
    /// holds admissions. The new client may have been one of them, so it inherits them all;
    /// this keeps Safety for a client that moves from the shared window to its own.
    fn initial_window(&self, now: u64) -> Window {
        if !self.overflow_active.load(Ordering::Acquire) {
            return Window::new();
        }
        let o = self.overflow();
        if o.is_idle(now) {
            self.overflow_active.store(false, Ordering::Release);
            Window::new()
        } else {
            o.clone()
        }
    }
}

/// In-memory rolling-window limiter (see the module docs of `ratelimit`). `Send + Sync`;
/// share it in an `Arc` across the gateway and across config reloads.
pub struct MemoryLimiter {
    /// `[rate_limit] ipv6_prefix`, replaced by a reload ([`MemoryLimiter::apply`]).
    ipv6_prefix: AtomicU8,
    /// `[rate_limit] max_tracked_clients`, replaced by a reload.
    max_tracked: AtomicUsize,
    clock: SharedClock,
    windows: DashMap<Key, Window>,
    /// Interned classes. Read on every check without writing to shared memory (no lock word,
    /// no refcount); replaced copy-on-write under `intern` when a class is first seen.
    classes: ArcSwap<ClassMap>,
    intern: Mutex<()>,
    next_class: AtomicU32,
    /// Keys in `windows`, kept here because `DashMap::len` locks every shard.
    tracked: AtomicUsize,
    last_full_sweep_ms: AtomicU64,
    overflowed: AtomicU64,
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("settings", &self.settings())
            .field("tracked", &self.tracked())
            .field("classes", &self.classes.load().len())
            .field("overflowed", &self.overflowed())
            .finish_non_exhaustive()
    }
}

impl MemoryLimiter {
    /// The settings in force (`[rate_limit]` of the running config).
    pub fn settings(&self) -> Settings {
        Settings {
            ipv6_prefix: self.ipv6_prefix.load(Ordering::Relaxed),
            max_tracked_clients: self.max_tracked.load(Ordering::Relaxed),
        }
    }

    /// Applies a reloaded `[rate_limit]`; every counter is kept. A lower `max_tracked_clients`
    /// sends new clients to the overflow windows until enough tracked keys go idle (none is
    /// evicted early); a higher one admits new keys at once. A new `ipv6_prefix` groups IPv6
    /// clients afresh: their counters under the old grouping stop counting and are swept when
    /// idle (IPv4 clients are unaffected). Returns whether anything changed.
    pub fn apply(&self, s: Settings) -> bool {
        let before = self.settings();
        self.ipv6_prefix.store(s.ipv6_prefix, Ordering::Relaxed);
        self.max_tracked
            .store(s.max_tracked_clients, Ordering::Relaxed);
        before != s
    }

    /// An empty limiter reading time from `clock`.
    pub fn new(settings: Settings, clock: SharedClock) -> Self {
        Self {
            ipv6_prefix: AtomicU8::new(settings.ipv6_prefix),
            max_tracked: AtomicUsize::new(settings.max_tracked_clients),
            clock,
            windows: DashMap::new(),
            classes: ArcSwap::default(),
            intern: Mutex::new(()),
            next_class: AtomicU32::new(0),
            tracked: AtomicUsize::new(0),
            last_full_sweep_ms: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        }
    }

    /// Decides one request of client `ip` on route class `class` (a stable class name) under
    /// `limit`, counting it when admitted.
    pub fn check(&self, class: &str, ip: IpAddr, limit: Limit) -> Decision {
        let now = self.clock.now_millis();
        let addr = self.group(ip);
        let classes = self.classes.load();
        match classes.get(class) {
            Some(c) => self.check_in(c, addr, now, limit),
            None => self.check_in(&self.intern(class), addr, now, limit),
        }
    }

    /// Removes keys whose counts have all expired (nothing in the last W + W/20); dropping such
    /// a key changes no decision. Returns how many were removed. Locks one shard at a time.
    pub fn sweep(&self) -> usize {
        let now = self.clock.now_millis();
        let mut removed = 0;
        self.windows.retain(|_, w| {
            let idle = w.is_idle(now);
            removed += usize::from(idle);
            !idle
        });
        self.tracked.fetch_sub(removed, Ordering::AcqRel);
        removed
    }

    /// Number of tracked (class, client) keys.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Acquire)
    }

    /// Number of decisions taken by a shared overflow window because the store was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Starts a task that calls [`sweep`](Self::sweep) every `every`. It holds only a `Weak`
    /// and ends at the first tick after the limiter is dropped. Needs a tokio runtime.
    /// A sweep of a million keys takes milliseconds, one shard lock at a time.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    break;
                };
                let removed = limiter.sweep();
                drop(limiter);
                tracing::debug!(removed, "rate-limit sweep");
            }
        })
    }

    /// Check on a known class: the existing key's window under its shard lock, else `check_new`.
    fn check_in(&self, class: &Class, addr: [u32; 4], now: u64, limit: Limit) -> Decision {
        let key = Key {
            addr,
            class: class.id,
        };
        if let Some(mut w) = self.windows.get_mut(&key) {
            return decision(w.check(now, limit), limit);
        }
        self.check_new(class, key, now, limit)
    }

    /// Adds a class on its first use (copy-on-write; classes are few and stable).
    fn intern(&self, name: &str) -> Arc<Class> {
        let _one_writer = self
            .intern
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.classes.load_full();
        if let Some(c) = current.get(name) {
            return Arc::clone(c);
        }
        let class = Arc::new(Class::new(self.next_class.fetch_add(1, Ordering::Relaxed)));
        let mut next = ClassMap::clone(&current);
        next.insert(Box::from(name), Arc::clone(&class));
        self.classes.store(Arc::new(next));
        class
    }

    /// The address part of a key: IPv4 as `::ffff:a.b.c.d`, IPv6 masked to the prefix.
    pub(crate) fn group(&self, ip: IpAddr) -> [u32; 4] {
        match ip.to_canonical() {
            IpAddr::V4(v4) => [0, 0, 0xffff, u32::from(v4)],
            IpAddr::V6(v6) => {
                let prefix = u32::from(self.ipv6_prefix.load(Ordering::Relaxed).min(128));
                let bits = u128::from(v6);
                let masked = if prefix == 0 {
                    0
                } else {
                    bits & (u128::MAX << (128 - prefix))
                };
                [
                    (masked >> 96) as u32,
                    (masked >> 64) as u32,
                    (masked >> 32) as u32,
                    masked as u32,
                ]
            }
        }
    }

    /// A key not in the store: give it its own window if there is room (after a sweep of idle
    /// keys if needed), else count it in the class's overflow window.
    ///
    /// Everything happens under the key's shard lock, so no other request for this key can
    /// insert it while this one is being decided in the overflow window. Lock order is always
    /// shard, then overflow mutex; the sweep runs with no lock held.
    fn check_new(&self, class: &Class, key: Key, now: u64, limit: Limit) -> Decision {
        let mut swept = false;
        loop {
            match self.windows.entry(key) {
                Entry::Occupied(mut o) => return decision(o.get_mut().check(now, limit), limit),
                Entry::Vacant(v) => {
                    if self.reserve() {
                        let mut w = class.initial_window(now);
                        let verdict = w.check(now, limit);
                        v.insert(w);
                        return decision(verdict, limit);
                    }
                    if !swept && self.full_sweep_due(now) {
                        drop(v);
                        swept = true;
                        self.sweep();
                        continue;
                    }
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    let mut o = class.overflow();
                    let verdict = o.check(now, limit);
                    if verdict.allowed {
                        class.overflow_active.store(true, Ordering::Release);
                    }
                    drop(o);
                    drop(v);
                    return decision(verdict, limit);
                }
            }
        }
    }

    /// Takes one place under the cap, if any is left.
    fn reserve(&self) -> bool {
        let cap = self.max_tracked.load(Ordering::Relaxed);
        self.tracked
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Whether a store-is-full sweep may run now: at most once per `FULL_SWEEP_EVERY_MS`
    /// across all threads (the caller that gets `true` runs it), so a flood of new addresses
    /// cannot make every request pay for a sweep.
    fn full_sweep_due(&self, now: u64) -> bool {
        let last = self.last_full_sweep_ms.load(Ordering::Acquire);
        if last != 0 && now < last.saturating_add(FULL_SWEEP_EVERY_MS) {
            return false;
        }
        // `max(1)`: 0 means "never swept", so a sweep at clock time 0 still throttles.
        self.last_full_sweep_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

pub(crate) fn decision(v: Verdict, limit: Limit) -> Decision {
    let wait = ceil_secs(v.wait_ms);
    Decision {
        allowed: v.allowed,
        limit,
        remaining: v.remaining,
        reset_secs: wait,
        retry_after_secs: if v.allowed { 0 } else { wait },
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
