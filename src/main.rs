use std::process::ExitCode;

use clap::Parser;
use techshack::cli::Cli;
use techshack::diag::{self, Exit};

fn main() -> ExitCode {
    diag::install_panic_hook();
    let cli = Cli::parse();
    match techshack::commands::run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            diag::report(&e);
            Exit::Error.into()
        }
    }
}
