//! `techshack new`: write the next issue file from the `issue.md` template.
//!
//! The file is named by `issues.filename_date` and the date, so the parser reads the same date
//! back. When the name cannot hold the exact day (an ISO week names only its Monday), the
//! template also gets a `date:` line. A new issue starts as a draft (`published: false`).
//! The issues folder must exist: `new` never creates it, so a mistyped `--issues` is an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;

use super::Ctx;
use crate::config::Config;
use crate::diag::Exit;
use crate::issue::date;

/// Writes the issue file; prints its path on stdout.
pub fn run(ctx: &Ctx, args: crate::cli::NewArgs) -> Result<Exit> {
    let day = match &args.date {
        Some(s) => parse_day(s)?,
        None => ctx.clock.now(&ctx.config.site.timezone)?.date_naive(),
    };
    let path = create(&ctx.config, day, args.title.as_deref())?;
    println!("{}", path.display());
    ctx.info(format!(
        "wrote {}: a draft until you set `published: true`",
        path.display()
    ));
    Ok(Exit::Ok)
}

/// `YYYY-MM-DD`, months and days padded or not.
pub fn parse_day(s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .with_context(|| format!("--date `{s}` is not a date: write it as YYYY-MM-DD"))
}

/// Renders the new issue for `day` and writes it, refusing to replace any file.
pub fn create(config: &Config, day: NaiveDate, title: Option<&str>) -> Result<PathBuf> {
    let format = &config.issues.filename_date;
    let slug = date::to_file_name(day, format)
        .filter(|s| !s.is_empty())
        .with_context(|| format!("issues.filename_date `{format}` is not a date format"))?;
    if !crate::issue::valid_slug(&slug) {
        bail!("issues.filename_date `{format}` makes the file name `{slug}`: use only letters, digits, `-`, `_` and `.` in it");
    }
    let tz = &config.site.timezone;
    let back = date::from_file_name(&slug, format, config.issues.time, tz);
    let name_holds_day = back.is_some_and(|d| d.date_naive() == day);

    let dir = &config.issues.dir;
    // A folder that does not exist is most likely a typo in `--issues` or `issues.dir`: an
    // issue written there would never be built or sent, so refuse rather than create it.
    if !dir.is_dir() {
        bail!(
            "the issues folder {} does not exist: check issues.dir in the config or --issues, or create the folder first",
            dir.display()
        );
    }
    for ext in ["md", "markdown"] {
        let p = dir.join(format!("{slug}.{ext}"));
        if p.exists() {
            bail!(
                "{} exists already: edit it, or pass --date for another issue",
                p.display()
            );
        }
    }
    let title = match title {
        Some(t) => crate::render::fold_line(t),
        None => format!("{} {slug}", config.site.title),
    };
    if title.is_empty() {
        bail!("--title is empty");
    }
    let mut cx = tera::Context::new();
    cx.insert("title", &title);
    cx.insert("title_yaml", &serde_json::to_string(&title)?);
    cx.insert("date", &day.format("%Y-%m-%d").to_string());
    cx.insert("date_line", &!name_holds_day);
    cx.insert("slug", &slug);
    cx.insert("site_title", &config.site.title);
    let text =
        tera::Tera::one_off(&crate::templates::issue_md(config)?, &cx, false).map_err(|e| {
            anyhow::anyhow!(
                "rendering the issue.md template: {}",
                crate::templates::chain(&e)
            )
        })?;

    let path = dir.join(format!("{slug}.md"));
    write_new(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes a file that must not exist yet (checked by the OS, not before).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| {
            format!(
                "creating {}: it must not exist yet (edit it, or pass --date for another issue)",
                path.display()
            )
        })?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
