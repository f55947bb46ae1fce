//! Command-line interface: clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::SubscriberStatus;

/// Publish a Markdown digest newsletter: feeds, web archive, email, and SMTP sending.
#[derive(Debug, Parser)]
#[command(name = "techshack", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: $TECHSHACK_CONFIG, else config/techshack.toml]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Folder of issues, overriding `issues.dir` for this run
    #[arg(long, global = true, value_name = "DIR")]
    pub issues: Option<PathBuf>,

    /// Read TECHSHACK_SECRET and TECHSHACK_SMTP_PASSWORD from FILE: `KEY=value` lines, each
    /// value taken literally (no quotes, no escapes)
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "TECHSHACK_SECRETS_FILE"
    )]
    pub secrets: Option<PathBuf>,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more about what is done
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every feed, archive and web page
    Build(BuildArgs),
    /// Parse every issue (drafts too) and report every problem
    Check,
    /// Write the next issue file from the template
    New(NewArgs),
    /// Write the complete message of an issue for a sample recipient
    Preview(PreviewArgs),
    /// Send an issue to every active subscriber, resumably
    Send(SendArgs),
    /// Show delivery counts of one issue, or of every issue sent so far
    Status(StatusArgs),
    /// Manage the subscriber list
    #[command(subcommand)]
    Subscribers(SubscribersCommand),
    /// Move the state (subscribers, sends, history) between a SQLite file and PostgreSQL
    #[command(subcommand)]
    State(StateCommand),
    /// Serve one-click unsubscribe and double opt-in subscribe over HTTP
    Serve(ServeArgs),
    /// Read returned mail (bounces, complaints, mailed unsubscribes) and apply it to the list:
    /// one message on standard input, or every message of a Maildir or an mbox file
    Inbound(InboundArgs),
    /// Print shell completions
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout
    Man,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output folder [default: feeds.out]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Base URL overriding `site.base_url`
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Include drafts and future issues
    #[arg(long)]
    pub drafts: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Date of the new issue [default: today in site.timezone]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    /// Title of the new issue
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The issue's slug (its file name without extension)
    pub issue: String,
    /// Write the whole message as an .eml file
    #[arg(long, value_name = "FILE")]
    pub eml: Option<PathBuf>,
    /// Write the HTML part
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the plain-text part
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The issue's slug
    #[arg(required_unless_present = "latest", conflicts_with = "latest")]
    pub issue: Option<String>,
    /// Send the newest published issue of the main feeds, and finish earlier unfinished sends
    #[arg(long)]
    pub latest: bool,
    /// With --latest: refuse a new issue, or an unfinished one, older than this many days
    #[arg(long, value_name = "DAYS", default_value_t = 7, requires = "latest")]
    pub max_age: u32,
    /// Write each message as an .eml file in DIR instead of sending; records nothing (drafts too)
    #[arg(long, value_name = "DIR", conflicts_with = "to")]
    pub dry_run: Option<PathBuf>,
    /// Send one test copy to ADDR; records nothing (drafts too)
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Also retry rows whose delivery is unknown after a crash
    #[arg(long)]
    pub retry_unknown: bool,
    /// Queue the issue's failed deliveries again (after mending a relay or content problem);
    /// never for subscribers now bounced, unsubscribed or erased
    #[arg(long, conflicts_with = "latest")]
    pub retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct InboundArgs {
    /// Read every message of this Maildir not handled yet (new/, and cur/ without the seen
    /// flag); each handled one moves to cur/ with the seen flag
    #[arg(long, value_name = "DIR", conflicts_with = "mbox")]
    pub maildir: Option<PathBuf>,
    /// Read every message of this mbox file (the file is left as it is; a message read twice
    /// changes nothing the second time)
    #[arg(long, value_name = "FILE")]
    pub mbox: Option<PathBuf>,
    /// Keep a copy of each message that was not understood in DIR
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// The envelope recipient the message was delivered to (Postfix pipe:
    /// `${original_recipient}`); local(8) sets $ORIGINAL_RECIPIENT
    #[arg(long, value_name = "ADDR", env = "ORIGINAL_RECIPIENT")]
    pub recipient: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The issue's slug; without it, every issue sent so far
    pub issue: Option<String>,
    /// Write every row that is not sent to FILE as CSV
    #[arg(long, value_name = "FILE", requires = "issue")]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// Import subscribers from a CSV file with an email column (`email`, `Email Address`, ...)
    /// and optionally names and a status; `,` `;` or tab separated, UTF-8
    Import {
        /// The CSV file
        file: PathBuf,
        /// Import the valid rows and warn about the invalid ones
        #[arg(long, conflicts_with = "restore")]
        skip_invalid: bool,
        /// Reproduce an export exactly (statuses, reasons, times, history, erased addresses)
        /// in a state file that holds no subscribers yet: a move or a restore from backup
        #[arg(long)]
        restore: bool,
    },
    /// Add one subscriber
    Add {
        /// The address
        address: String,
        /// The subscriber's name
        #[arg(long)]
        name: Option<String>,
    },
    /// Mark a subscriber unsubscribed (the row is kept)
    Remove {
        /// The address
        address: String,
        /// Why, kept in the subscriber's history
        #[arg(long)]
        reason: Option<String>,
    },
    /// Make an unsubscribed or bounced address active again (an operator's explicit act,
    /// recorded with its reason)
    Reactivate {
        /// The address
        address: String,
        /// Why, kept in the subscriber's history (the subscriber asked by mail, ...)
        #[arg(long)]
        reason: Option<String>,
        /// Also reactivate an address that reported an issue as spam
        #[arg(long)]
        force: bool,
    },
    /// Mark an address bounced: nothing more is sent to it
    Bounce {
        /// The address
        address: String,
        /// Why, kept in the subscriber's history (the server's reply, ...)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Erase an address and its name from every table (GDPR article 17); a keyed hash keeps
    /// it from being imported or added again
    Erase {
        /// The address
        address: String,
    },
    /// List subscribers; with -v, each one's status history too
    List {
        /// Only subscribers in this status: pending, active, unsubscribed, bounced, complained
        #[arg(long, value_name = "S", value_parser = parse_status)]
        status: Option<SubscriberStatus>,
    },
    /// Write every subscriber as CSV on stdout, losslessly (status, reason, times, history)
    Export,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy the state into an empty PostgreSQL database or a new SQLite file, checked by
    /// counting rows
    ///
    /// Copies everything the configured state holds (subscribers, their history, erased
    /// addresses, every send's deliveries, returned mail, the confirmation-mail queue), then
    /// prints each table's rows on both sides (`subscribers 1000 = 1000`) and exits 1 if any
    /// count differs. The configured state is left as it was. Stop `send` and `serve` first:
    /// a copy is refused while a send is running.
    Copy {
        /// Where to copy to: a postgres:// URL (the password may come from $PGPASSWORD) or
        /// the path of a SQLite file, new or holding no state yet
        #[arg(long, value_name = "URL|FILE")]
        to: String,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT [default: serve.listen]
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<String>,
}

/// `--status`: a bad value is a usage error (exit 2), reported by clap.
fn parse_status(s: &str) -> Result<SubscriberStatus, String> {
    s.parse::<SubscriberStatus>().map_err(|e| e.to_string())
}

/// `--listen`: `HOST:PORT` (an IPv6 host in brackets); a bare port or a missing host is a
/// usage error (exit 2).
pub fn parse_listen(s: &str) -> Result<String, String> {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    let bad = || format!("`{s}` is not HOST:PORT: use an address such as 127.0.0.1:8080");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && !host.contains(':')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    match (host_ok, port.parse::<u16>()) {
        (true, Ok(_)) => Ok(s.to_string()),
        _ => Err(bad()),
    }
}
