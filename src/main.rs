//! The `dfdg-mock` binary: parse the command line, set up logging, run, and print the whole
//! error chain with a non-zero exit code on failure.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dfdg_mock::cli::Cli::parse();
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
