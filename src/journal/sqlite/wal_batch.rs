//! The writer's VFS: SQLite's own ("unix"), except that a write-ahead log gathers the frames
//! of a commit and writes them with one call.
//!
//! SQLite writes each frame of a commit to the log with two calls, its 24-byte header and its
//! page: with the journal's 1 KiB pages, 40 to 60 system calls a commit, the largest part of
//! a commit's cost. Here a log file keeps consecutive writes in a buffer and writes it out
//! once the commit frame's page is in (the frame whose header carries the database size, as
//! the WAL file format defines it). Nothing is reordered:
//! - a write that does not continue the buffer, a read, a sync, a truncation, a size query
//!   or a close writes the buffer out first;
//! - the commit frame is written before `COMMIT` publishes the new frames in the log's index,
//!   so other connections never see a frame that is not in the file, and a failed write
//!   (disk full) fails the commit as it would without the buffer.
//!
//! Other files (the database, its shared-memory index) pass straight through.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the journal with.
pub const NAME: &CStr = c"dfdg-wal-batch";

/// The most a log buffers: the unix VFS writes at most 128 KiB in one call (it masks the
/// length to 17 bits), and a single write of SQLite's is at most a 64 KiB page.
const MAX_BUFFERED: usize = 96 * 1024;
/// The size of a WAL frame header; the WAL file header is 32 bytes.
const FRAME_HEADER: usize = 24;

/// Registers the VFS (once per process) and returns its name; `None` if SQLite has no
/// default VFS to build on, and connections then use the default one.
pub fn register() -> Option<&'static CStr> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives as long as the
        // process; the new VFS is leaked, so it does too, and it is registered once.
        unsafe {
            let real = ffi::sqlite3_vfs_find(ptr::null());
            if real.is_null() {
                return false;
            }
            let mut vfs = *real;
            let Ok(extra) = c_int::try_from(std::mem::size_of::<File>()) else {
                return false;
            };
            vfs.szOsFile = (*real).szOsFile + extra;
            vfs.zName = NAME.as_ptr();
            vfs.pNext = ptr::null_mut();
            vfs.xOpen = Some(open);
            let vfs = Box::into_raw(Box::new(vfs));
            if REAL.set(Real(real)).is_err() {
                return false;
            }
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    });
    registered.then_some(NAME)
}

/// The VFS this one wraps.
struct Real(*mut ffi::sqlite3_vfs);
// SAFETY: a registered VFS is immutable and SQLite calls it from any thread.
unsafe impl Send for Real {}
unsafe impl Sync for Real {}
static REAL: OnceLock<Real> = OnceLock::new();

/// One open file: the header SQLite sees, then the wrapped VFS's own file right after it.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    /// The wrapped VFS's file (it lives in the same allocation, after this struct).
    real: *mut ffi::sqlite3_file,
    /// A log's buffer; null for every other file.
    log: *mut Log,
}

