//! `techshack status`: delivery counts of one issue, or of every issue sent so far.

use std::io::Write;

use anyhow::{Context, Result};

use super::Ctx;
use crate::diag::Exit;
use crate::store::{DeliveryState, Store};

/// Exit 1 for an issue never sent: a monitoring script with a typo in the slug must not read
/// all-zero counts as a finished send.
pub fn run(ctx: &Ctx, args: crate::cli::StatusArgs) -> Result<Exit> {
    let db = &ctx.config.state.db;
    // Looking must not create the state file (nor its folder).
    if !db.exists() {
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
    let store = Store::open(db)?;
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
    for s in DeliveryState::ALL {
        writeln!(out, "{s} {}", c.get(s))?;
    }
    writeln!(out, "total {}", c.total())?;
    if let Some(path) = args.csv {
        let rows = store.not_sent(&issue)?;
        let tmp = path.with_extension("csv.tmp");
        let f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = csv::Writer::from_writer(f);
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
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        ctx.info(format!("wrote {} row(s) to {}", rows.len(), path.display()));
    }
    Ok(Exit::Ok)
}
