//! `techshack status`: delivery counts of one issue, or of every issue sent so far.

use std::io::Write;

use anyhow::{Context, Result};

use super::Ctx;
use crate::diag::Exit;
use crate::store::{DeliveryState, Location, Store};

/// Exit 1 for an issue never sent: a monitoring script with a typo in the slug must not read
/// all-zero counts as a finished send.
pub fn run(ctx: &Ctx, args: crate::cli::StatusArgs) -> Result<Exit> {
    let location = Location::of(&ctx.config.state)?;
    // Looking must not create the state file (nor its folder).
    if let Some(db) = location.missing_file() {
        return Ok(match &args.issue {
            Some(issue) => {
                eprintln!(
                    "no send recorded for {issue}: nothing sent yet (no state file at {})",
                    db.display()
                );
                Exit::Error
            }
            None => {
                ctx.info(format!(
                    "nothing sent yet (no state file at {})",
                    db.display()
                ));
                Exit::Ok
            }
        });
    }
    let store = Store::open_at(&location)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let Some(issue) = args.issue else {
        let all = store.all_counts()?;
        if all.is_empty() {
            ctx.info("nothing sent yet");
        }
        for (issue, c) in all {
            let parts: Vec<String> = DeliveryState::ALL
                .iter()
                .map(|s| format!("{s} {}", c.get(*s)))
                .collect();
            writeln!(out, "{issue} {} total {}", parts.join(" "), c.total())?;
        }
        return Ok(Exit::Ok);
    };
    if !store.has_snapshot(&issue)? {
        eprintln!("no send recorded for {issue}: `techshack status` lists every issue sent so far");
        return Ok(Exit::Error);
    }
    let c = store.counts(&issue)?;
    // `--csv -`: stdout is the CSV alone, so the counts go to stderr.
    let csv_on_stdout = args.csv.as_deref().is_some_and(super::output::is_stdout);
    let mut err;
    let out: &mut dyn Write = if csv_on_stdout {
        err = std::io::stderr().lock();
        &mut err
    } else {
        &mut out
    };
    for s in DeliveryState::ALL {
        writeln!(out, "{s} {}", c.get(s))?;
    }
    writeln!(out, "total {}", c.total())?;
    // What came back by mail after a row was sent (`techshack inbound`).
    let later = store.later_reports(&issue)?;
    for what in ["bounced", "delayed", "complained"] {
        let prefix = format!("{what} later: ");
        let n = later.iter().filter(|r| r.2.starts_with(&prefix)).count();
        if n > 0 {
            writeln!(out, "{what}_later {n}")?;
        }
    }
    out.flush()?;
    if let Some(path) = args.csv {
        let rows = store.not_sent(&issue)?;
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["address", "state", "attempts", "last_reply", "updated_at"])?;
        for r in &rows {
            w.write_record([
                r.address.as_str(),
                r.state.as_str(),
                &r.attempts.to_string(),
                r.last_reply.as_deref().unwrap_or(""),
                r.updated_at.as_str(),
            ])?;
        }
        for (address, attempts, note, updated_at) in &later {
            w.write_record([
                address.as_str(),
                "sent",
                &attempts.to_string(),
                note.as_str(),
                updated_at.as_str(),
            ])?;
        }
        let bytes = w.into_inner().context("writing the CSV")?;
        super::output::write(&path, &bytes)?;
        if !super::output::is_stdout(&path) {
            ctx.info(format!(
                "wrote {} row(s) to {}",
                rows.len() + later.len(),
                path.display()
            ));
        }
    }
    Ok(Exit::Ok)
}
