//! The process's memory: the allocator, handing memory that was used and freed back to the
//! system, and buffers that go back to it as soon as they are dropped.
//!
//! Rust's allocations go to mimalloc: on the bench endpoint it took 17-28 % less CPU per
//! request than glibc's malloc in two runs (whose arenas, locks and consolidation were 15 % of a
//! profile). Built without its transparent-huge-page advice (`no_thp`), so that a touched byte
//! costs a 4 KiB page, not 2 MiB (with it, RSS under load doubled). SQLite, in C, still allocates
//! with glibc's malloc.

use std::alloc::{handle_alloc_error, GlobalAlloc, Layout, System};
use std::ptr::NonNull;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: the 16th option of mimalloc v3's `mi_option_e` (`mimalloc.h`), which
/// the Rust binding does not name.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
// The v3 layout of the options, as PURGE_DELAY assumes: an update of the binding that changes it
// fails the build here.
const _: () = assert!(libmimalloc_sys::_mi_option_last == 47);

/// Sets both allocators' options: the server calls it first thing in `main`, before any thread
/// starts. mimalloc's pages left free go back to the system after 1 ms rather than 10 ms
/// (peak RSS under the bench's keep-alive load 25.7 -> 25.0 MiB in one run at 0 ms). Not at
/// once: with a delay of 0, about one run in ten of keep-alive c=32 fell into a state where a
/// page emptied and was given back (madvise, then page faults to use it again) about every
/// other request — 46,000–49,000 madvise calls in 6 s against 300–600, 22 % less throughput
/// and 45 % more CPU per request for the whole run; at 1 ms, none in 16 runs, for about 1 MB
/// more peak RSS on a full journal read by the dashboard. glibc's thresholds are fixed
/// ([`fix_glibc_thresholds`]).
pub fn configure() {
    // SAFETY: sets one of mimalloc's runtime options (not thread-safe: `main` calls this before any
    // thread starts); it takes effect at the next purge.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 1) };
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

/// Lets go of the executable's code that start-up ran (command line, configuration, the
/// catalog's and the scenarios' compilers): the kernel maps code 64 KiB around each page touched,
/// and what start-up touched would otherwise stay resident for the server's life. Only the
/// executable's read-and-execute mappings, whose pages are never written (no text relocations),
/// so each is still the file's page: the code that runs next faults back in from the page cache.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_startup_code() {
    let (Ok(exe), Ok(maps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/maps"),
    ) else {
        return;
    };
    let Some(exe) = exe.to_str() else { return };
    for line in maps.lines() {
        // start-end perms offset device inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some("r-xp")) = (fields.next(), fields.next()) else {
            continue;
        };
        if !line.ends_with(exe) {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of the executable's code, read-only and private:
        // dropping its pages loses nothing, as each is the file's and comes back on its next use.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_startup_code() {}

/// The size of a [`Piece`]: glibc's mmap threshold as [`configure`] fixes it, so that glibc maps
/// each piece on its own.
pub const PIECE: usize = 128 * 1024;

const PIECE_LAYOUT: Layout = match Layout::from_size_align(PIECE, 1) {
    Ok(layout) => layout,
    Err(_) => panic!("PIECE is a valid size"),
};

/// A buffer of [`PIECE`] bytes in memory of its own, which goes back to the system the moment
/// the piece is dropped, on whichever thread: the pieces of a large answer are made on a reading
/// thread and freed by the server's threads as they are written, where a mimalloc block freed
/// by another thread than its own stays resident until its thread allocates or collects again
/// (a megabyte after each `/api/suppliers` of 1,000 callers, until the next read).
pub struct Piece {
    start: NonNull<u8>,
    len: usize,
}

// SAFETY: a piece owns its buffer alone, as a `Box<[u8]>` does.
unsafe impl Send for Piece {}
// SAFETY: shared, a piece only gives out `&[u8]` of its written part.
unsafe impl Sync for Piece {}

impl Piece {
    pub fn new() -> Piece {
        // SAFETY: the layout's size is not zero.
        let start = unsafe { System.alloc(PIECE_LAYOUT) };
        let start = NonNull::new(start).unwrap_or_else(|| handle_alloc_error(PIECE_LAYOUT));
        Piece { start, len: 0 }
    }

    /// Appends as much of `bytes` as there is room for; returns how much that was.
    pub fn fill(&mut self, bytes: &[u8]) -> usize {
        let take = (PIECE - self.len).min(bytes.len());
        // SAFETY: the piece owns PIECE bytes from `start` and `len + take <= PIECE`; `bytes`
        // is another allocation (`&mut self` excludes this one).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.start.as_ptr().add(self.len), take);
        }
        self.len += take;
        take
    }

    pub fn is_full(&self) -> bool {
        self.len == PIECE
    }
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piece").field("len", &self.len).finish()
    }
}

impl Default for Piece {
    fn default() -> Piece {
        Piece::new()
    }
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes from `start` were written by `fill`.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        // SAFETY: `start` came from `System.alloc` with this layout, and is freed once.
        unsafe { System.dealloc(self.start.as_ptr(), PIECE_LAYOUT) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_holds_what_was_written_up_to_its_size() {
        let mut piece = Piece::new();
        assert_eq!(piece.fill(b"abc"), 3);
        assert_eq!(piece.as_ref(), b"abc");
        let rest = vec![7u8; PIECE];
        assert_eq!(piece.fill(&rest), PIECE - 3);
        assert!(piece.is_full());
        assert_eq!(piece.fill(b"more"), 0);
        assert_eq!(&piece.as_ref()[..3], b"abc");
        assert!(piece.as_ref()[3..].iter().all(|&b| b == 7));
        let bytes = bytes::Bytes::from_owner(piece);
        assert_eq!(bytes.len(), PIECE);
    }
}
