//! The throwaway PostgreSQL cluster of the tests: a database per call, isolated from the
//! others, and the cluster gone (server stopped, folder removed) once the test process exits.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::pg;

/// `psql URL -c SQL` with errors fatal; its unaligned output.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(pg::server_bin_dir().join("psql"))
        .args([url, "-XqtA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql {url} -c {sql:?}: {err}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn each_database_url_is_a_fresh_isolated_database() {
    let (a, b) = (pg::database_url(), pg::database_url());
    assert_ne!(a, b);
    let tables = "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'";
    for url in [&a, &b] {
        assert!(url.starts_with("postgres://techshack@127.0.0.1:"), "{url}");
        assert_eq!(psql(url, tables), "", "{url} is not empty");
    }
    psql(
        &a,
        "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7)",
    );
    assert_eq!(psql(&a, "SELECT x FROM only_in_a"), "7");
    assert_eq!(psql(&a, tables), "only_in_a");
    assert_eq!(psql(&b, tables), "");
    let name = b.rsplit('/').next().unwrap();
    assert_eq!(psql(&b, "SELECT current_database()"), name);
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
        println!("pg-child {port} {first_ms} {later_ms} {}", dir.display());
    }
}

#[test]
fn the_cluster_is_gone_once_its_test_process_exits() {
    // `timeout` bounds the child; its output is read once it has exited.
    let out = Command::new("timeout")
        .arg("90")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "--ignored", "--nocapture"])
        .arg("pg_cluster::cluster_of_a_child_process")
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs again");
    let exited = Instant::now();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {text}{err}");
    let line = text.lines().find(|l| l.starts_with("pg-child "));
    let line = line.expect("the child's report");
    eprintln!("pg-child PORT FIRST_MS LATER_MS DIR: {line}");
    let fields: Vec<&str> = line.splitn(5, ' ').collect();
    let (port, dir): (u16, PathBuf) = (fields[1].parse().unwrap(), fields[4].into());
    assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
    loop {
        let addr = ([127, 0, 0, 1], port).into();
        let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err();
        if refused && !dir.exists() {
            let ms = exited.elapsed().as_millis();
            eprintln!("cluster gone {ms} ms after the child's exit");
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
