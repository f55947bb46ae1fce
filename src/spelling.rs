//! Which known name a misspelled one most likely stands for, for did-you-mean hints in
//! front matter and configuration errors.

/// The known name `word` is most likely a misspelling of: at most 2 edits away (a swap of two
/// neighbours is one), and fewer edits than half the known name's letters, so that short
/// names (`id`, `date`) do not claim every short word. `None` for a known name itself.
pub fn did_you_mean<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    if word.len() > 40 || known.contains(&word) {
        return None;
    }
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2 && d * 2 < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edits (insert, delete, substitute, swap of neighbours) that turn `a` into `b`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the optimal-string-alignment table.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(row[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
        }
        before = std::mem::replace(&mut prev, row);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_hints() {
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("pubished", "published"), 1);
        assert_eq!(
            did_you_mean("baseurl", &["title", "base_url"]),
            Some("base_url")
        );
        assert_eq!(did_you_mean("to", &["id"]), None);
        assert_eq!(did_you_mean("title", &["title"]), None);
    }
}
