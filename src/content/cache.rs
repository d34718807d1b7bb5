//! The content app's per-process resolution cache: request path -> the file it serves (with an
//! artifact in storage) or a 404, so a repeated request costs no SQL at all.
//!
//! # Coherence across processes
//!
//! Every write that can change what a path resolves to (a distribution created, changed or
//! deleted; a publication created, completed or deleted; a repository version completed or
//! deleted; a repository deleted) bumps the database's *content generation* by trigger, in the
//! writer's own transaction (`migrations/*/0016_content_cache.sql`), whichever process made it.
//! Each content process reads that counter (one single-row query) every `ttl / 4` in the
//! background, and drops every entry when it moved.
//!
//! **Bound:** a change committed at time `c` is never served from a cache after `c + ttl`
//! (`content_cache_ttl`, default [`DEFAULT_TTL`]). Entries are served only while the last
//! generation check that *started* within `ttl` confirmed the cache's generation (a check that
//! starts after `c` sees the change); when none did (the database is slow or down, the
//! background check was delayed), the request runs its own check first, and without a fresh
//! one the cache is bypassed, never trusted. An entry filled by a lookup is kept only if the
//! generation did not move while it was looked up.
//!
//! Not cached: files whose content artifact has no artifact yet (on-demand: resolved and
//! coordinated through the database every time, until saved), directories and redirects. The
//! maps are bounded ([`MAX_FILES`], [`MAX_MISSES`]) and emptied when full.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use super::serve::Prepared;
use crate::db::DynStore;

/// The default coherence bound.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// Files cached at most (then the file map is emptied).
pub const MAX_FILES: usize = 200_000;
/// 404s cached at most (then the 404 map is emptied).
pub const MAX_MISSES: usize = 50_000;

/// What a request path resolved to.
pub enum Cached {
    /// A stored file, with its response headers prepared.
    File(Prepared),
    /// A 404 with this body.
    NotFound(&'static str),
}

/// The generation an entry was looked up under (see [`ResolutionCache::insert`]).
#[derive(Debug, Clone, Copy)]
pub struct Ticket(i64);

/// A cache lookup.
pub enum Lookup {
    Hit(Arc<Cached>),
    /// Not cached: resolve, then [`ResolutionCache::insert`] with the ticket.
    Miss(Ticket),
    /// The cache cannot be trusted now: resolve without it.
    Bypass,
}

struct State {
    generation: i64,
    /// Start of the last generation check that confirmed `generation`.
    confirmed_at: Option<Instant>,
    files: HashMap<String, Arc<Cached>>,
    misses: HashMap<String, Arc<Cached>>,
}

/// A per-process resolution cache; see the module doc.
pub struct ResolutionCache {
    ttl: Duration,
    state: RwLock<State>,
    /// One generation check at a time.
    checking: tokio::sync::Mutex<()>,
    /// Called with every generation change (the mapped files drop their maps with it).
    on_change: Box<dyn Fn() + Send + Sync>,
}

impl ResolutionCache {
    /// A cache trusted for `ttl` after each generation check; a zero `ttl` disables it.
    pub fn new(ttl: Duration, on_change: Box<dyn Fn() + Send + Sync>) -> ResolutionCache {
        ResolutionCache {
            ttl,
            state: RwLock::new(State {
                generation: i64::MIN,
                confirmed_at: None,
                files: HashMap::new(),
                misses: HashMap::new(),
            }),
            checking: tokio::sync::Mutex::new(()),
            on_change,
        }
    }

    fn fresh(&self, s: &State) -> bool {
        s.confirmed_at.is_some_and(|t| t.elapsed() < self.ttl)
    }

    fn peek(&self, key: &str) -> Option<Lookup> {
        let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if !self.fresh(&s) {
            return None;
        }
        let hit = s.files.get(key).or_else(|| s.misses.get(key));
        Some(match hit {
            Some(c) => Lookup::Hit(c.clone()),
            None => Lookup::Miss(Ticket(s.generation)),
        })
    }