thread_local! {
    /// Writes SQLite asked of logs on this thread, and writes made to their files.
    static WRITES: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// [`WRITES`] so far: (writes SQLite made to logs, writes that reached the files).
#[cfg(test)]
fn writes_on_this_thread() -> (u64, u64) {
    WRITES.get()
}

fn count(asked: u64, made: u64) {
    WRITES.set({
        let (a, m) = WRITES.get();
        (a + asked, m + made)
    });
}

#[derive(Default)]
struct Log {
    /// Where `bytes` go in the file.
    start: i64,
    bytes: Vec<u8>,
    /// The last write was a commit frame's header: its page completes the commit.
    commit_page_next: bool,
}

/// Writes bytes to the file at an offset: the wrapped file's `xWrite`.
type Out<'a> = &'a mut dyn FnMut(i64, &[u8]) -> c_int;

impl Log {
    /// Takes one of SQLite's writes to the log: buffered, and the buffer written out first if
    /// the write does not continue it or would overflow it, and after it if it is the page of
    /// a commit frame.
    fn write(&mut self, offset: i64, bytes: &[u8], out: Out<'_>) -> c_int {
        // Kept across a flush the overflow forces: the page still completes the commit.
        let commit_page = std::mem::take(&mut self.commit_page_next);
        let end = self.start + i64::try_from(self.bytes.len()).unwrap_or(i64::MAX);
        let fits = self.bytes.is_empty()
            || (end == offset && self.bytes.len() + bytes.len() <= MAX_BUFFERED);
        if !fits {
            let rc = self.flush(out);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if self.bytes.is_empty() {
            self.start = offset;
        }
        self.bytes.extend_from_slice(bytes);
        count(1, 0);
        if commit_page {
            return self.flush(out);
        }
        // A frame header whose "database size after commit" is set: a commit frame.
        self.commit_page_next = bytes.len() == FRAME_HEADER && bytes[4..8] != [0; 4];
        ffi::SQLITE_OK
    }

    /// Writes the buffer out; SQLITE_OK when there was none.
    fn flush(&mut self, out: Out<'_>) -> c_int {
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let rc = out(self.start, &self.bytes);
        count(0, 1);
        // Written or failed, the bytes are SQLite's to write again: a failed commit is rolled
        // back and its frames are written anew by the next one.
        self.bytes.clear();
        rc
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(Real(real)) = REAL.get() else {
        return ffi::SQLITE_ERROR;
    };
    let ours = file.cast::<File>();
    // SAFETY: SQLite gives `szOsFile` bytes, aligned for any file: ours, then the real one.
    let inner = file
        .cast::<u8>()
        .add(std::mem::size_of::<File>())
        .cast::<ffi::sqlite3_file>();
    (*inner).pMethods = ptr::null();
    let Some(real_open) = (**real).xOpen else {
        return ffi::SQLITE_ERROR;
    };
    let rc = real_open(*real, name, inner, flags, out_flags);
    (*ours).real = inner;
    (*ours).log = ptr::null_mut();
    if (*inner).pMethods.is_null() {
        // Nothing to close.
        (*ours).base.pMethods = ptr::null();
        return rc;
    }
    if rc == ffi::SQLITE_OK && flags & ffi::SQLITE_OPEN_WAL != 0 {
        (*ours).log = Box::into_raw(Box::default());
    }
    (*ours).base.pMethods = &METHODS;
    rc
}

/// The wrapped file and its methods.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let inner = (*file.cast::<File>()).real;
    (inner, &*(*inner).pMethods)
}

/// The wrapped file's `xWrite`, as a [`Log`] writes out.
unsafe fn real_write(file: *mut ffi::sqlite3_file, offset: i64, bytes: &[u8]) -> c_int {
    let (inner, methods) = real(file);
    match (methods.xWrite, c_int::try_from(bytes.len())) {
        (Some(write), Ok(length)) => write(inner, bytes.as_ptr().cast(), length, offset),
        _ => ffi::SQLITE_IOERR_WRITE,
    }
}

/// Writes a log's buffer out; SQLITE_OK for any other file, or a log with nothing buffered.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let log = (*file.cast::<File>()).log;
    if log.is_null() {
        return ffi::SQLITE_OK;
    }
    (*log).flush(&mut |offset, bytes| real_write(file, offset, bytes))
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(length) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), length);
    let log = (*file.cast::<File>()).log;
    if log.is_null() {
        return real_write(file, offset, bytes);
    }
    (*log).write(offset, bytes, &mut |offset, bytes| {
        real_write(file, offset, bytes)
    })
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let ours = file.cast::<File>();
    if !(*ours).log.is_null() {
        drop(Box::from_raw((*ours).log));
        (*ours).log = ptr::null_mut();
    }
    let (inner, methods) = real(file);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// The methods that pass through to the wrapped file; `flushed` ones write a log's buffer out
/// first (what they read, size, sync or cut must come after what SQLite wrote).
macro_rules! pass {
    (flushed $name:ident, $field:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let (inner, methods) = real(file);
            match methods.$field {
                Some(method) => method(inner $(, $arg)*),
                None => $missing,
            }
        }
    };
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty, $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            let (inner, methods) = real(file);
            match methods.$field {
                Some(method) => method(inner $(, $arg)*),
                None => $missing,
            }
        }
    };
}

