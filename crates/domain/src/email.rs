//! Which email addresses a roster may name. An address is the key that matches a person to
//! accounts in every app, so one that *looks* like another must not get through: a
//! zero-width space makes `ada@acme.example` a different person to every comparison while it
//! reads the same to a reviewer, and a Cyrillic `а` does the same in plain sight.
//!
//! Roster therefore takes addresses in ASCII only (an internationalised domain in its `xn--`
//! form, as the apps store it), and names the offending character and its position.

use crate::text::is_unsafe;

/// Why `email` (already trimmed and lowercased) cannot be an account's address; None if it
/// can. The reason names characters by code point, never by echoing the whole value.
pub fn problem(email: &str) -> Option<String> {
    for (position, c) in email.chars().enumerate() {
        let at = position + 1;
        if is_unsafe(c) || c.is_whitespace() {
            return Some(format!(
                "contains an invisible or control character (U+{:04X}) at character {at}; retype the address",
                c as u32
            ));
        }
        if !c.is_ascii() {
            return Some(format!(
                "contains the non-ASCII character {c:?} (U+{:04X}) at character {at}, which can pass for an ASCII letter; write the address in ASCII (an internationalised domain in its xn-- form)",
                c as u32
            ));
        }
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Some("has no @; write it as name@domain".into());
    };
    if local.is_empty() || local.contains('@') {
        return Some("needs exactly one @ with a name before it".into());
    }
    let labels_ok = domain
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
    if !domain.contains('.') || !labels_ok {
        return Some(format!(
            "has no valid domain after the @ (a domain such as acme.example, got {} character{})",
            domain.len(),
            if domain.len() == 1 { "" } else { "s" }
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_addresses_pass() {
        for ok in [
            "ada@acme.example",
            "o'brien+marketing@acme.example",
            "a.b-c_d@sub.xn--bcher-kva.example",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn invisible_and_confusable_characters_are_named_with_their_position() {
        let zwsp = problem("ada\u{200b}@acme.example").unwrap();
        assert!(
            zwsp.contains("U+200B") && zwsp.contains("character 4"),
            "{zwsp}"
        );
        let bom = problem("\u{feff}ada@acme.example").unwrap();
        assert!(
            bom.contains("U+FEFF") && bom.contains("character 1"),
            "{bom}"
        );
        let cyrillic = problem("\u{430}da@acme.example").unwrap();
        assert!(
            cyrillic.contains("U+0430") && cyrillic.contains("non-ASCII"),
            "{cyrillic}"
        );
        let nbsp = problem("ada\u{a0}@acme.example").unwrap();
        assert!(nbsp.contains("U+00A0"), "{nbsp}");
    }

    #[test]
    fn malformed_addresses_say_what_is_missing() {
        assert!(problem("ada.acme.example").unwrap().contains("no @"));
        assert!(problem("@acme.example").unwrap().contains("one @"));
        assert!(problem("a@b@acme.example").unwrap().contains("one @"));
        assert!(problem("ada@localhost").unwrap().contains("domain"));
        assert!(problem("ada@acme..example").unwrap().contains("domain"));
        assert!(problem("ada@-acme.example").unwrap().contains("domain"));
    }
}