    /// Looks `key` up; when the cache is not fresh, checks the generation first.
    pub async fn lookup(&self, key: &str, store: &DynStore) -> Lookup {
        if self.ttl.is_zero() {
            return Lookup::Bypass;
        }
        if let Some(l) = self.peek(key) {
            return l;
        }
        self.check(store, false).await;
        self.peek(key).unwrap_or(Lookup::Bypass)
    }

    /// Keeps what `key` resolved to, unless the generation moved since `ticket`.
    pub fn insert(&self, ticket: Ticket, key: &str, value: Cached) {
        let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if s.generation != ticket.0 || !self.fresh(&s) {
            return;
        }
        let (map, max) = match value {
            Cached::File(_) => (&mut s.files, MAX_FILES),
            Cached::NotFound(_) => (&mut s.misses, MAX_MISSES),
        };
        if map.len() >= max {
            map.clear();
        }
        map.insert(key.to_string(), Arc::new(value));
    }

    /// Reads the generation; drops every entry when it moved. Unless `force`, does nothing
    /// when another check made the cache fresh meanwhile.
    pub async fn check(&self, store: &DynStore, force: bool) {
        let _one = self.checking.lock().await;
        if !force {
            let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
            if self.fresh(&s) {
                return;
            }
        }
        let started = Instant::now();
        let generation = match store.content_generation().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the content generation");
                return;
            }
        };
        let changed = {
            let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let changed = s.generation != generation;
            if changed {
                s.files.clear();
                s.misses.clear();
                s.generation = generation;
            }
            s.confirmed_at = Some(started);
            changed
        };
        if changed {
            (self.on_change)();
        }
    }

    /// Checks the generation every `ttl / 4` until the cache is dropped.
    pub fn spawn_checker(self: &Arc<Self>, store: DynStore) {
        if self.ttl.is_zero() {
            return;
        }
        let weak: Weak<ResolutionCache> = Arc::downgrade(self);
        let period = (self.ttl / 4).max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else { return };
                cache.check(&store, true).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl: Duration) -> ResolutionCache {
        ResolutionCache::new(ttl, Box::new(|| {}))
    }

    fn confirm(c: &ResolutionCache, generation: i64, at: Instant) {
        let mut s = c.state.write().unwrap();
        if s.generation != generation {
            s.files.clear();
            s.misses.clear();
            s.generation = generation;
        }
        s.confirmed_at = Some(at);
    }

    #[test]
    fn entries_of_an_older_generation_are_refused_and_dropped() {
        let c = cache(Duration::from_secs(60));
        assert!(c.peek("a").is_none(), "never checked: not fresh");
        confirm(&c, 1, Instant::now());
        let Some(Lookup::Miss(t)) = c.peek("a") else {
            panic!("miss expected")
        };
        c.insert(t, "a", Cached::NotFound("x"));
        assert!(matches!(c.peek("a"), Some(Lookup::Hit(_))));
        // A lookup that started under generation 1 finishes after the move to 2: refused.
        let Some(Lookup::Miss(old)) = c.peek("b") else {
            panic!("miss expected")
        };
        confirm(&c, 2, Instant::now());
        assert!(matches!(c.peek("a"), Some(Lookup::Miss(_))), "dropped");
        c.insert(old, "b", Cached::NotFound("x"));
        assert!(matches!(c.peek("b"), Some(Lookup::Miss(_))));
    }

    #[test]
    fn not_served_past_the_bound() {
        let c = cache(Duration::from_millis(50));
        let long_ago = Instant::now()
            .checked_sub(Duration::from_millis(51))
            .expect("instant");
        confirm(&c, 1, long_ago);
        assert!(c.peek("a").is_none(), "stale check: bypass");
        let zero = cache(Duration::ZERO);
        confirm(&zero, 1, Instant::now());
        assert!(zero.peek("a").is_none());
    }
}
