//! `techshack build` over This Week in Rust, and over 4 and 16 copies of it, against
//! pulldown-cmark alone rendering the same files (read, render, one write, one thread):
//! medians of wall and CPU time of both, their ratio, and the peak resident memory of each.
//!
//! `TECHSHACK_CORPORA=../shared/corpora cargo bench --bench build` (optionally `BENCH_RUNS=N`,
//! default 5). Both sides run as child processes under `/usr/bin/time`, alternately, so they
//! share the machine's state. Every build writes into an empty folder, so each run creates
//! every file rather than finding the previous run's outputs in place; a second build over
//! those outputs (nothing changed) is timed on its own as the rebuild. The outputs and corpus
//! copies stay until the end (about 6 GB of the temporary folder with the default 5 runs, 4.5 GB
//! with `BENCH_RUNS=3`), so no timed build follows a mass deletion (see the comment in `main`).

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

    println!(
        "config {}\ncorpus {} (and copies of it: 1, 4, 16)\nruns {runs}",
        config.display(),
        twir.display()
    );
    let mut one_copy = None;
    for copies in COPIES {
        let corpus = copy_corpus(&twir, &scratch.join(format!("corpus-{copies}")), copies);
        let mut base = Vec::new();
        let mut build = Vec::new();
        let mut rebuild = Vec::new();
        for run in 0..=runs {
            let b = timed(
                Command::new(&me)
                    .arg("--baseline-child")
                    .arg(&corpus)
                    .arg(scratch.join("baseline.html")),
                &scratch,
            );
            // A new folder each round, and nothing deleted until every size is timed: ext4
            // without a journal skips each inode freed in the last 30 seconds
            // (`recently_deleted`) on every file it creates, so a build timed after the last
            // round's outputs were deleted pays for every file deleted, once per file created.
            let out = scratch.join(format!("out-{copies}-{run}"));
            let techshack = || {
                let mut c = Command::new(bin);
                c.arg("-q")
                    .arg("-c")
                    .arg(&config)
                    .arg("--issues")
                    .arg(&corpus)
                    .arg("build")
                    .arg("--out")
                    .arg(&out);
                c
            };
            let t = timed(&mut techshack(), &scratch);
            // The rebuild is timed over one copy only.
            let r = (copies == 1).then(|| timed(&mut techshack(), &scratch));
            // The first round warms the page cache and is not counted.
            if run > 0 {
                base.push(b);
                build.push(t);
                rebuild.extend(r);
            }
        }
        println!(
            "\n{copies} {}:",
            if copies == 1 { "copy" } else { "copies" }
        );
        report("pulldown-cmark alone", &base);
        report("techshack build", &build);
        if !rebuild.is_empty() {
            report("rebuild, no change", &rebuild);
        }
        let ratio = |f: fn(&Cost) -> Duration| {
            median(build.iter().map(f).collect()).as_secs_f64()
                / median(base.iter().map(f).collect()).as_secs_f64()
        };
        println!(
            "ratio of medians: wall {:.2}, cpu {:.2}",
            ratio(|c| c.wall),
            ratio(|c| c.cpu)
        );
        let wall = median(build.iter().map(|c| c.wall).collect()).as_secs_f64();
        match one_copy {
            None => one_copy = Some(wall),
            Some(one) => println!("build wall time {:.1}x one copy's", wall / one),
        }
    }
    println!(
        "\ntargets: one copy wall at most 1.0x pulldown-cmark and peak at most 32 MiB; \
         16 copies peak at most 64 MiB and wall at most 20x one copy's"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// How many copies of the corpus each size of the benchmark builds.
const COPIES: [usize; 3] = [1, 4, 16];

/// Fills `dir` with `copies` copies of the issues in `corpus`, each a distinct issue: copy `c`
/// moves every year `20 * c` years back, in the file name and in the `Date:` line, so the
/// copies keep valid dates in the past and never share a slug or an id.
fn copy_corpus(corpus: &Path, dir: &Path, copies: usize) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("corpus copy folder");
    let shift = |year: &str, c: usize| -> Option<String> {
        let y: usize = year.parse().ok()?;
        Some(format!("{:04}", y - 20 * c))
    };
    for entry in std::fs::read_dir(corpus).expect("corpus folder") {
        let path = entry.expect("corpus entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !path.is_file() || name.starts_with('.') {
            continue;
        }
        let text = std::fs::read(&path).expect("corpus file");
        for c in 0..copies {
            let (name, text) = if c == 0 {
                (name.to_string(), text.clone())
            } else {
                let name = match name.get(..4).and_then(|y| shift(y, c)) {
                    Some(y) => format!("{y}{}", &name[4..]),
                    None => format!("copy{c}-{name}"),
                };
                let text = String::from_utf8_lossy(&text)
                    .split_inclusive('\n')
                    .map(|line| match line.strip_prefix("Date: ") {
                        Some(rest) => match rest.get(..4).and_then(|y| shift(y, c)) {
                            Some(y) => format!("Date: {y}{}", &rest[4..]),
                            None => line.to_string(),
                        },
                        None => line.to_string(),
                    })
                    .collect::<String>()
                    .into_bytes();
                (name, text)
            };
            std::fs::write(dir.join(name), text).expect("writing a corpus copy");
        }
    }
    dir.to_path_buf()
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
