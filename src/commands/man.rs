//! `techshack man`: one manual page (roff) with every command and its flags, the exit
//! statuses, the environment variables and the files, generated from the clap definitions so
//! it cannot drift from `--help`.

use std::io::Write;

use anyhow::Result;
use clap::{Arg, Command};

/// Writes the whole page.
pub fn render(w: &mut dyn Write) -> Result<()> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    writeln!(w, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands() {
        command(w, sub)?;
    }
    w.write_all(TAIL.as_bytes())?;
    man.render_version_section(w)?;
    Ok(())
}

/// One command: its usage line, what it does and its own arguments; then its subcommands.
fn command(w: &mut dyn Write, sub: &Command) -> Result<()> {
    if sub.get_name() == "help" {
        return Ok(());
    }
    let mut c = sub.clone();
    let usage = c.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage:").trim();
    writeln!(w, ".SS \"{}\"", escape(usage).replace('"', "\\(dq"))?;
    if let Some(about) = sub.get_long_about().or(sub.get_about()) {
        writeln!(w, "{}", escape(&about.to_string()))?;
    }
    for a in sub.get_arguments().filter(|a| own(a)) {
        writeln!(w, ".TP")?;
        writeln!(w, "{}", arg_head(a))?;
        if let Some(h) = a.get_long_help().or(a.get_help()) {
            writeln!(w, "{}", escape(&h.to_string()))?;
        }
        let values: Vec<String> = a
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !values.is_empty() && a.get_long().is_none() && a.get_short().is_none() {
            writeln!(w, ".br\nOne of: {}.", escape(&values.join(", ")))?;
        }
        let defaults: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
        if takes_value && !defaults.is_empty() {
            writeln!(w, ".br\nDefault: {}.", escape(&defaults.join(", ")))?;
        }
    }
    for s in sub.get_subcommands() {
        command(w, s)?;
    }
    Ok(())
}

/// An argument of this command, not a global flag or the generated help and version.
fn own(a: &Arg) -> bool {
    !a.is_global_set() && !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

/// `\fB\-\-out\fR \fIDIR\fR`, `\fB\-q\fR, \fB\-\-quiet\fR` or `\fIISSUE\fR`.
fn arg_head(a: &Arg) -> String {
    let value = a
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
    let mut names = Vec::new();
    if let Some(s) = a.get_short() {
        names.push(format!("\\fB\\-{}\\fR", escape(&s.to_string())));
    }
    if let Some(l) = a.get_long() {
        names.push(format!("\\fB\\-\\-{}\\fR", escape(l)));
    }
    if names.is_empty() {
        return format!("\\fI{}\\fR", escape(&value));
    }
    let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
    let mut head = names.join(", ");
    if takes_value {
        head.push_str(&format!(" \\fI{}\\fR", escape(&value)));
    }
    head
}

/// Text as roff shows it literally: backslashes and hyphens escaped, no line starting a
/// request.
fn escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const TAIL: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Done: every delivery of a send made, or nothing to do.
.TP
\fB1\fR
An error: bad input or configuration (reported as \fIpath\fR:\fIline\fR:\fIcol\fR: error: ...),
a refused SMTP authentication, an issue that cannot be sent.
.TP
\fB2\fR
Bad usage: an unknown command or flag, or a flag value that cannot work.
.TP
\fB75\fR
(EX_TEMPFAIL) \fBsend\fR left deliveries deferred for a later run: run it again later.
For \fBinbound\fR: the state file is busy or cannot be written; a mail system keeps the
message and delivers it again. \fBinbound\fR exits 0 for any message it could not read, so a
mail system never bounces a report back.
.SH ENVIRONMENT
.TP
\fBTECHSHACK_CONFIG\fR
The configuration file when \fB\-\-config\fR is not given (else \fIconfig/techshack.toml\fR).
.TP
\fBTECHSHACK_SECRET\fR
The secret that signs unsubscribe and confirmation tokens; needed by \fBpreview\fR, \fBsend\fR
and \fBserve\fR. Keep it the same for as long as mailed links must work.
.TP
\fBTECHSHACK_SMTP_PASSWORD\fR
The password of \fBsmtp.username\fR for \fBsend\fR and \fBserve\fR.
.TP
\fBTECHSHACK_SECRETS_FILE\fR
A file to read both secrets from when \fB\-\-secrets\fR is not given: \fIKEY\fR=\fIvalue\fR
lines, each value taken literally to the end of its line.
.TP
\fBTECHSHACK_NOW\fR
For tests only: an RFC 3339 time taken as the current time by \fBbuild\fR, \fBnew\fR and
\fBpreview\fR.
.TP
\fBORIGINAL_RECIPIENT\fR
The envelope recipient of the message \fBinbound\fR reads, when \fB\-\-recipient\fR is not
given (Postfix's local delivery to a command sets it).
.TP
\fBRUST_LOG\fR
A tracing filter for \fBserve\fR's log lines (for example \fIinfo\fR).
.SH FILES
.TP
\fIconfig/techshack.toml\fR
The default configuration; relative paths in it resolve against its own folder.
.TP
\fIissues/\fR
The issues (\fBissues.dir\fR): one \fI*.md\fR or \fI*.markdown\fR file per issue.
.TP
\fItemplates/\fR
Templates (\fBtemplates.dir\fR) that replace the built\-in ones file by file.
.TP
\fIpublic/\fR
What \fBbuild\fR writes (\fBfeeds.out\fR), with its list of outputs \fI.techshack\-outputs\fR.
.TP
\fIstate/techshack.sqlite3\fR
The subscribers and the delivery ledger (\fBstate.db\fR), and its lock file next to it.
"#;
