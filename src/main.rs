use std::process::ExitCode;

use clap::Parser;
use techshack::cli::Cli;
use techshack::diag::Diagnostics;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match techshack::commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(d) = e.downcast_ref::<Diagnostics>() {
                eprintln!("{d}");
                let n = d.errors();
                eprintln!("error: {n} error{} found", if n == 1 { "" } else { "s" });
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}
