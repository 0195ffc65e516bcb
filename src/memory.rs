//! Handing freed heap back to the system.
//!
//! glibc's malloc keeps pages freed inside its heaps (one arena per busy thread) resident until
//! it is told otherwise; it only gives back the top of the main heap by itself. The operator's
//! caches churn: every watch event replaces a cached object with a new allocation, and a
//! re-list builds the whole cache again before dropping the old one, so after a burst or a
//! restart the process keeps far more resident memory than it has live data. `malloc_trim`
//! returns every whole free page (madvise), which is what Go's scavenger does in the background
//! for Go controllers.

use std::time::Duration;

/// The controller's malloc arenas. glibc gives every new thread that allocates an arena of its
/// own until it has eight per core, and memory freed in one arena serves only that arena's
/// later allocations; the caches' objects are allocated on whichever runtime worker ran the
/// watch and freed on another, so every arena would keep its own high-water mark. One arena
/// keeps one, and its lock is contended by a handful of runtime workers only (figures in
/// `docs/performance.md`).
pub const CONTROLLER_ARENAS: i32 = 1;

/// Caps glibc's malloc arenas at `arenas`; call it before the runtime starts its threads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas(arenas: i32) {
    // SAFETY: mallopt only sets a parameter of glibc's allocator, under its lock.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// Other allocators have their own policies.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_arenas: i32) {}

/// How often freed memory is handed back: cheap (a walk over the free lists), and often enough
/// that RSS follows the cache down within seconds.
pub const TRIM_PERIOD: Duration = Duration::from_secs(10);

/// Hands freed memory back every `period`, for as long as the process runs.
pub async fn return_freed_memory(period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        trim();
    }
}

/// Returns free heap pages to the system; the number of bytes is not reported by glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() {
    // SAFETY: malloc_trim only walks and madvises glibc's own free lists, under its locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's among them) return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() {}
