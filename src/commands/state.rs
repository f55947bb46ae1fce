//! `techshack state copy --to TARGET`: the configured state into an empty PostgreSQL database
//! or a new SQLite file, checked by counting every table's rows on both sides.

use std::io::Write;

use anyhow::{bail, Context, Result};

use super::send::SendLock;
use super::Ctx;
use crate::cli::StateCommand;
use crate::diag::{self, Exit};
use crate::store::{Location, Store};

pub fn run(ctx: &Ctx, cmd: StateCommand) -> Result<Exit> {
    match cmd {
        StateCommand::Copy { to } => copy(ctx, &to),
    }
}

fn copy(ctx: &Ctx, to: &str) -> Result<Exit> {
    let from = Location::of(&ctx.config.state)?;
    let to = Location::parse(to)?;
    if let Location::File(db) = &from {
        if !db.exists() {
            bail!("no state file at {}: nothing to copy", db.display());
        }
    }
    if let (Location::File(a), Location::File(b)) = (&from, &to) {
        if b.exists() && same_file(a, b)? {
            bail!(
                "{} is the configured state itself: copy into another file or database",
                b.display()
            );
        }
    }
    // A send on a SQLite state holds its send lock: holding it on both sides keeps any send
    // from starting (or running) while the copy reads and writes.
    let mut locks = Vec::new();
    for db in [&from, &to].into_iter().filter_map(|l| match l {
        Location::File(db) => Some(db),
        Location::Postgres(_) => None,
    }) {
        match SendLock::acquire(db)? {
            Some(lock) => locks.push(lock),
            None => return Ok(Exit::Error),
        }
    }
    let source = Store::open_at(&from)?;
    if let Some(n) = live_send(&source)? {
        diag::error(format_args!(
            "a `techshack send` is running on {} ({n} sender(s) with a live lease): its deliveries in flight cannot move; copy once it has finished",
            from.describe()
        ));
        return Ok(Exit::Error);
    }
    let target = Store::open_at(&to)
        .with_context(|| format!("opening the target state {}", to.describe()))?;
    if source.is_same_state(&target)? {
        bail!(
            "{} is the configured state itself: copy into another file or database",
            to.describe()
        );
    }
    for (issue, n) in source.in_flight_rows()? {
        diag::warning(format_args!(
            "{n} row(s) of {issue} are in flight from a send that stopped: they are copied so, and the next `send` on the copy reports them unknown"
        ));
    }
    ctx.info(format!(
        "copying {} into {}",
        from.describe(),
        to.describe()
    ));
    source.copy_into(&target, &mut |table, n| {
        if ctx.verbose {
            eprintln!("copied {table}: {n} row(s)");
        }
    })?;
    ctx.info("send_workers: not copied (a send's lease belongs to the state it runs on)");
    let mut exit = Exit::Ok;
    let out = std::io::stdout();
    let mut out = out.lock();
    for c in source.compare_counts(&target)? {
        let sign = if c.source == c.target { "=" } else { "!=" };
        writeln!(out, "{} {} {sign} {}", c.table, c.source, c.target)?;
        if c.source != c.target {
            exit = Exit::Error;
        }
    }
    out.flush()?;
    if exit != Exit::Ok {
        diag::error(format_args!(
            "the counts differ: {} changed while it was copied (a `serve` or `send` still running on it?); stop them, empty {} and copy again",
            from.describe(),
            to.describe()
        ));
        return Ok(exit);
    }
    if let Some(n) = live_send(&source)? {
        diag::error(format_args!(
            "a `techshack send` started on {} while it was copied ({n} sender(s)): what it delivers is not in {}; once it has finished, empty the copy and copy again",
            from.describe(),
            to.describe()
        ));
        return Ok(Exit::Error);
    }
    drop(locks);
    ctx.info(format!(
        "copied; to use the copy, {}",
        switch_hint(&to, &ctx.config_path)
    ));
    Ok(Exit::Ok)
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// The senders holding a live lease on a PostgreSQL `source`, if any. On SQLite the send lock,
/// held by now, says it: a lease there may outlive a killed send by its length.
fn live_send(source: &Store) -> Result<Option<u64>> {
    if !source.location().is_postgres() {
        return Ok(None);
    }
    Ok(Some(source.live_senders()?).filter(|&n| n > 0))
}

/// How to point the config at the copy.
fn switch_hint(to: &Location, config: &std::path::Path) -> String {
    match to {
        Location::Postgres(_) => format!(
            "set `url = \"{}\"` under [state] in {} (or $TECHSHACK_STATE_URL; a password is best given in $PGPASSWORD)",
            to.describe(),
            config.display()
        ),
        Location::File(db) => format!(
            "set `db = \"{}\"` under [state] in {} and remove `url` there (and $TECHSHACK_STATE_URL)",
            std::fs::canonicalize(db).unwrap_or_else(|_| db.clone()).display(),
            config.display()
        ),
    }
}
