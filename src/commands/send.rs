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
use dry_run::dry_run;

mod dry_run;
use crate::cli::SendArgs;
use crate::diag::{self, Diagnostic, Exit};
use crate::mail::compose::{Composer, Recipient};
use crate::mail::deliver::{self, Build};
use crate::mail::plan::{self, Resume, Unfinished};
use crate::mail::policy::Settings;
use crate::mail::session::Outcome;
use crate::mail::smtp::{ConnectError, Target};
use crate::mail::verp;
use crate::model::Issue;
use crate::store::{Address, Counts, DeliveryState, Location, Store};

pub fn run(ctx: &Ctx, args: SendArgs) -> Result<Exit> {
    let config = &ctx.config;
    let now = config.site.timezone.now();
    let (issues, warnings) = load_issues(ctx)?;
    let testing = args.dry_run.is_some() || args.to.is_some();
    let issue = match (&args.issue, args.latest) {
        (Some(slug), _) => {
            let (issue, warning) = plan::pick_slug(config, &issues, slug, now, testing)?;
            if let Some(w) = warning {
                diag::warning(w);
            }
            Some(issue)
        }
        (None, _) => plan::pick_latest(config, &issues, now)?,
    };
    if let Some(issue) = &issue {
        check_issue(ctx, issue, &warnings, testing)?;
    }
    if testing {
        return test_send(ctx, &args, issue.as_ref());
    }
    let location = Location::of(&config.state)?;
    // On SQLite one send runs at a time: a send already running is no failure, this run's
    // work is done by it, or by a later run (75, as for deferred deliveries, so a timer does
    // not mark the unit failed). On PostgreSQL senders cooperate through their leases.
    let _lock = match &location {
        Location::File(db) => match SendLock::acquire(db)? {
            Some(lock) => Some(lock),
            None => return Ok(Exit::TempFail),
        },
        Location::Postgres(_) => None,
    };
    let mut store = Store::open_at(&location)?;
    let mut run = Runner::start(ctx)?;
    match (args.latest, issue) {
        (false, Some(issue)) => {
            let slug = &issue.slug;
            let recovered = store.recover_in_flight(slug)?;
            warn_recovered(slug, recovered);
            run.issue(
                &mut store,
                &issue,
                args.retry_unknown,
                args.retry_failed,
                None,
            )
        }
        (_, newest) => send_latest(&mut run, &mut store, &issues, newest.as_ref(), &args),
    }
}

/// `--dry-run DIR` and `--to ADDR`: a copy of the issue, nothing recorded.
fn test_send(ctx: &Ctx, args: &SendArgs, issue: Option<&Issue>) -> Result<Exit> {
    let Some(issue) = issue else {
        ctx.info("send --latest: no published issue in the main feeds; nothing to send");
        return Ok(Exit::Ok);
    };
    let slug = &issue.slug;
    let secret = ctx.secrets.signing_key()?;
    let composer = Composer::new(&ctx.config, issue, secret)
        .with_context(|| format!("composing the email of {slug}"))?;
    if let Some(w) = composer.size_warning() {
        diag::warning(format_args!("{slug}: {w}"));
    }
    if let Some(dir) = &args.dry_run {
        return dry_run(ctx, &composer, slug, dir);
    }
    match &args.to {
        Some(to) => test_copy(ctx, &composer, slug, to),
        None => Ok(Exit::Ok),
    }
}

