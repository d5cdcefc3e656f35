//! A readable diff between two configs, for people deciding whether to apply.

use similar::TextDiff;

/// A unified diff of `old` → `new`, with three lines of context; empty when
/// they are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn equal_texts_give_no_diff_and_a_change_shows_both_sides() {
        assert_eq!(unified("a\n", "a\n", "x", "y"), "");
        let diff = unified("a\nb\n", "a\nc\n", "old.yaml", "new.yaml");
        assert!(diff.starts_with("--- old.yaml\n+++ new.yaml\n"), "{diff}");
        assert!(diff.contains("-b\n") && diff.contains("+c\n"), "{diff}");
    }
}
