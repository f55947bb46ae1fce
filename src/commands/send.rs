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
    let issues = load_issues(ctx)?;
    let testing = args.dry_run.is_some() || args.to.is_some();
    let issue = match (&args.issue, args.latest) {
        (Some(slug), _) => Some(pick_slug(config, &issues, slug, now, testing)?),
        (None, _) => pick_latest(config, &issues, now)?,
    };
    if testing {
        let Some(issue) = &issue else {
            ctx.info("send --latest: no published issue in the main feeds; nothing to send");
            return Ok(0);
        };
        let slug = issue.slug.clone();
        let secret = ctx.secrets.signing_key()?;
        let composer = Composer::new(config, issue, secret)
            .with_context(|| format!("composing the email of {slug}"))?;
        if let Some(w) = composer.size_warning() {
            eprintln!("warning: {slug}: {w}");
        }
        if let Some(dir) = &args.dry_run {
            return dry_run(ctx, &composer, &slug, dir);
        }
        if let Some(to) = &args.to {
            return test_copy(ctx, &composer, &slug, to);
        }
    }

    let db = config.state.db.clone();
    let _lock = SendLock::acquire(&db)?;
    let mut store = Store::open(&db)?;
    let mut run = Runner::start(ctx)?;
    if let (false, Some(issue)) = (args.latest, &issue) {
        let slug = &issue.slug;
        let recovered = ledger::recover_in_flight(store.conn(), slug)?;
        warn_recovered(slug, recovered);
        return run.issue(&mut store, issue, args.retry_unknown, None);
    }

    // --latest is what cron calls: every issue whose send was started and not finished is
    // finished here too, oldest first, so an interrupted older issue is never left behind.
    for (slug, n) in ledger::recover_all_in_flight(store.conn_mut())? {
        warn_recovered(&slug, n);
    }
    let newest = issue;
    if newest.is_none() {
        ctx.info("send --latest: no published issue in the main feeds; nothing new to send");
    }
    let newest_slug = newest.as_ref().map(|i| i.slug.clone());
    let mut code = Code::default();
    let mut older: Vec<&Issue> = Vec::new();
    let unix_now = chrono::Utc::now().timestamp();
    for slug in ledger::unfinished_issues(store.conn())? {
        if Some(&slug) == newest_slug.as_ref() {
            continue;
        }
        expire(config, &store, &slug, unix_now)?;
        let c = ledger::counts(store.conn(), &slug)?;
        if c.is_complete() {
            println!("{slug}: complete ({})", c.one_line());
            continue;
        }
        let Some(issue) = issues.iter().find(|i| i.slug == slug) else {
            eprintln!(
                "warning: {slug}: its send is unfinished ({}) but {} has no issue `{slug}` any more: restore the file, then run `techshack send {slug}`",
                c.one_line(),
                config.issues.dir.display()
            );
            code.add(EXIT_TEMPFAIL);
            continue;
        };
        if !issue.is_published(now) {
            eprintln!(
                "warning: {slug}: its send is unfinished ({}) but {} is now a draft or dated in the future: publish it again, then run `techshack send {slug}`",
                c.one_line(),
                issue.path.display()
            );
            code.add(EXIT_TEMPFAIL);
            continue;
        }
        let age = now.signed_duration_since(issue.date);
        if age > chrono::Duration::days(i64::from(args.max_age)) {
            eprintln!(
                "warning: {slug}: its send is unfinished ({}) and the issue is {} days old, older than --max-age {}: not sending it; finish it with `techshack send {slug}`",
                c.one_line(),
                age.num_days(),
                args.max_age
            );
            code.add(EXIT_TEMPFAIL);
            continue;
        }
        older.push(issue);
    }
    let mut handle: Vec<(&Issue, bool)> = older.into_iter().map(|i| (i, false)).collect();
    if let Some(n) = &newest {
        handle.push((n, true));
    }
    handle.sort_by(|(a, _), (b, _)| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)));
    for (issue, is_newest) in handle {
        if run.stopped() {
            eprintln!("{}: not started: the send was interrupted", issue.slug);
            code.add(EXIT_TEMPFAIL);
            continue;
        }
        let max_age = is_newest.then_some(args.max_age);
        let retry_unknown = is_newest && args.retry_unknown;
        match run.issue(&mut store, issue, retry_unknown, max_age) {
            Ok(c) => code.add(c),
            Err(e) => {
                eprintln!("error: {}: {e:#}", issue.slug);
                code.add(1);
            }
        }
    }
    Ok(code.0)
}

/// The exit code over several issues: an error wins over a deferral, which wins over done.
#[derive(Default)]
struct Code(u8);

impl Code {
    fn add(&mut self, c: u8) {
        let rank = |c: u8| match c {
            0 => 0,
            EXIT_TEMPFAIL => 1,
            _ => 2,
        };
        if rank(c) > rank(self.0) {
            self.0 = c;
        }
    }
}

fn warn_recovered(slug: &str, recovered: usize) {
    if recovered > 0 {
        eprintln!(
            "warning: {recovered} delivery(ies) of {slug} were in flight when an earlier send stopped: marked unknown (see `techshack status {slug} --csv`; `send --retry-unknown` resends them)"
        );
    }
}

