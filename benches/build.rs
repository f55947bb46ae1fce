//! `techshack build` over This Week in Rust against pulldown-cmark alone rendering the same
//! files (read, render, one write, one thread): medians of both, their ratio, and the peak
//! resident memory of each.
//!
//! `TECHSHACK_CORPORA=../shared/corpora cargo bench --bench build` (optionally `BENCH_RUNS=N`,
//! default 5). Both sides run as child processes under `/usr/bin/time`, alternately, so they
//! share the machine's state.

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
    let mut base_kib = 0u64;
    let mut build_kib = 0u64;
    println!(
        "config {}\ncorpus {}\nruns {runs}",
        config.display(),
        twir.display()
    );
    for run in 0..=runs {
        let (t, kib) = timed(
            Command::new(&me)
                .arg("--baseline-child")
                .arg(&twir)
                .arg(scratch.join("baseline.html")),
            &scratch,
        );
        let (u, kib2) = timed(
            Command::new(bin)
                .arg("-q")
                .arg("-c")
                .arg(&config)
                .arg("--issues")
                .arg(&twir)
                .arg("build")
                .arg("--out")
                .arg(scratch.join("out")),
            &scratch,
        );
        // The first round warms the page cache and is not counted.
        if run > 0 {
            base.push(t);
            build.push(u);
            base_kib = base_kib.max(kib);
            build_kib = build_kib.max(kib2);
        }
    }
    let mb = median(&mut base);
    let mt = median(&mut build);
    println!(
        "pulldown-cmark alone: median {:.3} s, peak {:.1} MiB",
        mb.as_secs_f64(),
        base_kib as f64 / 1024.0
    );
    println!(
        "techshack build:      median {:.3} s, peak {:.1} MiB",
        mt.as_secs_f64(),
        build_kib as f64 / 1024.0
    );
    println!(
        "ratio {:.2} (target at most 1.5), peak memory target at most 64 MiB",
        mt.as_secs_f64() / mb.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Runs a command under `/usr/bin/time`; its wall time and peak resident set in KiB.
fn timed(cmd: &mut Command, scratch: &Path) -> (Duration, u64) {
    let report = scratch.join("time.txt");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
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
    let kib = std::fs::read_to_string(&report)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .expect("peak memory from /usr/bin/time");
    (elapsed, kib)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
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
