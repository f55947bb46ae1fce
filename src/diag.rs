//! Diagnostics in the compiler form `path:line:col: error: message`, the `error:` and
//! `warning:` lines every command prints, and the process exit codes.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem found in one file, with a position where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line and column.
    pub pos: Option<(usize, usize)>,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: &Path, pos: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            pos,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(path: &Path, pos: Option<(usize, usize)>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.to_path_buf(),
            pos,
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, col)) = self.pos {
            write!(f, ":{line}:{col}")?;
        }
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, ": {sev}: {}", self.message)
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A run that found problems: every diagnostic, errors and warnings. Shown as one line each.
#[derive(Debug, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The exit status of a command. When one run has several outcomes (`send --latest` over
/// several issues), the worst wins: an error over a deferral, a deferral over success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Error,
    /// A command line that cannot work, as clap reports it.
    Usage,
    /// Deliveries wait for a later run (EX_TEMPFAIL): cron runs the command again.
    TempFail,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::TempFail => 75,
        }
    }

    /// Errors of either kind rank alike, so the first one met is kept.
    fn rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::TempFail => 1,
            Exit::Error | Exit::Usage => 2,
        }
    }

    /// The worse of the two; on a tie, `self`.
    pub fn worst(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// Folds one more outcome in.
    pub fn add(&mut self, other: Exit) {
        *self = self.worst(other);
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// Prints `error: message` to stderr.
pub fn error(message: impl fmt::Display) {
    eprintln!("error: {message}");
}

/// Prints `warning: message` to stderr.
pub fn warning(message: impl fmt::Display) {
    eprintln!("warning: {message}");
}

/// Prints the error a command ended with: a `Diagnostics` one line each and a count, any other
/// error as one `error:` line with its causes.
pub fn report(e: &anyhow::Error) {
    if let Some(d) = e.downcast_ref::<Diagnostics>() {
        eprintln!("{d}");
        let n = d.errors();
        error(format_args!("{n} error{} found", plural(n)));
    } else {
        error(format_args!("{e:#}"));
    }
}

/// What a panic prints instead of Rust's own message: one `error:` line that says it is a bug,
/// what failed and where, and how to get a backtrace. Outputs are staged and deliveries are
/// journaled, so a panic leaves what was there before; the line does not need to say more.
pub fn panic_line(payload: &(dyn std::any::Any + Send), at: Option<String>) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "an unexpected failure".to_owned());
    let what: String = what.chars().filter(|c| !c.is_control()).collect();
    let at = at.map(|l| format!(" (at {l})")).unwrap_or_default();
    format!(
        "error: internal error, a bug in techshack: {what}{at}; please report it with the \
         command line (RUST_BACKTRACE=1 shows where it came from)"
    )
}

/// Installs the hook that prints [`panic_line`] for every panic; with `RUST_BACKTRACE` set,
/// Rust's own report (with the backtrace) follows it.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        eprintln!("{}", panic_line(info.payload(), at));
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            default(info);
        }
    }));
}

/// `"s"` unless `n` is 1.
pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_one_error_line_that_calls_it_a_bug() {
        let p: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        let line = panic_line(p.as_ref(), Some("src/x.rs:3".into()));
        assert!(
            line.starts_with(
                "error: internal error, a bug in techshack: index out of bounds (at src/x.rs:3); "
            ),
            "{line}"
        );
        assert!(!line.contains('\n'));
        // A formatted message, with a control character in it that must not reach the terminal.
        let p: Box<dyn std::any::Any + Send> = Box::new(format!("bad \u{1b}[31mvalue {}", 7));
        let line = panic_line(p.as_ref(), None);
        assert!(line.contains(": bad [31mvalue 7; please report"), "{line}");
        // Any other payload still names the failure.
        let p: Box<dyn std::any::Any + Send> = Box::new(42u8);
        assert!(panic_line(p.as_ref(), None).contains("an unexpected failure"));
    }

    #[test]
    fn line_col_counts_characters() {
        let t = "ab\ncdé\nf";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 7), (2, 4));
        assert_eq!(line_col(t, 8), (3, 1));
    }

    #[test]
    fn display_is_compiler_like() {
        let d = Diagnostic::error(Path::new("issues/a.md"), Some((3, 7)), "bad date");
        assert_eq!(d.to_string(), "issues/a.md:3:7: error: bad date");
        let d = Diagnostic::warning(Path::new("a.md"), None, "empty issue");
        assert_eq!(d.to_string(), "a.md: warning: empty issue");
    }

    #[test]
    fn the_worst_exit_wins() {
        let mut e = Exit::Ok;
        e.add(Exit::TempFail);
        assert_eq!(e, Exit::TempFail);
        e.add(Exit::Ok);
        assert_eq!(e, Exit::TempFail);
        e.add(Exit::Error);
        assert_eq!(e, Exit::Error);
        e.add(Exit::TempFail);
        assert_eq!(e, Exit::Error);
        assert_eq!(Exit::Error.worst(Exit::Usage), Exit::Error);
        assert_eq!(Exit::Usage.worst(Exit::Error), Exit::Usage);
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [Exit::Ok, Exit::Error, Exit::Usage, Exit::TempFail]
            .iter()
            .map(|e| e.code())
            .collect();
        assert_eq!(codes, [0, 1, 2, 75]);
    }
}
