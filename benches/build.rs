//! `techshack build` over This Week in Rust against pulldown-cmark alone rendering the same
//! files (read, render, one write, one thread): medians of both, their ratio, and the peak
//! resident memory of each.
//!
//! `TECHSHACK_CORPORA=../shared/corpora cargo bench --bench build` (optionally `BENCH_RUNS=N`,
//! default 5). Both sides run as child processes under `/usr/bin/time`, alternately, so they
//! share the machine's state. Every build writes into an empty folder, so each run creates
//! every file rather than finding the previous run's outputs in place; a second build over
//! those outputs (nothing changed) is timed on its own as the rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--baseline-child") {
        let dir = PathBuf::from(&args[i + 1]);
        let out = PathBuf::from(&args[i + 2]);
        baseline(&dir, &out);
        return;
    }
    let corpora = std::env::var_os("TECHSHACK_CORPORA")
        .expect("set TECHSHACK_CORPORA to the corpora folder (../shared/corpora)");
    let twir = PathBuf::from(corpora).join("twir");
    assert!(twir.is_dir(), "{} is not a folder", twir.display());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("examples/twir/techshack.toml");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bin = env!("CARGO_BIN_EXE_techshack");
    let me = std::env::current_exe().expect("own path");
    let scratch = std::env::temp_dir().join(format!("techshack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch folder");

    let mut base = Vec::new();
    let mut build = Vec::new();
    let mut rebuild = Vec::new();
    println!(
        "config {}\ncorpus {}\nruns {runs}",
        config.display(),
        twir.display()
    );
    for run in 0..=runs {
        let b = timed(
            Command::new(&me)
                .arg("--baseline-child")
                .arg(&twir)
                .arg(scratch.join("baseline.html")),
            &scratch,
        );
        // A new folder each round: deleting the last one first would time ext4 skipping the
        // just-freed inodes (`recently_deleted`) on every file created.
        let out = scratch.join(format!("out-{run}"));
        let techshack = || {
            let mut c = Command::new(bin);
            c.arg("-q")
                .arg("-c")
                .arg(&config)
                .arg("--issues")
                .arg(&twir)
                .arg("build")
                .arg("--out")
                .arg(&out);
            c
        };
        let t = timed(&mut techshack(), &scratch);
        let r = timed(&mut techshack(), &scratch);
        // The first round warms the page cache and is not counted.
        if run > 0 {
            base.push(b);
            build.push(t);
            rebuild.push(r);
        }
    }
    report("pulldown-cmark alone", &base);
    report("techshack build", &build);
    report("rebuild, no change", &rebuild);
    let ratio = |f: fn(&Cost) -> Duration| {
        median(build.iter().map(f).collect()).as_secs_f64()
            / median(base.iter().map(f).collect()).as_secs_f64()
    };
    println!(
        "ratio of medians: wall {:.2}, cpu {:.2} (target: wall at most 1.5)",
        ratio(|c| c.wall),
        ratio(|c| c.cpu)
    );
    println!("peak memory target: at most 64 MiB");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// What one run cost.
struct Cost {
    wall: Duration,
    /// User plus system CPU time, which the other processes of a busy machine disturb less.
    cpu: Duration,
    /// Peak resident set, KiB.
    kib: u64,
}

/// Runs a command under `/usr/bin/time`.
fn timed(cmd: &mut Command, scratch: &Path) -> Cost {
    let report = scratch.join("time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&report)
        .arg(&program)
        .args(&args)
        .status()
        .expect("running /usr/bin/time (install the `time` package)");
    let elapsed = start.elapsed();
    assert!(
        status.success(),
        "{} {:?} failed",
        program.to_string_lossy(),
        args
    );
    let report = std::fs::read_to_string(&report).expect("the report of /usr/bin/time");
    let fields: Vec<f64> = report
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(fields.len(), 3, "unexpected /usr/bin/time report: {report}");
    Cost {
        wall: elapsed,
        cpu: Duration::from_secs_f64(fields[1] + fields[2]),
        kib: fields[0] as u64,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(name: &str, runs: &[Cost]) {
    let peak = runs.iter().map(|c| c.kib).max().unwrap_or(0);
    println!(
        "{name:<22} median wall {:.3} s, median cpu {:.3} s, peak {:.1} MiB",
        median(runs.iter().map(|c| c.wall).collect()).as_secs_f64(),
        median(runs.iter().map(|c| c.cpu).collect()).as_secs_f64(),
        peak as f64 / 1024.0
    );
}

/// The floor: every issue read, rendered to HTML by pulldown-cmark and written once.
fn baseline(dir: &Path, out: &Path) {
    use pulldown_cmark::{html, Options, Parser};
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("md" | "markdown")
            )
        })
        .collect();
    files.sort();
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_FOOTNOTES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let mut html_out = String::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("corpus file");
        html::push_html(&mut html_out, Parser::new_ext(&text, opts));
    }
    std::fs::write(out, html_out).expect("writing the baseline output");
}
