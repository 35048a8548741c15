//! The `dfdg-mock` binary: parse the command line, set up logging, run, and print the whole
//! error chain with a non-zero exit code on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    dfdg_mock::memory::configure();
    fixed_malloc_thresholds();
    // Not clap's own parse: a bad value from a DFDG_MOCK_* variable is blamed on the variable.
    let cli = dfdg_mock::cli::parse();
    dfdg_mock::logging::init(cli.log_format);
    match dfdg_mock::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold (and with it the trim threshold, to twice as much) each time
/// a large block is freed, up to 32 MiB: after start-up freed its big buffers, freed memory stays
/// in the heaps instead of going back to the system. Fixed at glibc's initial 128 KiB, large
/// blocks are mapped on their own and a heap's free top goes back once it passes 128 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fixed_malloc_thresholds() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets glibc's tunables; called first thing, before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fixed_malloc_thresholds() {}