/// Fails the deferred rows of `slug` past `smtp.max_age_hours`, before anything is selected:
/// such rows are final, not due.
fn expire(config: &Config, store: &Store, slug: &str, unix_now: i64) -> Result<()> {
    let hours = config.smtp.max_age_hours;
    let expired = ledger::expire_deferred(store.conn(), slug, unix_now, hours)?;
    if expired > 0 {
        eprintln!(
            "warning: {expired} deferred delivery(ies) of {slug} failed: first attempted more than {hours} h ago (smtp.max_age_hours); see `techshack status {slug} --csv`"
        );
    }
    Ok(())
}

/// What every issue of one `send` shares: the runtime and the stop flag a signal sets.
struct Runner<'a> {
    ctx: &'a Ctx,
    rt: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
}

impl<'a> Runner<'a> {
    fn start(ctx: &'a Ctx) -> Result<Runner<'a>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            rt.spawn(async move {
                if wait_for_signal().await {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        Ok(Runner { ctx, rt, stop })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Snapshots `issue` once and delivers its due rows; prints its one summary line and
    /// returns its exit code. `max_age` refuses a first send of an issue older than that many
    /// days.
    fn issue(
        &mut self,
        store: &mut Store,
        issue: &Issue,
        retry_unknown: bool,
        max_age: Option<u32>,
    ) -> Result<u8> {
        let ctx = self.ctx;
        let config = &ctx.config;
        let now = config.site.timezone.now();
        let slug = issue.slug.clone();
        let db = config.state.db.clone();
        if retry_unknown {
            let n = ledger::requeue_unknown(store.conn(), &slug)?;
            if n > 0 {
                ctx.info(format!("{n} unknown delivery(ies) of {slug} queued again"));
            }
        }
        let snapshotted = ledger::has_snapshot(store.conn(), &slug)?;
        if let (Some(max_age), false) = (max_age, snapshotted) {
            let age = now.signed_duration_since(issue.date);
            if age > chrono::Duration::days(i64::from(max_age)) {
                ctx.info(format!(
                    "{slug}: the newest issue is {} days old, older than --max-age {max_age}: not sending (send it by name to mail it anyway)",
                    age.num_days(),
                ));
                return Ok(0);
            }
        }
        let secret = ctx.secrets.signing_key()?;
        let composer = Composer::new(config, issue, secret)
            .with_context(|| format!("composing the email of {slug}"))?;
        let unix_now = chrono::Utc::now().timestamp();
        if snapshotted {
            expire(config, store, &slug, unix_now)?;
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

        let target = Arc::new(Target::new(
            config.smtp_endpoint()?,
            ctx.secrets.smtp_password(),
        )?);
        let settings = Settings::from_config(&config.smtp);
        let composer = Arc::new(composer);
        let build: Arc<Build> = {
            let composer = composer.clone();
            Arc::new(move |r: &Recipient| {
                let m = composer.message(r)?;
                Ok((m.envelope().clone(), m.formatted()))
            })
        };

        let started = Instant::now();
        let stop = self.stop.clone();
        let outcome = self.rt.block_on(async {
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
        if self.stopped() {
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

/// Every issue of the folder. Prints its errors as `check` does; any error in any file
/// is fatal, since a send from a folder that does not parse could mail the wrong file.
fn load_issues(ctx: &Ctx) -> Result<Vec<Issue>> {
    let loaded = crate::issue::load_all(&ctx.config)?;
    // Warnings are `check`'s business: a scheduled send shows them only with --verbose, so
    // an old issue's harmless warning does not fill every cron mail.
    for d in &loaded.diagnostics {
        if d.is_error() || (ctx.verbose && !ctx.quiet) {
            eprintln!("{d}");
        }
    }
    let mut broken: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.path.display().to_string())
        .collect();
    let errors = broken.len();
    broken.dedup();
    if errors > 0 {
        bail!(
            "not sending: {errors} error(s) in the issues folder {} (in {}): fix them (`techshack check` lists them) and send again",
            ctx.config.issues.dir.display(),
            broken.join(", ")
        );
    }
    Ok(loaded.issues)
}

/// The issue `slug`. Drafts and future issues only for a test copy (`testing`), with a
/// warning; a real send refuses them.
fn pick_slug(
    config: &Config,
    issues: &[Issue],
    slug: &str,
    now: chrono::DateTime<chrono::FixedOffset>,
    testing: bool,
) -> Result<Issue> {
    let Some(issue) = issues.iter().find(|i| i.slug == slug) else {
        bail!(
            "no issue `{slug}` in {}: give the file name without extension, as `techshack send 2019-01`",
            config.issues.dir.display()
        );
    };
    if !issue.is_published(now) {
        let what = if issue.draft {
            "a draft".to_string()
        } else {
            format!("dated in the future ({})", issue.date.to_rfc3339())
        };
        if !testing {
            bail!(
                "{} is {what}: publish it before sending (`--to ADDR` or `--dry-run DIR` make a test copy)",
                issue.path.display()
            );
        }
        eprintln!(
            "warning: {} is {what}: this is a test copy; publish it before sending to subscribers",
            issue.path.display()
        );
    }
    Ok(issue.clone())
}

/// The newest published issue of the main feeds: issues a `[[feeds.extra]]` matches leave them.
fn pick_latest(
    config: &Config,
    issues: &[Issue],
    now: chrono::DateTime<chrono::FixedOffset>,
) -> Result<Option<Issue>> {
    Ok(issues
        .iter()
        .filter(|i| i.is_published(now))
        .filter(|i| config.feeds.in_main(&i.path))
        .max_by(|a, b| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)))
        .cloned())
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
    let target = Target::new(ctx.config.smtp_endpoint()?, ctx.secrets.smtp_password())?;
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