/// `--latest` is what cron calls: every issue whose send was started and not finished is
/// finished here too, oldest first, so an interrupted older issue is never left behind.
fn send_latest(
    run: &mut Runner<'_>,
    store: &mut Store,
    issues: &[Issue],
    newest: Option<&Issue>,
    args: &SendArgs,
) -> Result<Exit> {
    let ctx = run.ctx;
    let config = &ctx.config;
    let now = config.site.timezone.now();
    for (slug, n) in store.recover_all_in_flight()? {
        warn_recovered(&slug, n);
    }
    if newest.is_none() {
        ctx.info("send --latest: no published issue in the main feeds; nothing new to send");
    }
    let mut code = Exit::Ok;
    let mut older: Vec<&Issue> = Vec::new();
    let unfinished = plan::unfinished(
        store,
        issues,
        newest.map(|i| i.slug.as_str()),
        now,
        chrono::Utc::now().timestamp(),
        args.max_age,
        config.smtp.max_age_hours,
    )?;
    for u in unfinished {
        let (slug, c) = (&u.slug, u.counts.one_line());
        warn_expired(slug, u.expired, config.smtp.max_age_hours);
        match u.verdict {
            Unfinished::Complete => {
                if !ctx.quiet {
                    println!("{slug}: complete ({c})");
                }
                continue;
            }
            Unfinished::Finish(issue) => {
                older.push(issue);
                continue;
            }
            Unfinished::Missing => diag::warning(format_args!(
                "{slug}: its send is unfinished ({c}) but {} has no issue `{slug}` any more: restore the file, then run `techshack send {slug}`",
                config.issues.dir.display()
            )),
            Unfinished::NotPublished(issue) => diag::warning(format_args!(
                "{slug}: its send is unfinished ({c}) but {} is now a draft or dated in the future: publish it again, then run `techshack send {slug}`",
                issue.path.display()
            )),
            Unfinished::TooOld { days, .. } => diag::warning(format_args!(
                "{slug}: its send is unfinished ({c}) and the issue is {days} days old, older than --max-age {}: not sending it; finish it with `techshack send {slug}`",
                args.max_age
            )),
        }
        code.add(Exit::TempFail);
    }
    for (issue, is_newest) in plan::order(older, newest) {
        if run.stopped() {
            eprintln!("{}: not started: the send was interrupted", issue.slug);
            code.add(Exit::TempFail);
            continue;
        }
        let max_age = is_newest.then_some(args.max_age);
        let retry_unknown = is_newest && args.retry_unknown;
        match run.issue(store, issue, retry_unknown, false, max_age) {
            Ok(c) => code.add(c),
            Err(e) => {
                diag::error(format_args!("{}: {e:#}", issue.slug));
                code.add(Exit::Error);
            }
        }
    }
    Ok(code)
}

fn warn_recovered(slug: &str, recovered: usize) {
    if recovered > 0 {
        diag::warning(format_args!(
            "{recovered} delivery(ies) of {slug} were in flight when an earlier send stopped: marked unknown (see `techshack status {slug} --csv`; `send --retry-unknown` resends them)"
        ));
    }
}

fn warn_expired(slug: &str, expired: usize, hours: i64) {
    if expired > 0 {
        diag::warning(format_args!(
            "{expired} deferred delivery(ies) of {slug} failed: first attempted more than {hours} h ago (smtp.max_age_hours); see `techshack status {slug} --csv`"
        ));
    }
}