pass!(flushed read, xRead, (data: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64), ffi::SQLITE_IOERR_READ);
pass!(flushed truncate, xTruncate, (size: ffi::sqlite3_int64), ffi::SQLITE_IOERR_TRUNCATE);
pass!(flushed sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
pass!(flushed file_size, xFileSize, (size: *mut ffi::sqlite3_int64), ffi::SQLITE_IOERR_FSTAT);
// A size hint may extend the file: after what is buffered.
pass!(flushed file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);

pass!(lock, xLock, (level: c_int) -> c_int, ffi::SQLITE_IOERR_LOCK);
pass!(unlock, xUnlock, (level: c_int) -> c_int, ffi::SQLITE_IOERR_UNLOCK);
pass!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int) -> c_int, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK);
pass!(sector_size, xSectorSize, () -> c_int, 4096);
pass!(device_characteristics, xDeviceCharacteristics, () -> c_int, 0);
pass!(shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int, ffi::SQLITE_IOERR_SHMMAP);
pass!(shm_lock, xShmLock, (offset: c_int, n: c_int, flags: c_int) -> c_int, ffi::SQLITE_IOERR_SHMLOCK);
pass!(shm_unmap, xShmUnmap, (delete: c_int) -> c_int, ffi::SQLITE_OK);
pass!(fetch, xFetch, (offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void) -> c_int, {
    *out = ptr::null_mut();
    ffi::SQLITE_OK
});
pass!(unfetch, xUnfetch, (offset: ffi::sqlite3_int64, page: *mut c_void) -> c_int, ffi::SQLITE_OK);

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (inner, methods) = real(file);
    if let Some(barrier) = methods.xShmBarrier {
        barrier(inner);
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    fn rows(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    fn insert(connection: &mut Connection, from: i64, count: i64) {
        let transaction = connection.transaction().unwrap();
        for id in from..from + count {
            let data: Vec<u8> = (0..300).map(|i| ((id * 31 + i) % 251) as u8).collect();
            transaction
                .execute("INSERT INTO t (id, data) VALUES (?1, ?2)", (id, data))
                .unwrap();
        }
        transaction.commit().unwrap();
    }

    /// SQLite's writes of a log from its start: the WAL header, then `frames` frames (header
    /// and 1 KiB page each), the last a commit frame. Returns what reached the file.
    fn commit_of(frames: usize) -> (Vec<u8>, Log) {
        let mut file = Vec::new();
        let mut out = |offset: i64, bytes: &[u8]| {
            let offset = usize::try_from(offset).unwrap();
            file.resize(file.len().max(offset + bytes.len()), 0);
            file[offset..offset + bytes.len()].copy_from_slice(bytes);
            ffi::SQLITE_OK
        };
        let mut log = Log::default();
        assert_eq!(log.write(0, &[0x37; 32], &mut out), ffi::SQLITE_OK);
        let mut offset = 32;
        for frame in 1..=frames {
            let mut header = [0_u8; FRAME_HEADER];
            if frame == frames {
                header[4..8].copy_from_slice(&7_u32.to_be_bytes());
            }
            let page = [frame as u8; 1024];
            assert_eq!(log.write(offset, &header, &mut out), ffi::SQLITE_OK);
            assert_eq!(log.write(offset + 24, &page, &mut out), ffi::SQLITE_OK);
            offset += 1048;
        }
        (file, log)
    }

    #[test]
    fn every_commit_is_in_the_file_when_its_last_page_is_written_wherever_the_buffer_fills() {
        // Past three buffers' worth, so that the commit frame falls on each place in one,
        // the buffer's limit among them.
        for frames in 1..=300 {
            let (file, log) = commit_of(frames);
            assert!(
                log.bytes.is_empty(),
                "{frames} frames: {} bytes left unwritten after the commit",
                log.bytes.len()
            );
            assert_eq!(file.len(), 32 + frames * 1048, "{frames} frames");
            let last = 32 + (frames - 1) * 1048;
            assert_eq!(
                file[last + 4..last + 8],
                7_u32.to_be_bytes(),
                "{frames} frames"
            );
            assert!(
                file[last + 24..].iter().all(|&b| b == frames as u8),
                "{frames} frames"
            );
        }
    }

    #[test]
    fn a_commits_frames_reach_the_log_in_one_write_and_other_connections_see_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let vfs = register().expect("the default VFS is there to wrap");
        let mut writer =
            Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), vfs).unwrap();
        writer.pragma_update(None, "page_size", 1024).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "synchronous", "NORMAL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB); CREATE INDEX t_data ON t (data);")
            .unwrap();
        // Another connection, through SQLite's own VFS, as the journal's readers are.
        let reader = Connection::open(&path).unwrap();

        for round in 0..5 {
            let (asked, made) = writes_on_this_thread();
            insert(&mut writer, round * 20, 20);
            let (asked, made) = (
                writes_on_this_thread().0 - asked,
                writes_on_this_thread().1 - made,
            );
            assert_eq!(
                made, 1,
                "round {round}: {asked} writes of SQLite's reached the log in {made}"
            );
            assert!(
                asked >= 20,
                "round {round}: a commit of 20 rows and an index is many frames ({asked} writes)"
            );
            assert_eq!(
                rows(&reader),
                (round + 1) * 20,
                "round {round}: committed rows are visible"
            );
        }

        // A commit larger than the buffer: written in parts, in order, and whole.
        let (_, made) = writes_on_this_thread();
        insert(&mut writer, 1000, 1000);
        let parts = writes_on_this_thread().1 - made;
        assert!(parts > 1, "600 KB of frames in {parts} write(s)");
        assert_eq!(rows(&reader), 1100);

        // The log as written is a sound one: checkpointed into the database and checked.
        drop(writer);
        let checked: String = reader
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(checked, "ok");
        assert_eq!(rows(&reader), 1100);
    }
}
