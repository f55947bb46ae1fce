//! A throwaway PostgreSQL cluster for the tests: one per test process, a fresh empty database
//! per call of [`database_url`].
//!
//! Std only and free of the rest of the crate, so the library's unit tests and the integration
//! suite (through `#[path]`) compile the same file. The cluster is Debian's `postgresql` of the
//! highest version under `/usr/lib/postgresql`, initialised into a new folder of the temp dir
//! (trust authentication, role `techshack`, `fsync=off`), listening on 127.0.0.1 at a free port
//! and on a Unix socket in that folder. As root, `initdb` and the server run as the `postgres`
//! system user, since PostgreSQL refuses to run as root.
//!
//! Tests end with `std::process::exit`, so nothing is dropped: a watchdog shell started before
//! the cluster waits for the end of its standard input, a pipe only this process holds, and then
//! stops the server (`pg_ctl stop -m immediate`) and removes the folder. It runs in its own
//! process group, so a Ctrl-C of the tests does not end it before the cleanup.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const ROLE: &str = "techshack";
const INSTALL: &str = "install Debian's `postgresql` (scripts/setup-test-deps does)";

struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The watchdog's standard input: its end, at this process's exit, starts the cleanup.
    _watchdog: ChildStdin,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("the test PostgreSQL cluster did not start: {e}"),
    }
}

/// A new empty database in this process's cluster (started on the first call), as a URL:
/// `postgres://techshack@127.0.0.1:PORT/t_<pid>_<n>`.
pub fn database_url() -> String {
    let c = cluster();
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let port = c.port.to_string();
    let host = c.dir.to_str().expect("temp dir is UTF-8");
    run(Command::new(c.bin.join("createdb")).args(["-h", host, "-p", &port, "-U", ROLE, &name]))
        .unwrap_or_else(|e| panic!("createdb {name}: {e}"));
    format!("postgres://{ROLE}@127.0.0.1:{}/{name}", c.port)
}

/// The folder of the cluster's binaries (`psql`, `createdb`, ...), of the version the tests run.
pub fn server_bin_dir() -> PathBuf {
    match find_bin_dir() {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The cluster's folder (data, log and Unix socket), removed once this process has exited.
pub fn cluster_dir() -> PathBuf {
    cluster().dir.clone()
}

fn find_bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let versions =
        std::fs::read_dir(root).map_err(|e| format!("{}: {e}: {INSTALL}", root.display()))?;
    versions
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|v| root.join(format!("{v}/bin/initdb")).exists())
        .max()
        .map(|v| root.join(format!("{v}/bin")))
        .ok_or_else(|| format!("no {}/*/bin/initdb: {INSTALL}", root.display()))
}

/// `program`, run as `user` when given.
fn command(program: &Path, user: Option<&str>) -> Command {
    match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Runs `cmd`, its standard input empty; Err holds its output.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{:?} failed ({}):\n{}{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn start() -> Result<Cluster, String> {
    let bin = find_bin_dir()?;
    let is_root = std::fs::metadata("/proc/self")
        .map_err(|e| e.to_string())?
        .uid()
        == 0;
    let user = is_root.then_some("postgres");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("techshack-pg-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let data = dir.join("data");
    // The watchdog first, so even a half-started cluster is cleaned up.
    let mut stop = user.map_or_else(Vec::new, |u| vec!["runuser", "-u", u, "--"]);
    let pg_ctl = bin.join("pg_ctl");
    stop.extend([
        pg_ctl.to_str().ok_or("bin path is not UTF-8")?,
        "stop",
        "-m",
        "immediate",
        "-D",
    ]);
    let watchdog = Command::new("sh")
        .args([
            "-c",
            r#"dir=$1; shift; read _; "$@" "$dir/data" >/dev/null 2>&1; rm -rf "$dir""#,
            "sh",
        ])
        .arg(&dir)
        .args(&stop)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("sh (the watchdog): {e}"))?;
    let watchdog = watchdog.stdin.expect("piped stdin");
    if is_root {
        run(Command::new("chown").arg("postgres:").arg(&dir)).map_err(|e| {
            format!("{e}: as root the cluster runs as the `postgres` user; {INSTALL}")
        })?;
    }
    run(command(&bin.join("initdb"), user)
        .args([
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            ROLE,
            "-D",
        ])
        .arg(&data)
        .current_dir(&dir))?;
    let conf = format!(
        "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n\
         synchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
        dir.display()
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .map_err(|e| format!("postgresql.conf: {e}"))?;
    let log = dir.join("server.log");
    let mut last = String::new();
    // A free port can be taken by another process before the server binds it: try again.
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let started = run(command(&pg_ctl, user)
            .args(["start", "-w", "-t", "60", "-o", &format!("-p {port}"), "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .current_dir(&dir));
        match started {
            Ok(()) => {
                return Ok(Cluster {
                    bin,
                    dir,
                    port,
                    _watchdog: watchdog,
                })
            }
            Err(e) => last = e,
        }
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{last}\nserver log {}:\n{}\n({INSTALL})",
        dir.display(),
        tail.join("\n")
    ))
}