/// What one delivery run of an issue came to.
struct Delivered {
    report: deliver::Report,
    /// Rows due at the start.
    due: usize,
    /// Subscribers snapshotted by this run, if it took the snapshot.
    snapshot: Option<usize>,
    started: Instant,
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
        retry_failed: bool,
        max_age: Option<u32>,
    ) -> Result<Exit> {
        let ctx = self.ctx;
        let config = &ctx.config;
        let slug = &issue.slug;
        if retry_unknown {
            let n = store.requeue_unknown(slug)?;
            if n > 0 {
                ctx.info(format!("{n} unknown delivery(ies) of {slug} queued again"));
            }
        }
        if retry_failed {
            let n = store.requeue_failed(slug)?;
            ctx.info(format!(
                "{n} failed delivery(ies) of {slug} queued again (subscribers still active only)"
            ));
        }
        let snapshotted = store.has_snapshot(slug)?;
        if let (Some(max_age), false) = (max_age, snapshotted) {
            if let Some(days) = plan::older_than(issue, config.site.timezone.now(), max_age) {
                ctx.info(format!(
                    "{slug}: the newest issue is {days} days old, older than --max-age {max_age}: not sending (send it by name to mail it anyway)",
                ));
                return Ok(Exit::Ok);
            }
        }
        let secret = ctx.secrets.signing_key()?;
        let composer = Composer::new(config, issue, secret)
            .with_context(|| format!("composing the email of {slug}"))?;
        let unix_now = chrono::Utc::now().timestamp();
        if snapshotted {
            let hours = config.smtp.max_age_hours;
            let (expired, resume) = plan::resume(store, slug, unix_now, hours)?;
            warn_expired(slug, expired, hours);
            match resume {
                Resume::Complete(c) => {
                    // A finished send is what an hourly `send --latest -q` meets: say nothing.
                    if !ctx.quiet {
                        println!("{slug}: complete ({})", c.one_line());
                    }
                    return Ok(Exit::Ok);
                }
                Resume::NothingDue { next, counts } => {
                    println!(
                        "{slug}: nothing due before {} ({})",
                        fmt_unix(next),
                        counts.one_line()
                    );
                    return Ok(Exit::TempFail);
                }
                Resume::Deliver => {}
            }
        }
        let Some(done) = self.deliver(store, slug, composer, unix_now)? else {
            return Ok(Exit::TempFail);
        };
        let c = store.counts(slug)?;
        let next = match c.get(DeliveryState::Deferred) {
            0 => None,
            _ => store.next_due(slug)?,
        };
        let line = summary(slug, &done, &c, self.stopped(), next);
        if let Some(t) = &done.report.stopped {
            eprintln!("{line}");
            diag::error(format_args!(
                "{slug}: stopped: {} recipients in a row were refused with `{}`, which is not about them: {}. Their deliveries are pending again and nobody was marked bounced; once that is fixed, run `techshack send {slug}` again",
                t.recipients,
                t.refusal.reply,
                t.refusal.fault.hint()
            ));
            return Ok(if t.refusal.permanent {
                Exit::Error
            } else {
                Exit::TempFail
            });
        }
        if !ctx.quiet || c.get(DeliveryState::Deferred) > 0 {
            eprintln!("{line}");
        }
        Ok(
            if c.get(DeliveryState::Deferred) > 0 || c.get(DeliveryState::Pending) > 0 {
                Exit::TempFail
            } else {
                Exit::Ok
            },
        )
    }

    /// Connects, snapshots (once per issue) and delivers the rows due at `unix_now`. `None`
    /// when the server could not be reached for now: nothing changed.
    fn deliver(
        &mut self,
        store: &mut Store,
        slug: &str,
        composer: Composer,
        unix_now: i64,
    ) -> Result<Option<Delivered>> {
        let ctx = self.ctx;
        let config = &ctx.config;
        let target = Arc::new(Target::new(
            config.smtp_endpoint()?,
            ctx.secrets.smtp_password(),
        )?);
        let settings = Settings::from_config(&config.smtp);
        let composer = Arc::new(composer);
        let return_path = config
            .email
            .newsletter()?
            .return_path
            .map(|p| -> Result<(String, Vec<u8>)> {
                Ok((p.to_string(), ctx.secrets.signing_key()?.to_vec()))
            })
            .transpose()?;
        let build: Arc<Build> = Arc::new(move |r: &Recipient, id: i64| {
            let (envelope, bytes) = composer.wire(r)?;
            let Some((pattern, key)) = &return_path else {
                return Ok((envelope, bytes));
            };
            // VERP: the envelope sender names this delivery, so its bounce finds the row.
            let from: lettre::Address = verp::address(pattern, key, id, &r.address).parse()?;
            Ok((
                lettre::address::Envelope::new(Some(from), envelope.to().to_vec())?,
                bytes,
            ))
        });
        let started = Instant::now();
        let stop = self.stop.clone();
        self.rt.block_on(async {
            // The first session proves server, TLS and credentials before the ledger changes.
            let first = match target.connect().await {
                Ok(c) => c,
                Err(e @ ConnectError::Fatal(_)) => return Err(e.into()),
                Err(ConnectError::Transient(e)) => {
                    eprintln!("{slug}: {e}; nothing was sent, try again later");
                    return Ok(None);
                }
            };
            let snapshot = store.snapshot(slug)?;
            if snapshot == Some(0) {
                bail!("{slug}: no active subscriber: nothing sent, nothing recorded (the issue stays unsent, so `techshack send {slug}` mails subscribers who arrive later)");
            }
            if let (Some(n), true) = (snapshot, ctx.verbose) {
                eprintln!("{slug}: {n} active subscriber(s) snapshotted");
            }
            let due = store.due_count(slug, unix_now)?;
            let lease = store.lease(slug, config.state.lease_seconds, stop.clone())?;
            let rows = store.due_pages(slug, unix_now, lease.id())?;
            let progress = progress_bar(ctx, due as u64);
            let writer = store.writer(lease.id())?;
            let report = deliver::deliver(
                rows,
                deliver::Run {
                    build,
                    target: target.clone(),
                    first: Some(first),
                    ledger: writer.handle(),
                    settings,
                    progress: progress.clone(),
                    stop,
                },
            )
            .await;
            progress.finish_and_clear();
            let finished = writer.finish();
            let released = lease.finish();
            let report = report?;
            finished?;
            released?;
            Ok(Some(Delivered {
                report,
                due,
                snapshot,
                started,
            }))
        })
    }
}

