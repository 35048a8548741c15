//! The process's heap: handing memory that was used and freed back to the system.

/// Returns the free pages of every malloc arena to the system. glibc gives back on its own only
/// what is free at the top of a heap; a large piece of work that allocated and freed between
/// blocks still in use (start-up's compile buffers, a big answer built on one of tokio's
/// blocking threads, each with its own arena) would otherwise stay resident for good.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed() {
    // SAFETY: malloc_trim only returns free pages of the heaps; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory by their own rules.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed() {}
