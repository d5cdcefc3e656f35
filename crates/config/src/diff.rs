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

/// How a side-by-side row relates its two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Same,
    /// The old line was replaced by the new one.
    Changed,
    /// Only in the new text.
    Added,
    /// Only in the old text.
    Removed,
}

/// One row of a side-by-side diff: the old text on the left, the new on the
/// right, with 1-based line numbers; a side is empty where it has no line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub kind: RowKind,
    pub left: Option<String>,
    pub right: Option<String>,
    pub left_no: Option<usize>,
    pub right_no: Option<usize>,
}

/// Every line of `old` and `new`, aligned for a two-column view. Replaced
/// runs are paired line by line; the longer side's surplus shows as removed
/// or added. Line endings are not part of the text.
pub fn side_by_side(old: &str, new: &str) -> Vec<Row> {
    use similar::DiffTag;
    let diff = TextDiff::from_lines(old, new);
    let (left, right) = (diff.old_slices(), diff.new_slices());
    let line = |s: &str| s.trim_end_matches(['\n', '\r']).to_owned();
    let mut rows = Vec::new();
    for op in diff.ops() {
        let (tag, l, r) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => rows.extend(l.zip(r).map(|(i, j)| Row {
                kind: RowKind::Same,
                left: Some(line(left[i])),
                right: Some(line(right[j])),
                left_no: Some(i + 1),
                right_no: Some(j + 1),
            })),
            DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                let (l, r): (Vec<usize>, Vec<usize>) = (l.collect(), r.collect());
                for k in 0..l.len().max(r.len()) {
                    let (i, j) = (l.get(k).copied(), r.get(k).copied());
                    let kind = match (i, j) {
                        (Some(_), Some(_)) => RowKind::Changed,
                        (Some(_), None) => RowKind::Removed,
                        _ => RowKind::Added,
                    };
                    rows.push(Row {
                        kind,
                        left: i.map(|i| line(left[i])),
                        right: j.map(|j| line(right[j])),
                        left_no: i.map(|i| i + 1),
                        right_no: j.map(|j| j + 1),
                    });
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::{RowKind, side_by_side, unified};

    #[test]
    fn side_by_side_pairs_replacements_and_numbers_both_sides() {
        let rows = side_by_side("a\nb\nc\nd\n", "a\nB\nB2\nd\ne\n");
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.kind).collect();
        use RowKind::*;
        // b,c → B,B2 is a replacement of two lines by two.
        assert_eq!(kinds, [Same, Changed, Changed, Same, Added]);
        assert_eq!(rows[1].left.as_deref(), Some("b"));
        assert_eq!(rows[1].right.as_deref(), Some("B"));
        assert_eq!((rows[4].left_no, rows[4].right_no), (None, Some(5)));
        assert_eq!(rows[3].left_no, Some(4));
        let removed = side_by_side("a\nx\n", "a\n");
        assert_eq!(removed[1].kind, Removed);
        assert_eq!(removed[1].right, None);
        assert!(side_by_side("same\n", "same\n").iter().all(|r| r.kind == Same));
    }

    #[test]
    fn equal_texts_give_no_diff_and_a_change_shows_both_sides() {
        assert_eq!(unified("a\n", "a\n", "x", "y"), "");
        let diff = unified("a\nb\n", "a\nc\n", "old.yaml", "new.yaml");
        assert!(diff.starts_with("--- old.yaml\n+++ new.yaml\n"), "{diff}");
        assert!(diff.contains("-b\n") && diff.contains("+c\n"), "{diff}");
    }
}
