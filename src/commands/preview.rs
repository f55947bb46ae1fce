//! `techshack preview`: the complete message of an issue for a sample recipient, built by the
//! same `Composer` as `send`, with the issue's date as `Date` so two runs write the same bytes.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::Ctx;
use crate::diag::{self, Diagnostics, Exit};
use crate::mail::compose::{Composer, Recipient};

/// Who the preview is addressed to.
pub const SAMPLE_ADDRESS: &str = "subscriber@example.com";
pub const SAMPLE_NAME: &str = "Sample Subscriber";

/// Signs the preview's unsubscribe link when `$TECHSHACK_SECRET` is not set. Only `preview`
/// uses it; `send` refuses to run without the real secret.
pub const PREVIEW_SECRET: &[u8] = b"techshack preview secret: links signed with it never verify";

/// Writes the preview of one issue.
pub fn run(ctx: &Ctx, args: crate::cli::PreviewArgs) -> Result<Exit> {
    let loaded = crate::issue::load_all(&ctx.config)?;
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && file_slug(&d.path).as_deref() == Some(args.issue.as_str()))
        .cloned()
        .collect();
    if !errors.is_empty() {
        return Err(Diagnostics(errors).into());
    }
    let issue = loaded
        .issues
        .iter()
        .find(|i| i.slug == args.issue)
        .with_context(|| {
            format!(
                "no issue `{}` in {} ({} issues found): ISSUE is a file name without extension",
                args.issue,
                ctx.config.issues.dir.display(),
                loaded.issues.len()
            )
        })?;
    let secret = if ctx.secrets.has_secret() {
        ctx.secrets.signing_key()?.to_vec()
    } else {
        ctx.info(
            "preview: $TECHSHACK_SECRET is not set; the unsubscribe link is signed with a fixed preview secret and will not work",
        );
        PREVIEW_SECRET.to_vec()
    };
    let composer = Composer::new(&ctx.config, issue, &secret)?.with_date(issue.date);
    if let Some(w) = composer.size_warning() {
        diag::warning(format_args!("{}: {w}", issue.slug));
    }
    let r = Recipient {
        address: crate::store::Address::parse(SAMPLE_ADDRESS)?,
        name: Some(SAMPLE_NAME.into()),
    };
    let eml = composer.message_bytes(&r)?;
    let any = args.eml.is_some() || args.html.is_some() || args.text.is_some();
    if let Some(p) = &args.eml {
        write_file(p, &eml)?;
    }
    if let Some(p) = &args.html {
        write_file(p, composer.html(&r).as_bytes())?;
    }
    if let Some(p) = &args.text {
        write_file(p, composer.text(&r).as_bytes())?;
    }
    if !any {
        let mut out = std::io::stdout().lock();
        out.write_all(&eml)
            .context("writing the message to stdout")?;
        out.flush().context("writing the message to stdout")?;
    }
    Ok(Exit::Ok)
}

fn file_slug(path: &Path) -> Option<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    super::output::write(path, bytes)
}
