//! The throwaway PostgreSQL cluster of the tests: a database per call, isolated from the
//! others, and the cluster gone (server stopped, folder removed) once the test process exits.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pg;

/// `psql URL -c SQL` with errors fatal; its unaligned output.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(pg::server_bin_dir().join("psql"))
        .args([
            url,
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn each_database_url_is_a_fresh_isolated_database() {
    let a = pg::database_url();
    let b = pg::database_url();
    assert_ne!(a, b);
    for url in [&a, &b] {
        assert!(url.starts_with("postgres://techshack@127.0.0.1:"), "{url}");
        assert_eq!(
            psql(
                url,
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ),
            "0"
        );
    }
    psql(
        &a,
        "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7)",
    );
    assert_eq!(psql(&a, "SELECT x FROM only_in_a"), "7");
    assert_eq!(
        psql(
            &b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
    assert_eq!(
        psql(&b, "SELECT current_database()"),
        b.rsplit('/').next().unwrap()
    );
}

/// Set in the child process of `the_cluster_is_gone_once_its_test_process_exits`.
const CHILD: &str = "TECHSHACK_PG_CLUSTER_CHILD";

/// Starts this process's cluster and checks a database works; as the child of the test below
/// (`$TECHSHACK_PG_CLUSTER_CHILD` set), also prints its port, folder and timings.
#[test]
#[ignore = "run in a child process by the_cluster_is_gone_once_its_test_process_exits"]
fn cluster_of_a_child_process() {
    let t = Instant::now();
    let first = pg::database_url();
    let first_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let later = pg::database_url();
    let later_ms = t.elapsed().as_millis();
    assert_eq!(psql(&first, "SELECT 1"), "1");
    assert_eq!(psql(&later, "SELECT 1"), "1");
    if std::env::var_os(CHILD).is_some() {
        let port = first.split(':').nth(2).unwrap().split('/').next().unwrap();
        let dir = pg::cluster_dir();
        println!(
            "pg-child port={port} first_ms={first_ms} later_ms={later_ms} dir={}",
            dir.display()
        );
    }
}

#[test]
fn the_cluster_is_gone_once_its_test_process_exits() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_cluster::cluster_of_a_child_process",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary runs again");
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child test process did not end within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "child failed: {out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("pg-child "))
        .unwrap_or_else(|| panic!("{out}"));
    eprintln!("{line}");
    let field = |k: &str| {
        line.split(' ')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let port: u16 = field("port=").parse().unwrap();
    let dir = PathBuf::from(line.split_once(" dir=").unwrap().1);
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    let exited = Instant::now();
    loop {
        let refused =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
                .is_err();
        if refused && !dir.exists() {
            eprintln!(
                "cluster gone {} ms after the child's exit",
                exited.elapsed().as_millis()
            );
            break;
        }
        assert!(
            exited.elapsed() < Duration::from_secs(10),
            "10 s after the child's exit: port {port} refused: {refused}, {} exists: {}",
            dir.display(),
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