/// The one line a delivery run of `slug` ends with; `next` is the earliest retry when rows
/// are deferred.
fn summary(slug: &str, done: &Delivered, c: &Counts, stopped: bool, next: Option<i64>) -> String {
    let secs = done.started.elapsed().as_secs_f64();
    let st = &done.report.stats;
    let n = |x: &std::sync::atomic::AtomicUsize| x.load(Ordering::Relaxed);
    let sent = n(&st.sent);
    let first = match done.snapshot {
        Some(n) => format!("{n} subscriber(s) snapshotted; "),
        None => String::new(),
    };
    let mut line = format!(
        "{slug}: {first}this run sent {sent}, deferred {}, failed {}, unknown {}, skipped {} of {} due in {secs:.1} s ({:.0} msg/s); ledger: {}",
        n(&st.deferred) + n(&st.not_attempted),
        n(&st.failed),
        n(&st.unknown),
        n(&st.skipped),
        done.due,
        sent as f64 / secs.max(0.001),
        c.one_line()
    );
    if let Some(e) = &done.report.connect_error {
        if n(&st.not_attempted) > 0 {
            line.push_str(&format!("; stopped early: {e}"));
        }
    }
    if n(&st.requeued) > 0 {
        line.push_str(&format!(
            "; {} put back to pending by the stop",
            n(&st.requeued)
        ));
    }
    if stopped {
        line.push_str("; interrupted");
    }
    if let Some(next) = next {
        line.push_str(&format!("; next attempt after {}", fmt_unix(next)));
    }
    line
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

/// Before mailing an issue: its own warnings are shown (a misspelled `pubished: false`
/// would otherwise mail a draft silently), and an issue still holding the placeholder text
/// of the `issue.md` template is refused; a test copy of one only warns.
fn check_issue(ctx: &Ctx, issue: &Issue, warnings: &[Diagnostic], testing: bool) -> Result<()> {
    if !ctx.quiet && !ctx.verbose {
        for d in warnings.iter().filter(|d| d.path == issue.path) {
            eprintln!("{d}");
        }
    }
    if let Some(phrase) = crate::issue::placeholder::in_issue(issue) {
        let what = crate::issue::placeholder::message(phrase);
        if !testing {
            bail!("not sending {}: {what}", issue.path.display());
        }
        eprintln!("warning: {}: {what}", issue.path.display());
    }
    Ok(())
}

/// Every issue of the folder and the warnings. Prints its errors as `check` does; any error
/// in any file is fatal, since a send from a folder that does not parse could mail the
/// wrong file.
fn load_issues(ctx: &Ctx) -> Result<(Vec<Issue>, Vec<Diagnostic>)> {
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
    let warnings = loaded.diagnostics.into_iter().filter(|d| !d.is_error());
    Ok((loaded.issues, warnings.collect()))
}

fn test_copy(ctx: &Ctx, composer: &Composer, slug: &str, to: &str) -> Result<Exit> {
    let address = Address::parse(to)?;
    let (envelope, bytes) = composer.wire(&Recipient {
        address: address.clone(),
        name: None,
    })?;
    let target = Target::new(ctx.config.smtp_endpoint()?, ctx.secrets.smtp_password())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = rt.block_on(async {
        let mut c = target.connect().await?;
        let o = c.send(target.timeout, &envelope, &bytes).await;
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
            Ok(Exit::Ok)
        }
        Outcome::Fail { reply: r, .. }
        | Outcome::Defer(r)
        | Outcome::Retry(r)
        | Outcome::Unknown(r)
        | Outcome::Abort(r) => bail!("{slug}: the test copy to {address} was not accepted: {r}"),
    }
}

/// `flock` on `<state db>.lock`: one send per state file; the kernel drops it with the process.
pub(crate) struct SendLock {
    _file: std::fs::File,
}

impl SendLock {
    /// `None` (after saying so on stderr) when another send holds the lock.
    pub(crate) fn acquire(db: &Path) -> Result<Option<SendLock>> {
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
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(e) if e.kind() == fs4::lock_contended_error().kind() => {
                eprintln!(
                    "another `techshack send` is running on {} (it holds {}): nothing done, try again later",
                    db.display(),
                    path.display()
                );
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}
