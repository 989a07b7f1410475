//! Text from the apps (names, emails, messages) shown on a terminal. A name can hold escape
//! sequences that recolour or clear the screen, or a newline that forges a row of a table or
//! a line of a plan. Every such character is shown escaped instead.

/// `text` with control characters (C0, DEL, C1), bidirectional overrides and zero-width
/// characters replaced by visible escapes such as `\n` or `\u{1b}`.
pub fn sanitize(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A whole rendered document (an HTML page, a report) with every unsafe character from
/// its data shown escaped, as [`sanitize`] does, except the line breaks and tabs of its own
/// layout. Applied to the finished page, it covers every field of every template: a name's
/// ESC or bidi override can neither drive a terminal that `cat`s the file nor reorder
/// what a reviewer reads in the browser.
pub fn sanitize_document(text: &str) -> String {
    let unsafe_here = |c: char| is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t');
    if !text.chars().any(unsafe_here) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if unsafe_here(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Characters that change how a terminal shows what follows, or hide themselves.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202a}'..='\u{202e}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{feff}'              // zero-width no-break space (BOM)
            | '\u{00ad}'              // soft hyphen
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_newlines_are_shown_not_obeyed() {
        assert_eq!(sanitize("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(
            sanitize("Eve\n  5. [marketo] delete x"),
            "Eve\\n  5. [marketo] delete x"
        );
        assert_eq!(sanitize("\x1b[2J\x1b[31mred"), "\\u{1b}[2J\\u{1b}[31mred");
        assert_eq!(sanitize("a\u{200b}b\u{202e}c"), "a\\u{200b}b\\u{202e}c");
        assert_eq!(sanitize("Zoë Ünal 山田"), "Zoë Ünal 山田");
    }

    #[test]
    fn a_document_keeps_its_layout_and_loses_its_escapes() {
        let page = "<td>\x1b[31mEve\x07</td>\n\t<td>a\u{202e}b</td>\r\n";
        assert_eq!(
            sanitize_document(page),
            "<td>\\u{1b}[31mEve\\u{7}</td>\n\t<td>a\\u{202e}b</td>\r\n"
        );
        assert_eq!(sanitize_document("<p>Zoë</p>\n"), "<p>Zoë</p>\n");
    }
}
