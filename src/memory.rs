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

/// An answer at least this large gives its memory back to the system when it is dropped (see
/// [`released_when_dropped`]).
const LARGE_ANSWER: usize = 64 << 10;

/// `body` as [`Bytes`] that, once the last reference to it is gone (the answer was written),
/// returns what was freed to the system: a large answer (a dashboard page of calls is about a
/// megabyte of JSON) is built on one of tokio's blocking threads, each with its own malloc
/// arena, and would otherwise stay resident there after it was sent. Small bodies are only
/// wrapped.
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
