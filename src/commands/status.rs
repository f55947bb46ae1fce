//! `techshack status`: delivery counts of one issue, or of every issue sent so far.

use std::io::Write;

use anyhow::{Context, Result};

use super::Ctx;
use crate::mail::ledger::{self, DeliveryState};
use crate::store::Store;

pub fn run(ctx: &Ctx, args: crate::cli::StatusArgs) -> Result<u8> {
    let store = Store::open(&ctx.config.state.db)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let Some(issue) = args.issue else {
        for (issue, c) in ledger::all_counts(store.conn())? {
            let parts: Vec<String> = DeliveryState::ALL
                .iter()
                .map(|s| format!("{s} {}", c.get(*s)))
                .collect();
            writeln!(out, "{issue} {} total {}", parts.join(" "), c.total())?;
        }
        return Ok(0);
    };
    let c = ledger::counts(store.conn(), &issue)?;
    for s in DeliveryState::ALL {
        writeln!(out, "{s} {}", c.get(s))?;
    }
    writeln!(out, "total {}", c.total())?;
    if let Some(path) = args.csv {
        let rows = ledger::not_sent(store.conn(), &issue)?;
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
    Ok(0)
}
