//! The `dfdg-mock` binary: parse the command line, set up logging, run, and print the whole
//! error chain with a non-zero exit code on failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    dfdg_mock::memory::configure();
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
