//! `techshack subscribers`: import, add, remove, list, export.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::Ctx;
use crate::cli::SubscribersCommand;
use crate::diag::{Diagnostic, Exit};
use crate::store::{AddOutcome, Address, Store, Subscriber};

pub fn run(ctx: &Ctx, cmd: SubscribersCommand) -> Result<Exit> {
    let mut store = Store::open(&ctx.config.state.db)?;
    match cmd {
        SubscribersCommand::Import { file, skip_invalid } => {
            import(ctx, &mut store, &file, skip_invalid)
        }
        SubscribersCommand::Add { address, name } => {
            let a = Address::parse(&address)?;
            match store.add_active(&a, name.as_deref())? {
                AddOutcome::Added => ctx.info(format!("added {a}")),
                AddOutcome::Updated => ctx.info(format!("{a} was already subscribed; now active")),
                AddOutcome::KeptFinal(s) => ctx.info(format!(
                    "{a} is {s} and stays so: an address that unsubscribed or bounced is never re-added"
                )),
            }
            Ok(Exit::Ok)
        }
        SubscribersCommand::Remove { address } => {
            let a = Address::parse(&address)?;
            if store.unsubscribe(&a)? {
                ctx.info(format!("{a} is unsubscribed"));
                Ok(Exit::Ok)
            } else {
                anyhow::bail!("{a} is not on the subscriber list")
            }
        }
        SubscribersCommand::List { status } => {
            let out = std::io::stdout();
            let mut out = out.lock();
            for s in store.subscribers(status)? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    s.address.as_str(),
                    s.status,
                    s.name.unwrap_or_default()
                )?;
            }
            Ok(Exit::Ok)
        }
        SubscribersCommand::Export => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["email", "name", "status", "added_at"])?;
            for Subscriber {
                address,
                name,
                status,
                added_at,
            } in store.subscribers(None)?
            {
                w.write_record([
                    address.as_str(),
                    name.as_deref().unwrap_or(""),
                    status.as_str(),
                    added_at.as_str(),
                ])?;
            }
            w.flush()?;
            Ok(Exit::Ok)
        }
    }
}

fn import(ctx: &Ctx, store: &mut Store, file: &Path, skip_invalid: bool) -> Result<Exit> {
    let shown = file.display().to_string();
    // Each problem names the file as given and its line, as `check` does for issues.
    let at = |pos, message: String| Diagnostic::error(file, pos, message);
    let bytes = std::fs::read(file).with_context(|| format!("reading {shown}"))?;
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let headers = rdr
        .headers()
        .with_context(|| at(Some((1, 1)), "cannot read the header row".into()))?
        .clone();
    let col = |want: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(want))
    };
    let Some(email) = col("email") else {
        let found = headers.iter().collect::<Vec<_>>().join(", ");
        anyhow::bail!(at(
            Some((1, 1)),
            format!("no `email` column in the header row (found: {found}); the first row must name the columns, e.g. `email,name`"),
        ));
    };
    let name = col("name");
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| line_of(&bytes, p.byte())).unwrap_or(0);
                errors.push(at(Some((line, 1)), e.to_string()));
                continue;
            }
        };
        let line = rec
            .position()
            .map(|p| line_of(&bytes, p.byte()))
            .unwrap_or(0);
        if rec.iter().all(|f| f.is_empty()) {
            continue;
        }
        let raw = rec.get(email).unwrap_or("");
        match Address::parse(raw) {
            Ok(a) => rows.push((a, name.and_then(|n| rec.get(n)).map(str::to_string))),
            Err(e) => errors.push(at(Some((line, 1)), e.to_string())),
        }
    }
    for e in &errors {
        eprintln!("{e}");
    }
    if !errors.is_empty() && !skip_invalid {
        anyhow::bail!(
            "{} invalid row(s) in {shown}: nothing imported; fix them or pass --skip-invalid to import the valid rows",
            errors.len()
        );
    }
    let r = store.import(&rows)?;
    ctx.info(format!(
        "imported {shown}: {} added, {} updated, {} kept unsubscribed or bounced, {} duplicate(s) merged, {} invalid skipped",
        r.added,
        r.updated,
        r.kept_final,
        r.merged,
        errors.len()
    ));
    Ok(Exit::Ok)
}

/// The 1-based line of a byte offset, counting LF (so CRLF and LF files agree).
fn line_of(bytes: &[u8], offset: u64) -> usize {
    let mut end = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    // After a CRLF the reader may report the record as starting at the LF.
    while end < bytes.len() && matches!(bytes[end], b'\r' | b'\n') {
        end += 1;
    }
    bytes[..end].iter().filter(|b| **b == b'\n').count() + 1
}
