//! `techshack subscribers`: import (and restore), add, remove, reactivate, bounce, erase,
//! list, export.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::subscribers_csv;
use super::Ctx;
use crate::cli::SubscribersCommand;
use crate::diag::{Diagnostic, Exit};
use crate::store::{AddOutcome, Address, ChangePath, Store, SubscriberStatus};

pub fn run(ctx: &Ctx, cmd: SubscribersCommand) -> Result<Exit> {
    let mut store = Store::open_config(&ctx.config.state)?;
    store.set_keys(ctx.secrets.verification_keys());
    match cmd {
        SubscribersCommand::Import {
            file,
            skip_invalid,
            restore,
        } => import(ctx, &mut store, &file, skip_invalid, restore),
        SubscribersCommand::Add { address, name } => {
            let a = Address::parse(&address)?;
            match store.add_active(&a, name.as_deref())? {
                AddOutcome::Added => ctx.info(format!("added {a}")),
                AddOutcome::Updated => ctx.info(format!("{a} was already subscribed; now active")),
                AddOutcome::KeptFinal(s) => ctx.info(format!(
                    "{a} is {s} and stays so: an address that unsubscribed, bounced or complained is never re-added (`subscribers reactivate` if the subscriber asked)"
                )),
                AddOutcome::Erased => anyhow::bail!(
                    "{a} was erased at its owner's request: it can only come back by signing up again (double opt-in through `serve`)"
                ),
            }
            Ok(Exit::Ok)
        }
        SubscribersCommand::Remove { address, reason } => {
            let a = Address::parse(&address)?;
            change(
                ctx,
                &mut store,
                &a,
                SubscriberStatus::Unsubscribed,
                reason.as_deref(),
            )
        }
        SubscribersCommand::Bounce { address, reason } => {
            let a = Address::parse(&address)?;
            change(
                ctx,
                &mut store,
                &a,
                SubscriberStatus::Bounced,
                reason.as_deref(),
            )
        }
        SubscribersCommand::Reactivate {
            address,
            reason,
            force,
        } => reactivate(ctx, &mut store, &address, reason.as_deref(), force),
        SubscribersCommand::Erase { address } => {
            let a = Address::parse(&address)?;
            let e = store.erase(&a)?;
            ctx.info(format!(
                "erased {a}: {}, {} status change(s), {} delivery row(s) removed; a keyed hash keeps it from being imported or added again",
                if e.subscriber { "its subscriber row" } else { "no subscriber row (it was not on the list)" },
                e.events,
                e.deliveries
            ));
            Ok(Exit::Ok)
        }
        SubscribersCommand::List { status } => list(ctx, &store, status),
        SubscribersCommand::Export => {
            subscribers_csv::export(&store, std::io::stdout().lock())?;
            Ok(Exit::Ok)
        }
    }
}

/// The operator's `remove` and `bounce`.
fn change(
    ctx: &Ctx,
    store: &mut Store,
    a: &Address,
    to: SubscriberStatus,
    reason: Option<&str>,
) -> Result<Exit> {
    match store.change_status(a, to, ChangePath::Operator, reason)? {
        None => anyhow::bail!("{a} is not on the subscriber list"),
        Some(from) if from == to => ctx.info(format!("{a} was {to} already")),
        Some(from) => ctx.info(format!("{a} is {to} (was {from})")),
    }
    Ok(Exit::Ok)
}

fn reactivate(
    ctx: &Ctx,
    store: &mut Store,
    address: &str,
    reason: Option<&str>,
    force: bool,
) -> Result<Exit> {
    let a = Address::parse(address)?;
    let Some(s) = store.subscriber(&a)? else {
        anyhow::bail!("{a} is not on the subscriber list");
    };
    match s.status {
        SubscriberStatus::Active => {
            ctx.info(format!("{a} is active already"));
            return Ok(Exit::Ok);
        }
        SubscriberStatus::Pending => anyhow::bail!(
            "{a} has not confirmed its sign-up: it becomes active through its confirmation link, or `subscribers add` if it asked you directly"
        ),
        SubscriberStatus::Complained if !force => anyhow::bail!(
            "{a} reported an issue as spam: mailing it again risks the sender's reputation; pass --force (with --reason) if the subscriber asked to come back"
        ),
        _ => {}
    }
    let reason = reason.map_or_else(|| "reactivated by the operator".to_string(), str::to_string);
    store.change_status(
        &a,
        SubscriberStatus::Active,
        ChangePath::Operator,
        Some(&reason),
    )?;
    ctx.info(format!("{a} is active again (was {})", s.status));
    Ok(Exit::Ok)
}

fn list(ctx: &Ctx, store: &Store, status: Option<SubscriberStatus>) -> Result<Exit> {
    let out = std::io::stdout();
    let mut out = out.lock();
    let histories = if ctx.verbose {
        store.all_histories()?
    } else {
        Default::default()
    };
    for s in store.subscribers(status)? {
        writeln!(
            out,
            "{}\t{}\t{}",
            s.address.as_str(),
            s.status,
            s.name.unwrap_or_default()
        )?;
        for e in histories.get(s.address.as_str()).into_iter().flatten() {
            let from = e.from.map_or("(new)", |f| f.as_str());
            write!(out, "\t{}\t{from} -> {}\tby {}", e.at, e.to, e.path)?;
            if let Some(r) = &e.reason {
                write!(out, "\t{r}")?;
            }
            writeln!(out)?;
        }
    }
    Ok(Exit::Ok)
}

fn import(
    ctx: &Ctx,
    store: &mut Store,
    file: &Path,
    skip_invalid: bool,
    restore: bool,
) -> Result<Exit> {
    let shown = file.display().to_string();
    let bytes = std::fs::read(file).with_context(|| format!("reading {shown}"))?;
    let parsed = subscribers_csv::read(file, &bytes, restore)?;
    let bad = parsed.problems.len();
    for (line, m) in &parsed.problems {
        let pos = Some((*line, 1));
        let d = if skip_invalid {
            Diagnostic::warning(file, pos, format!("{m} (skipped)"))
        } else {
            Diagnostic::error(file, pos, m.clone())
        };
        eprintln!("{d}");
    }
    if bad > 0 && !skip_invalid {
        let hint = if restore {
            "fix them and restore again"
        } else {
            "fix them or pass --skip-invalid to import the valid rows"
        };
        anyhow::bail!("{bad} invalid row(s) in {shown}: nothing imported; {hint}");
    }
    if restore {
        store.restore(&parsed.restore, &parsed.erased)?;
        ctx.info(format!(
            "restored {shown}: {} subscriber(s), {} erased address(es)",
            parsed.restore.len(),
            parsed.erased.len()
        ));
        return Ok(Exit::Ok);
    }
    let r = store.import_rows(&parsed.rows, &parsed.erased)?;
    for line in &r.erased {
        eprintln!(
            "{}",
            Diagnostic::warning(
                file,
                Some((*line, 1)),
                "this address was erased at its owner's request: not imported (it can come back only by signing up again)",
            )
        );
    }
    ctx.info(format!(
        "imported {shown}: {} added, {} updated, {} kept unsubscribed or bounced, {} newly suppressed, {} duplicate(s) merged, {} erased refused, {} invalid skipped",
        r.added,
        r.updated,
        r.kept_final,
        r.suppressed,
        r.merged,
        r.erased.len(),
        bad
    ));
    Ok(Exit::Ok)
}
