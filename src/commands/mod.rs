//! One file per command; `run` dispatches.

use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::diag::Exit;
use crate::secrets::{Clock, Secrets};

pub mod build;
pub mod check;
pub mod inbound;
pub mod man;
pub mod new;
pub mod output;
pub mod preview;
pub mod send;
pub mod serve;
pub mod state;
pub mod status;
pub mod subscribers;
pub mod subscribers_csv;

/// What every command gets: the loaded config, the secrets and clock of the environment,
/// and the global flags.
pub struct Ctx {
    pub config: Config,
    pub config_path: PathBuf,
    pub secrets: Secrets,
    pub clock: Clock,
    pub quiet: bool,
    pub verbose: bool,
}

impl Ctx {
    fn load(cli: &Cli) -> Result<Ctx> {
        let config_path = Config::locate(cli.config.as_deref());
        let mut config = Config::load(&config_path)?;
        if let Some(dir) = &cli.issues {
            config.issues.dir = dir.clone();
        }
        Ok(Ctx {
            config,
            config_path,
            secrets: match &cli.secrets {
                Some(file) => Secrets::from_file(file)?,
                None => Secrets::from_env(),
            },
            clock: Clock::from_env(),
            quiet: cli.quiet,
            verbose: cli.verbose,
        })
    }

    /// Prints a line of progress unless `--quiet`.
    pub fn info(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

/// Runs the command; returns the process exit status.
pub fn run(cli: Cli) -> Result<Exit> {
    // Commands that need no configuration.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "techshack", &mut std::io::stdout());
            return Ok(Exit::Ok);
        }
        Command::Man => {
            let mut out = std::io::stdout().lock();
            man::render(&mut out)?;
            std::io::Write::flush(&mut out)?;
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    let ctx = Ctx::load(&cli)?;
    match cli.command {
        Command::Build(a) => build::run(&ctx, a),
        Command::Check => check::run(&ctx),
        Command::New(a) => new::run(&ctx, a),
        Command::Preview(a) => preview::run(&ctx, a),
        Command::Send(a) => send::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Subscribers(a) => subscribers::run(&ctx, a),
        Command::State(a) => state::run(&ctx, a),
        Command::Serve(a) => serve::run(&ctx, a),
        Command::Inbound(a) => inbound::run(&ctx, a),
        Command::Completions { .. } | Command::Man => unreachable!("handled above"),
    }
}
