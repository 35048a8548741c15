//! The process's memory: the allocator, and handing memory that was used and freed back to the
//! system.
//!
//! Rust's allocations go to mimalloc: on the bench endpoint it took 17-28 % less CPU per
//! request than glibc's malloc in two runs (whose arenas, locks and consolidation were 15 % of a
//! profile). Built without its transparent-huge-page advice (`no_thp`), so that a touched byte
//! costs a 4 KiB page, not 2 MiB (with it, RSS under load doubled). SQLite, in C, still allocates
//! with glibc's malloc.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: the 16th option of mimalloc v3's `mi_option_e` (`mimalloc.h`), which
/// the Rust binding does not name.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
// The v3 layout of the options, as PURGE_DELAY assumes: an update of the binding that changes it
// fails the build here.
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47);

/// Sets both allocators' options: the server calls it first thing in `main`, before any thread
/// starts. mimalloc's pages left free go back to the system at once rather than 10 ms later
/// (peak RSS under the bench's keep-alive load 25.7 -> 25.0 MiB in one run, CPU per request
/// unchanged within the run's noise); glibc's thresholds are fixed ([`fix_glibc_thresholds`]).
pub fn configure() {
    // SAFETY: sets one of mimalloc's runtime options (not thread-safe: `main` calls this before any
    // thread starts); it takes effect at the next purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) };
    fix_glibc_thresholds();
}

/// glibc raises its mmap threshold (and with it the trim threshold, to twice as much) each time
/// a large block is freed, up to 32 MiB: after start-up freed its big buffers, freed memory stays
/// in the heaps instead of going back to the system. Fixed at glibc's initial 128 KiB, large
/// blocks are mapped on their own and a heap's free top goes back once it passes 128 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_glibc_thresholds() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets glibc's tunables; called first thing, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_glibc_thresholds() {}

/// Returns what was freed to the system: this thread's free mimalloc pages, and the free pages of
/// every glibc malloc arena (SQLite's page caches and statements). glibc gives back on its own
/// only what is free at the top of a heap; a large piece of work that allocated and freed between
/// blocks still in use (start-up's compile buffers, a big answer built on one of tokio's blocking
/// threads) would otherwise stay resident for good.
pub fn release_freed() {
    // SAFETY: mi_collect only frees this thread's free pages; it is thread-safe.
    unsafe { libmimalloc_sys::mi_collect(true) };
    trim_glibc();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_glibc() {
    // SAFETY: malloc_trim only returns free pages of the heaps; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries return memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_glibc() {}

/// An answer at least this large gives its memory back to the system when it is dropped (see
/// [`released_when_dropped`]).
const LARGE_ANSWER: usize = 64 << 10;

/// `body` as [`Bytes`] that, once the last reference to it is gone (the answer was written),
/// returns what was freed to the system ([`release_freed`]): a large answer (`/api/suppliers` is
/// about a megabyte of JSON for 1,000 callers) would otherwise stay resident after it was sent.
/// Measured on a 1 M journal after four rounds of dashboard reads: 28.7-28.9 MB resident with
/// this, 31.0-31.1 MB without (release builds on mimalloc). Small bodies are only wrapped.
pub fn released_when_dropped(body: Vec<u8>) -> bytes::Bytes {
    /// Owns the body; frees it, then trims the heaps.
    struct Released(Vec<u8>);

    impl AsRef<[u8]> for Released {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl Drop for Released {
        fn drop(&mut self) {
            drop(std::mem::take(&mut self.0));
            release_freed();
        }
    }

    if body.len() < LARGE_ANSWER {
        return body.into();
    }
    bytes::Bytes::from_owner(Released(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_body_is_the_same_bytes_for_as_long_as_any_copy_lives() {
        let large = vec![7u8; LARGE_ANSWER];
        let bytes = released_when_dropped(large.clone());
        let copy = bytes.clone();
        drop(bytes);
        assert_eq!(copy, large, "a clone outlives the first reference");
        assert_eq!(released_when_dropped(b"small".to_vec()), &b"small"[..]);
    }
}
