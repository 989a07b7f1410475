//! Cutting a large YAML roster's `people:` sequence into runs of whole entries, so that
//! several threads can parse them at once. YAML parsers read about 20 MB/s; a 200,000-person
//! roster with explicit access is 40 MB, and parsing dominates loading it.
//!
//! The cut is only made where YAML's indentation rules make it safe: at lines that start
//! exactly at the sequence's indentation with `-`. A multi-line string, block scalar or flow
//! collection cannot continue at that indentation, so such a line always begins a new entry.
//! Files with several documents or directives are left whole. The caller parses the pieces
//! and, if any piece fails (an alias to an anchor in another piece, say), parses the whole
//! file instead, so errors and results are always those of one whole parse.

/// A roster cut for parallel parsing.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    /// The file with `people:` made `people: []` and the entries blanked to empty lines, so
    /// every other line keeps its number.
    pub skeleton: String,
    /// Runs of whole entries, each with the 1-based line it starts on.
    pub pieces: Vec<(usize, &'a str)>,
}

/// Cuts `text` into at most `parts` pieces of entries, or None where that is not safe or
/// not worth it.
pub(crate) fn split(text: &str, parts: usize) -> Option<Split<'_>> {
    if parts < 2 {
        return None;
    }
    // (byte offset, line) for every line.
    let mut lines = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") || line.starts_with("...") || line.starts_with('%') {
            return None;
        }
        lines.push((offset, line));
        offset += line.len();
    }
    let people_at = lines.iter().position(|(_, l)| is_people_key(l))?;
    let content = |l: &str| {
        let t = l.trim_start_matches(' ');
        !(t.trim().is_empty() || t.starts_with('#'))
    };
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let first = (people_at + 1..lines.len()).find(|&i| content(lines[i].1))?;
    let indent = indent_of(lines[first].1);
    let starts_entry = |l: &str| {
        indent_of(l) == indent && {
            let rest = &l[indent..];
            rest.starts_with("- ") || rest.trim_end() == "-"
        }
    };
    if !starts_entry(lines[first].1) {
        return None;
    }
    // The sequence ends at the first line with content that is neither an entry's start nor
    // indented under one.
    let mut end = lines.len();
    let mut starts = Vec::new();
    for (i, (_, l)) in lines.iter().enumerate().skip(first) {
        if !content(l) {
            continue;
        }
        if starts_entry(l) {
            starts.push(i);
        } else if indent_of(l) <= indent {
            end = i;
            break;
        }
    }
    if starts.len() < parts * 2 {
        return None;
    }
    let region_start = lines[first].0;
    let region_end = lines.get(end).map_or(text.len(), |(o, _)| *o);
    let target = (region_end - region_start).div_ceil(parts);
    let mut pieces = Vec::with_capacity(parts);
    let mut piece_start = first;
    for &s in &starts {
        if lines[s].0 - lines[piece_start].0 >= target && pieces.len() + 1 < parts {
            pieces.push((piece_start + 1, &text[lines[piece_start].0..lines[s].0]));
            piece_start = s;
        }
    }
    pieces.push((piece_start + 1, &text[lines[piece_start].0..region_end]));

    let people_offset = lines[people_at].0;
    let mut skeleton = String::with_capacity(text.len() - (region_end - region_start) + end);
    skeleton.push_str(&text[..people_offset]);
    skeleton.push_str("people: []\n");
    // The blank lines between `people:` and the first entry, and the entries themselves.
    let blanked = end - people_at - 1;
    skeleton.extend(std::iter::repeat_n('\n', blanked));
    skeleton.push_str(&text[region_end..]);
    Some(Split { skeleton, pieces })
}

/// `people:` at the top level, with nothing after it but a comment.
fn is_people_key(line: &str) -> bool {
    line.strip_prefix("people:").is_some_and(|rest| {
        let rest = rest.trim();
        rest.is_empty() || rest.starts_with('#')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
rules:
  - department: Sales
people:   # everyone
  - email: a@x.example
    title: |
      - not an entry
  # a comment
  - email: b@x.example

  - email: c@x.example
    title: >
      folded
  -
    email: d@x.example
policies: {}
";

    #[test]
    fn entries_are_cut_at_their_own_indentation_and_lines_are_kept() {
        let s = split(TEXT, 2).unwrap();
        assert_eq!(s.pieces.len(), 2);
        assert_eq!(s.pieces[0].0, 4);
        assert!(s.pieces[0].1.starts_with("  - email: a@x.example\n"));
        let second = s.pieces[1];
        assert!(second.1.starts_with("  - email: c@x.example"), "{second:?}");
        assert_eq!(second.0, 10);
        assert!(second.1.ends_with("    email: d@x.example\n"));
        assert_eq!(s.skeleton.lines().count(), TEXT.lines().count());
        assert_eq!(s.skeleton.lines().nth(2), Some("people: []"));
        assert_eq!(s.skeleton.lines().nth(14), Some("policies: {}"));
        let rejoined: String = s.pieces.iter().map(|p| p.1).collect();
        assert!(TEXT.contains(&rejoined));
    }

    #[test]
    fn files_it_cannot_cut_safely_are_left_whole() {
        assert!(split(TEXT, 1).is_none());
        assert!(split(&format!("---\n{TEXT}"), 2).is_none());
        assert!(split("people: [a, b, c, d, e]\n", 2).is_none());
        assert!(split("people:\n  - a\n  - b\n", 2).is_none(), "too few");
        assert!(split("rules: []\n", 2).is_none());
    }
}
