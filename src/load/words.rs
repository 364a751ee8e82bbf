//! serde's names for types and values, in the words of a pipeline file: a key that takes a
//! `u32` "must be a whole number, 0 or more", and `-3` is "found -3", not "found signed int
//! `-3`". Names this module does not know (a custom type's own `expecting` text, such as a
//! duration's) pass through unchanged.

use std::borrow::Cow;

use figment::error::Actual;

/// What a key takes, from serde's `expected` text.
pub(super) fn expected(serde: &str) -> Cow<'_, str> {
    match serde {
        // The narrow ones say their range: `4294967296` is a whole number, but not a u32.
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "u128" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "a table of keys".into(),
        other if other.starts_with("struct ") => "a table of keys".into(),
        "a string" | "a borrowed string" => "text".into(),
        other => other.into(),
    }
}

/// What `key` (its last name) takes: [`expected`], except where the key asks for more
/// than its type (`max_parallel` is a `u32` that must be at least 1).
pub(super) fn expected_for<'a>(key: Option<&str>, serde: &'a str) -> Cow<'a, str> {
    match (key, serde) {
        (Some("max_parallel"), "u32") => "a whole number from 1 to 4294967295".into(),
        _ => expected(serde),
    }
}

/// The value the file gave, for "found ...".
pub(super) fn found(actual: &Actual) -> String {
    match actual {
        Actual::Bool(b) => b.to_string(),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        // `{:?}` keeps the point: `1.0` is why a whole number was refused, `1` would hide it.
        Actual::Float(n) => format!("{n:?}"),
        Actual::Char(c) => format!("the text {:?}", c.to_string()),
        Actual::Str(s) => format!("the text {s:?}"),
        Actual::Seq => "a list".to_owned(),
        Actual::Map | Actual::StructVariant => "a table".to_owned(),
        Actual::Unit | Actual::Option => "nothing (null)".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_type_names_become_words() {
        assert_eq!(expected("u32"), "a whole number from 0 to 4294967295");
        assert_eq!(expected("u64"), "a whole number, 0 or more");
        assert_eq!(expected("i64"), "a whole number");
        assert_eq!(expected("f64"), "a number");
        assert_eq!(expected("struct RetrySpec"), "a table of keys");
        assert_eq!(expected("a sequence"), "a list");
        assert_eq!(expected("a string"), "text");
    }

    #[test]
    fn a_key_may_ask_for_more_than_its_type() {
        assert_eq!(
            expected_for(Some("max_parallel"), "u32"),
            "a whole number from 1 to 4294967295"
        );
        assert_eq!(
            expected_for(Some("max"), "u32"),
            "a whole number from 0 to 4294967295"
        );
    }

    #[test]
    fn a_custom_expecting_text_passes_through() {
        assert_eq!(expected("a duration like \"5m\""), "a duration like \"5m\"");
    }

    #[test]
    fn values_are_shown_as_written() {
        assert_eq!(found(&Actual::Signed(-3)), "-3");
        assert_eq!(found(&Actual::Float(2.5)), "2.5");
        assert_eq!(found(&Actual::Float(3.0)), "3.0");
        assert_eq!(found(&Actual::Str("four".into())), "the text \"four\"");
        assert_eq!(found(&Actual::Map), "a table");
        assert_eq!(found(&Actual::Bool(true)), "true");
    }
}
