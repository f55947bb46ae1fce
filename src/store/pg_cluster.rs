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
//! stops the server (`pg_ctl stop -m immediate`) and removes the folder. It runs in a session
//! of its own (`setsid`), so neither a Ctrl-C of the tests nor the end of their terminal session
//! ends it before the cleanup.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
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
    let n = NEXT_DB.fetch_add(1, Ordering::Relaxed);
    let name = format!("t_{}_{n}", std::process::id());
    let port = c.port.to_string();
    let host = c.dir.to_str().expect("temp dir is UTF-8");
    run(Command::new(c.bin.join("createdb")).args(["-h", host, "-p", &port, "-U", ROLE, &name]))
        .unwrap_or_else(|e| panic!("createdb {name}: {e}"));
    format!("postgres://{ROLE}@127.0.0.1:{}/{name}", c.port)
}

/// The folder of the cluster's binaries (`psql`, `createdb`, ...), of the version the tests run.
#[allow(dead_code)]
pub fn server_bin_dir() -> PathBuf {
    find_bin_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// The cluster's folder (data, log and Unix socket), removed once this process has exited.
#[allow(dead_code)]
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
    let uid = std::fs::metadata("/proc/self")
        .map_err(|e| e.to_string())?
        .uid();
    let user = (uid == 0).then_some("postgres");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("techshack-pg-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The watchdog first, so that even a half-started cluster is cleaned up.
    let mut stop = command(&bin.join("pg_ctl"), user);
    stop.args(["stop", "-m", "immediate", "-D"])
        .arg(dir.join("data"));
    let script = r#"dir=$1; shift; read _; "$@" >/dev/null 2>&1; rm -rf "$dir""#;
    let watchdog = Command::new("setsid")
        .args(["sh", "-c", script, "sh"])
        .arg(&dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("setsid sh (the watchdog): {e}"))?
        .stdin
        .expect("piped stdin");
    if user.is_some() {
        run(Command::new("chown").arg("postgres:").arg(&dir))
            .map_err(|e| format!("{e}: as root, the cluster runs as the `postgres` user"))?;
    }
    let port = init_and_start(&bin, &dir, user)?;
    Ok(Cluster {
        bin,
        dir,
        port,
        _watchdog: watchdog,
    })
}

/// `initdb` and `pg_ctl start` in `dir`; the port the server listens on.
fn init_and_start(bin: &Path, dir: &Path, user: Option<&str>) -> Result<u16, String> {
    let data = dir.join("data");
    let args = [
        "--auth=trust",
        "--no-sync",
        "--encoding=UTF8",
        "--locale=C",
        "-U",
        ROLE,
    ];
    run(command(&bin.join("initdb"), user)
        .args(args)
        .arg("-D")
        .arg(&data)
        .current_dir(dir))?;
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
        let started = run(command(&bin.join("pg_ctl"), user)
            .args(["start", "-w", "-t", "60", "-o", &format!("-p {port}"), "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .current_dir(dir));
        let Err(e) = started else { return Ok(port) };
        last = e;
        if !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("could not bind")) {
            break;
        }
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail = text.lines().rev().take(30).collect::<Vec<_>>();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(format!(
        "{last}\nthe end of {}:\n{tail}\n({INSTALL})",
        log.display()
    ))
}
