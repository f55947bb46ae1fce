//! `techshack check`: parse every issue, drafts too, and report every problem.

use anyhow::Result;

use super::Ctx;
use crate::issue;

/// Prints every diagnostic and a summary line to stderr; exit 1 on any error.
pub fn run(ctx: &Ctx) -> Result<u8> {
    let files = issue::issue_files(&ctx.config.issues.dir)?.len();
    let loaded = issue::load_all(&ctx.config)?;
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    for d in &loaded.diagnostics {
        if ctx.quiet && !d.is_error() {
            continue;
        }
        eprintln!("{d}");
    }
    if ctx.verbose {
        for i in &loaded.issues {
            let state = if i.draft { " (draft)" } else { "" };
            eprintln!(
                "{}: {} {}, {} item(s){state}",
                i.path.display(),
                i.date.format("%Y-%m-%d %H:%M %:z"),
                i.title,
                i.items.len()
            );
        }
    }
    if !ctx.quiet || errors > 0 {
        eprintln!(
            "checked {files} issue{}: {errors} error{}, {warnings} warning{}",
            plural(files),
            plural(errors),
            plural(warnings)
        );
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
