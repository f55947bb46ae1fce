//! `techshack serve`.

use anyhow::{Context, Result};

use super::Ctx;
use crate::diag::Exit;

pub fn run(ctx: &Ctx, args: crate::cli::ServeArgs) -> Result<Exit> {
    init_logging(ctx);
    let listen = args
        .listen
        .unwrap_or_else(|| ctx.config.serve.listen.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let app = crate::serve::App::new(&ctx.config, &ctx.secrets)?;
        // Confirmation mails queued by this or an earlier run go out in the background.
        tokio::spawn(crate::serve::outbox::run(app.clone()));
        let limits = crate::serve::Limits::from_config(&ctx.config);
        crate::serve::run(app, &listen, limits, !ctx.quiet).await
    })?;
    Ok(Exit::Ok)
}

/// Log lines on stderr: warnings and errors with `--quiet`, every request with `--verbose`,
/// else what an operator needs; `$RUST_LOG` overrides.
fn init_logging(ctx: &Ctx) {
    let level = if ctx.quiet {
        "warn"
    } else if ctx.verbose {
        "debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("techshack={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
