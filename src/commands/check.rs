//! `techshack check`: parse every issue, drafts too, and report every problem.

use anyhow::Result;

use super::preview::PREVIEW_SECRET;
use super::Ctx;
use crate::diag::{plural, Diagnostic, Exit};
use crate::issue;
use crate::mail::compose::Composer;
use crate::model::Issue;
use crate::templates::Templates;

/// Prints every diagnostic and a summary line to stderr; exit 1 on any error.
pub fn run(ctx: &Ctx) -> Result<Exit> {
    let files = issue::issue_files(&ctx.config.issues.dir)?.len();
    let mut loaded = issue::load_all(&ctx.config)?;
    loaded
        .diagnostics
        .extend(setting_problems(ctx, &loaded.issues));
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
    Ok(if errors > 0 { Exit::Error } else { Exit::Ok })
}

/// What would stop `build`, `preview` or `send` later, found now: templates that do not parse
/// and, once `email.from` is set (the newsletter is mailed), mail settings the config could not
/// parse, an email that cannot be rendered from the newest issue (or one so large that Gmail
/// clips it) and an SMTP endpoint that cannot work.
fn setting_problems(ctx: &Ctx, issues: &[Issue]) -> Vec<Diagnostic> {
    let config = &ctx.config;
    let at = |e: anyhow::Error| Diagnostic::error(&ctx.config_path, None, format!("{e:#}"));
    let mut out = Vec::new();
    let templates = match Templates::load(config) {
        Ok(t) => t,
        Err(e) => {
            out.push(at(e));
            return out;
        }
    };
    if !config.email.is_mailed() {
        return out;
    }
    if let Some(newest) = issues.iter().max_by_key(|i| (i.date, &i.slug)) {
        // The settings come parsed from the config; rendering the newest issue finds what its
        // templates make of it. Tokens are not checked here, so the preview's secret signs.
        let composed = config
            .email
            .newsletter()
            .and_then(|_| Composer::with_templates(config, &templates, newest, PREVIEW_SECRET));
        match composed {
            Ok(c) => {
                if let Some(w) = c.size_warning() {
                    out.push(Diagnostic::warning(&newest.path, None, w));
                }
            }
            Err(e) => out.push(at(
                e.context(format!("composing the email of {}", newest.slug))
            )),
        }
    }
    // The password comes from the environment of the send, not of `check`.
    if let Err(e) = config
        .smtp_endpoint()
        .and_then(|e| e.refuse_plaintext_password())
    {
        out.push(at(e));
    }
    out
}
