//! The pages and the confirmation mail of `serve`, rendered from the crate's one set of
//! templates (see [`crate::templates`]) with the same `site` as the web archive.

use anyhow::Result;
use tera::Context;

use crate::config::Config;
use crate::templates::{SiteCtx, Templates};

/// The templates `serve` renders, each checked when the server starts (`serve_layout.html`
/// is only extended).
const SERVE_PAGES: [&str; 5] = [
    "unsubscribe.html",
    "subscribe.html",
    "confirm.html",
    "notice.html",
    "confirm_email.txt",
];

/// The loaded templates and the site they speak for.
pub struct Pages {
    templates: Templates,
    site: SiteCtx,
}

impl Pages {
    /// The templates of the config (built-ins overridden by `templates.dir`), checked.
    pub fn load(config: &Config) -> Result<Pages> {
        let pages = Pages {
            templates: Templates::load(config)?,
            site: SiteCtx::new(config),
        };
        pages.self_check()?;
        Ok(pages)
    }

    /// Whether `name` is a template (`welcome.txt` exists only in `templates.dir`).
    pub fn has(&self, name: &str) -> bool {
        self.templates.has(name)
    }

    /// Renders `name` with the site and the given values.
    pub fn render(&self, name: &str, values: &[(&str, &str)]) -> Result<String> {
        let mut ctx = Context::new();
        ctx.insert("site", &self.site);
        for (k, v) in values {
            ctx.insert(*k, v);
        }
        self.templates.render(name, &ctx)
    }

    /// A page with a heading, a message and an optional hint.
    pub fn notice(&self, heading: &str, message: &str, hint: Option<&str>) -> Result<String> {
        self.render(
            "notice.html",
            &[
                ("heading", heading),
                ("message", message),
                ("hint", hint.unwrap_or("")),
            ],
        )
    }

    pub fn site_title(&self) -> &str {
        &self.site.title
    }

    /// Renders every template once with sample values, so a broken override stops the
    /// server at start rather than on a visitor's request.
    fn self_check(&self) -> Result<()> {
        let v = [
            ("address", "reader@example.com"),
            ("action", "?token=x"),
            ("confirm_url", "https://example.com/confirm"),
            ("expires", "2000-01-01 00:00 UTC"),
        ];
        for name in SERVE_PAGES {
            if name == "notice.html" {
                self.notice("Heading", "Message", Some("Hint"))?;
                continue;
            }
            self.render(name, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!(
                "[site]\ntitle = \"T <&> Digest\"\nbase_url = \"https://example.org\"\n{extra}"
            ),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn values_are_escaped() {
        let p = Pages::load(&config("")).unwrap();
        let html = p
            .render(
                "unsubscribe.html",
                &[
                    ("address", "<script>alert(1)</script>@x.org"),
                    ("action", "?token=a\"b"),
                ],
            )
            .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("action=\"?token=a&quot;b\""));
        assert!(html.contains("T &lt;&amp;&gt; Digest"));
        assert!(!html.contains("<script"), "no script at all on the page");
    }

    #[test]
    fn confirmation_mail_text_keeps_the_link_whole() {
        let p = Pages::load(&config("")).unwrap();
        let link = format!(
            "https://news.example.org/confirm?token={}&expires=1",
            "t".repeat(120)
        );
        let text = p
            .render(
                "confirm_email.txt",
                &[
                    ("address", "ann@example.net"),
                    ("confirm_url", &link),
                    ("expires", "2026-11-28 07:00 UTC"),
                ],
            )
            .unwrap();
        assert!(text.lines().any(|l| l == link), "{text}");
        assert!(text.contains("ann@example.net") && text.contains("2026-11-28 07:00 UTC"));
        // Plain text is not HTML-escaped.
        assert!(text.contains("T <&> Digest"), "{text}");
        for l in text.lines().filter(|l| *l != link) {
            assert!(l.chars().count() <= 78, "long line: {l}");
        }
    }

    #[test]
    fn user_templates_override_and_broken_ones_fail_at_load() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("notice.html"), "<p>custom {{ heading }}</p>").unwrap();
        let c = config(&format!("[templates]\ndir = {:?}\n", d.path()));
        let p = Pages::load(&c).unwrap();
        assert_eq!(p.notice("Hi", "m", None).unwrap(), "<p>custom Hi</p>");
        std::fs::write(d.path().join("confirm.html"), "{% if %}").unwrap();
        let e = Pages::load(&c).err().unwrap();
        assert!(format!("{e:#}").contains("confirm.html"), "{e:#}");
    }
}
