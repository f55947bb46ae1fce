//! `techshack send`: snapshot the subscribers into the ledger once, deliver what is due,
//! record every reply, and exit 0, or 75 while deliveries wait for a later run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fs4::fs_std::FileExt;
use indicatif::{ProgressBar, ProgressStyle};

use super::Ctx;
use crate::cli::SendArgs;
use crate::config::Config;
use crate::mail::compose::{Composer, Recipient};
use crate::mail::deliver::{self, Build, Settings};
use crate::mail::ledger::{self, DeliveryState, Writer};
use crate::mail::smtp::{ConnectError, Outcome, Target};
use crate::model::Issue;
use crate::store::{normalize_address, Store, SubscriberStatus};
use crate::EXIT_TEMPFAIL;

pub fn run(ctx: &Ctx, args: SendArgs) -> Result<u8> {
    let config = &ctx.config;
    let now = config.site.timezone.now();
    let issue = match (&args.issue, args.latest) {
        (Some(slug), _) => pick_slug(config, slug, now)?,
        (None, _) => match pick_latest(config, now)? {
            Some(i) => i,
            None => {
                ctx.info("send --latest: no published issue in the main feeds; nothing to send");
                return Ok(0);
            }
        },
    };
    let slug = issue.slug.clone();
    let secret = crate::token::secret_from_env()?;
    let composer = Composer::new(config, &issue, &secret)
        .with_context(|| format!("composing the email of {slug}"))?;

    if let Some(dir) = &args.dry_run {
        return dry_run(ctx, &composer, &slug, dir);
    }
    if let Some(to) = &args.to {
        return test_copy(ctx, &composer, &slug, to);
    }

    let db = config.state.db.clone();
    let _lock = SendLock::acquire(&db)?;
    let mut store = Store::open(&db)?;
    let recovered = ledger::recover_in_flight(store.conn(), &slug)?;
    if recovered > 0 {
        eprintln!(
            "warning: {recovered} delivery(ies) of {slug} were in flight when an earlier send stopped: marked unknown (see `techshack status {slug} --csv`; `send --retry-unknown` resends them)"
        );
    }
    if args.retry_unknown {
        let n = ledger::requeue_unknown(store.conn(), &slug)?;
        if n > 0 {
            ctx.info(format!("{n} unknown delivery(ies) of {slug} queued again"));
        }
    }
    let snapshotted = ledger::has_snapshot(store.conn(), &slug)?;
    if args.latest && !snapshotted {
        let age = now.signed_duration_since(issue.date);
        if age > chrono::Duration::days(i64::from(args.max_age)) {
            ctx.info(format!(
                "{slug}: the newest issue is {} days old, older than --max-age {}: not sending (send it by name to mail it anyway)",
                age.num_days(),
                args.max_age
            ));
            return Ok(0);
        }
    }
    let unix_now = chrono::Utc::now().timestamp();
    if snapshotted {
        // Before anything is selected: rows past the age cap are final, not due.
        let hours = config.smtp.max_age_hours;
        let expired = ledger::expire_deferred(store.conn(), &slug, unix_now, hours)?;
        if expired > 0 {
            eprintln!(
                "warning: {expired} deferred delivery(ies) of {slug} failed: first attempted more than {hours} h ago (smtp.max_age_hours); see `techshack status {slug} --csv`"
            );
        }
        let c = ledger::counts(store.conn(), &slug)?;
        if c.is_complete() {
            println!("{slug}: complete ({})", c.one_line());
            return Ok(0);
        }
        if ledger::due(store.conn(), &slug, unix_now)?.is_empty() {
            let next = ledger::next_due(store.conn(), &slug)?.unwrap_or(unix_now);
            println!(
                "{slug}: nothing due before {} ({})",
                fmt_unix(next),
                c.one_line()
            );
            return Ok(EXIT_TEMPFAIL);
        }
    }

    let password = std::env::var("TECHSHACK_SMTP_PASSWORD").ok();
    let target = Arc::new(Target::from_config(&config.smtp, password)?);
    let settings = Settings::from_config(&config.smtp);
    let composer = Arc::new(composer);
    let build: Arc<Build> = {
        let composer = composer.clone();
        Arc::new(move |r: &Recipient| {
            let m = composer.message(r)?;
            Ok((m.envelope().clone(), m.formatted()))
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let outcome = rt.block_on(async {
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                if wait_for_signal().await {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        // The first session proves server, TLS and credentials before the ledger changes.
        let first = match target.connect().await {
            Ok(c) => c,
            Err(ConnectError::Fatal(e)) => bail!(e),
            Err(ConnectError::Transient(e)) => {
                eprintln!("{slug}: {e}; nothing was sent, try again later");
                return Ok(None::<(deliver::Report, usize, Option<usize>)>);
            }
        };
        let snapshot = ledger::snapshot(store.conn_mut(), &slug)?;
        if let (Some(n), true) = (snapshot, ctx.verbose) {
            eprintln!("{slug}: {n} active subscriber(s) snapshotted");
        }
        let rows = ledger::due(store.conn(), &slug, unix_now)?;
        let total = rows.len();
        let progress = progress_bar(ctx, total as u64);
        let writer = Writer::start(&db)?;
        let report = deliver::deliver(
            rows,
            deliver::Run {
                build,
                target: target.clone(),
                first: Some(first),
                ledger: writer.handle(),
                settings,
                progress: progress.clone(),
                stop: stop.clone(),
            },
        )
        .await;
        progress.finish_and_clear();
        let finished = writer.finish();
        let report = report?;
        finished?;
        Ok(Some((report, total, snapshot)))
    });
    let Some((report, total, snapshot)) = outcome? else {
        return Ok(EXIT_TEMPFAIL);
    };
    let c = ledger::counts(store.conn(), &slug)?;
    let secs = started.elapsed().as_secs_f64();
    let st = &report.stats;
    let sent = st.sent.load(Ordering::Relaxed);
    let first = match snapshot {
        Some(n) => format!("{n} subscriber(s) snapshotted; "),
        None => String::new(),
    };
    let mut line = format!(
        "{slug}: {first}this run sent {sent}, deferred {}, failed {}, unknown {}, skipped {} of {total} due in {secs:.1} s ({:.0} msg/s); ledger: {}",
        st.deferred.load(Ordering::Relaxed) + st.not_attempted.load(Ordering::Relaxed),
        st.failed.load(Ordering::Relaxed),
        st.unknown.load(Ordering::Relaxed),
        st.skipped.load(Ordering::Relaxed),
        sent as f64 / secs.max(0.001),
        c.one_line()
    );
    if let Some(e) = &report.connect_error {
        if st.not_attempted.load(Ordering::Relaxed) > 0 {
            line.push_str(&format!("; stopped early: {e}"));
        }
    }
    if stop.load(Ordering::Relaxed) {
        line.push_str("; interrupted");
    }
    if c.get(DeliveryState::Deferred) > 0 {
        if let Some(next) = ledger::next_due(store.conn(), &slug)? {
            line.push_str(&format!("; next attempt after {}", fmt_unix(next)));
        }
    }
    if !ctx.quiet || c.get(DeliveryState::Deferred) > 0 {
        eprintln!("{line}");
    }
    Ok(
        if c.get(DeliveryState::Deferred) > 0 || c.get(DeliveryState::Pending) > 0 {
            EXIT_TEMPFAIL
        } else {
            0
        },
    )
}

fn fmt_unix(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

fn progress_bar(ctx: &Ctx, len: u64) -> ProgressBar {
    if ctx.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
    {
        pb.set_style(style);
    }
    pb
}

#[cfg(unix)]
async fn wait_for_signal() -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return false;
    };
    tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => true,
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> bool {
    tokio::signal::ctrl_c().await.is_ok()
}

fn load_issues(config: &Config) -> Result<Vec<Issue>> {
    let loaded = crate::issue::load_all(config)?;
    Ok(loaded.issues)
}

fn pick_slug(
    config: &Config,
    slug: &str,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<Issue> {
    let issues = load_issues(config)?;
    let Some(issue) = issues.into_iter().find(|i| i.slug == slug) else {
        bail!(
            "no issue `{slug}` in {}: give the file name without extension, as `techshack send 2019-01`",
            config.issues.dir.display()
        );
    };
    if !issue.is_published(now) {
        bail!(
            "{} is a draft or dated in the future ({}): publish it before sending",
            issue.path.display(),
            issue.date.to_rfc3339()
        );
    }
    Ok(issue)
}

/// The newest published issue of the main feeds: issues a `[[feeds.extra]]` matches leave them.
fn pick_latest(
    config: &Config,
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<Option<Issue>> {
    let mut b = globset::GlobSetBuilder::new();
    for x in &config.feeds.extra {
        b.add(globset::Glob::new(&x.pattern)?);
    }
    let extra = b.build()?;
    let issues = load_issues(config)?;
    Ok(issues
        .into_iter()
        .filter(|i| i.is_published(now))
        .filter(|i| {
            let name = i.path.file_name().map(|n| n.to_string_lossy().into_owned());
            !name.is_some_and(|n| extra.is_match(n))
        })
        .max_by(|a, b| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug))))
}

fn dry_run(ctx: &Ctx, composer: &Composer, slug: &str, dir: &Path) -> Result<u8> {
    let store = Store::open(&ctx.config.state.db)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let subs = store.subscribers(Some(SubscriberStatus::Active))?;
    for s in &subs {
        let m = composer.message(&Recipient {
            address: s.address.clone(),
            name: s.name.clone(),
        })?;
        let path = dir.join(eml_name(slug, &s.address));
        std::fs::write(&path, m.formatted())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    ctx.info(format!(
        "{slug}: wrote {} message(s) to {} (nothing sent, nothing recorded)",
        subs.len(),
        dir.display()
    ));
    Ok(0)
}

/// `2019-01-ann_at_example.org.eml`: safe on every file system, one file per address.
fn eml_name(slug: &str, address: &str) -> PathBuf {
    let a: String = address
        .chars()
        .map(|c| match c {
            '@' => '_',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+') => c,
            _ => '_',
        })
        .collect();
    PathBuf::from(format!("{slug}-{a}.eml"))
}

fn test_copy(ctx: &Ctx, composer: &Composer, slug: &str, to: &str) -> Result<u8> {
    let address = normalize_address(to)?;
    let m = composer.message(&Recipient {
        address: address.clone(),
        name: None,
    })?;
    let password = std::env::var("TECHSHACK_SMTP_PASSWORD").ok();
    let target = Target::from_config(&ctx.config.smtp, password)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let mut c = target.connect().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let o = c.send(target.timeout, m.envelope(), &m.formatted()).await;
        if o.keeps_connection() {
            c.quit(target.timeout).await;
        }
        anyhow::Ok(o)
    })?;
    match outcome {
        Outcome::Sent(r) => {
            ctx.info(format!(
                "{slug}: test copy sent to {address}: {r} (nothing recorded)"
            ));
            Ok(0)
        }
        Outcome::Fail { reply: r, .. }
        | Outcome::Defer(r)
        | Outcome::Retry(r)
        | Outcome::Unknown(r)
        | Outcome::Abort(r) => bail!("{slug}: the test copy to {address} was not accepted: {r}"),
    }
}

/// `flock` on `<state db>.lock`: one send per state file; the kernel drops it with the process.
struct SendLock {
    _file: std::fs::File,
}

impl SendLock {
    fn acquire(db: &Path) -> Result<SendLock> {
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state folder {}", dir.display()))?;
        }
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(SendLock { _file: file }),
            Err(e) if e.kind() == fs4::lock_contended_error().kind() => bail!(
                "another `techshack send` is running on {} (it holds {}): wait for it to finish",
                db.display(),
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}
