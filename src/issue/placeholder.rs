//! The placeholder text of the built-in `issue.md` template, which `techshack new` writes and
//! the editor is meant to replace: `check` and `build` warn about a published issue that still
//! holds it, and `send` refuses to mail one.

use crate::model::Issue;

/// Sentences and links of `templates/issue.md` that no real issue contains.
pub const PHRASES: [&str; 5] = [
    "The title of the first article",
    "https://example.com/the-first-article",
    "Why it is worth reading, in a few lines.",
    "The title of the second article",
    "Notes on the second article.",
];

/// The first placeholder phrase in a Markdown body, with its byte offset.
pub fn find(body: &str) -> Option<(&'static str, usize)> {
    // Every published issue is searched: memchr's searchers, built once, are several times
    // faster than `str::find` over a long body.
    static FINDERS: std::sync::OnceLock<Vec<memchr::memmem::Finder<'static>>> =
        std::sync::OnceLock::new();
    let finders = FINDERS.get_or_init(|| {
        PHRASES
            .iter()
            .map(|p| memchr::memmem::Finder::new(p.as_bytes()))
            .collect()
    });
    PHRASES
        .iter()
        .zip(finders)
        .filter_map(|(p, f)| f.find(body.as_bytes()).map(|at| (*p, at)))
        .min_by_key(|(_, at)| *at)
}

/// The first placeholder phrase left in an issue's rendered body.
pub fn in_issue(issue: &Issue) -> Option<&'static str> {
    PHRASES.iter().copied().find(|p| issue.html.contains(p))
}

/// What to tell the editor.
pub fn message(phrase: &str) -> String {
    format!(
        "the issue still holds the placeholder text of templates/issue.md (`{phrase}`): replace it with the issue's articles"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phrase_is_in_the_built_in_template() {
        for p in PHRASES {
            assert!(crate::templates::ISSUE_MD.contains(p), "{p}");
        }
        assert_eq!(
            find("intro\n\nNotes on the second article.\n"),
            Some(("Notes on the second article.", 7))
        );
        assert_eq!(find("## A real article\n"), None);
    }
}
