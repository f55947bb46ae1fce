//! The parser against pulldown-cmark alone over This Week in Rust (`$TECHSHACK_CORPORA/twir`).
//!
//! `cargo bench --bench parse`. Prints the median of several runs of: pulldown-cmark reading
//! and rendering every file on one thread (the floor), `parse_issue` over every file on one
//! thread, and `load_all` (parallel).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use techshack::config::Config;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(runs: usize, f: &mut dyn FnMut()) -> Duration {
    let t = Instant::now();
    f();
    let first = t.elapsed();
    if runs == 0 {
        return first;
    }
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let corpora = std::env::var_os("TECHSHACK_CORPORA")
        .expect("set TECHSHACK_CORPORA to the corpora folder (../shared/corpora)");
    let dir = PathBuf::from(corpora).join("twir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::load(&root.join("examples/twir/techshack.toml")).expect("config");
    config.issues.dir = dir.clone();
    let files = techshack::issue::issue_files(&dir).expect("twir folder");
    // Under load, wall time is noisy: `STAGE=<name>` runs one stage once, for `perf stat`.
    let only = std::env::var("STAGE").ok();
    let runs = if only.is_some() { 0 } else { 7 };
    let time = |name: &str, runs: usize, f: &mut dyn FnMut()| -> Duration {
        match &only {
            Some(o) if o != name => Duration::ZERO,
            _ => time(runs, f),
        }
    };

    let floor = time("floor", runs, &mut || {
        for f in &files {
            let s = std::fs::read_to_string(f).expect("read");
            let mut out = String::new();
            pulldown_cmark::html::push_html(
                &mut out,
                pulldown_cmark::Parser::new_ext(&s, techshack::render::options()),
            );
            black_box(out);
        }
    });
    let settings_for = |slug: &str| config.issue_url(slug);
    let doc_only = time("doc_only", runs, &mut || {
        for f in &files {
            let s = std::fs::read_to_string(f).expect("read");
            let page = settings_for("x");
            let settings = techshack::render::Settings {
                base_url: &config.site.base_url,
                page_url: &page,
                components: &config.components,
            };
            let d = techshack::render::Doc::parse(&s, &settings);
            black_box(&d);
        }
    });
    let doc_html = time("doc_html", runs, &mut || {
        for f in &files {
            let s = std::fs::read_to_string(f).expect("read");
            let page = settings_for("x");
            let settings = techshack::render::Settings {
                base_url: &config.site.base_url,
                page_url: &page,
                components: &config.components,
            };
            let d = techshack::render::Doc::parse(&s, &settings);
            black_box(d.html(0..d.events.len()));
        }
    });
    let doc_text = time("doc_text", runs, &mut || {
        for f in &files {
            let s = std::fs::read_to_string(f).expect("read");
            let page = settings_for("x");
            let settings = techshack::render::Settings {
                base_url: &config.site.base_url,
                page_url: &page,
                components: &config.components,
            };
            let d = techshack::render::Doc::parse(&s, &settings);
            let all = 0..d.events.len();
            black_box(d.html_of(std::slice::from_ref(&all)));
            black_box(d.text_of(std::slice::from_ref(&all)));
        }
    });
    let single = time("single", runs, &mut || {
        for f in &files {
            let b = std::fs::read(f).expect("read");
            black_box(techshack::issue::parse_issue(&config, f, &b));
        }
    });
    let all = time("all", runs, &mut || {
        black_box(techshack::issue::load_all(&config).expect("load"));
    });
    println!("files: {}", files.len());
    println!("pulldown-cmark alone, 1 thread: {floor:.2?}");
    let ratio = |d: Duration| d.as_secs_f64() / floor.as_secs_f64();
    println!(
        "Doc::parse, 1 thread:           {doc_only:.2?} ({:.2}x)",
        ratio(doc_only)
    );
    println!(
        "Doc::parse + html, 1 thread:    {doc_html:.2?} ({:.2}x)",
        ratio(doc_html)
    );
    println!(
        "Doc::parse + html + text:       {doc_text:.2?} ({:.2}x)",
        ratio(doc_text)
    );
    println!(
        "parse_issue, 1 thread:          {single:.2?} ({:.2}x)",
        single.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "load_all, parallel:             {all:.2?} ({:.2}x)",
        all.as_secs_f64() / floor.as_secs_f64()
    );
}
