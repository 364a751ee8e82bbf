//! Keeping secret values out of what exe prints and records.
//!
//! A variable is secret when its NAME contains PASS, SECRET, TOKEN, KEY or CREDENTIAL, in
//! any case (`DB_PASSWORD`, `github_token`, `ApiKey`). Its value is shown as `***`, and so is
//! every copy of that value inside other text: a URL that embeds the password, a command
//! that was rendered from `{{ env.DB_PASSWORD }}`. [`Masker`] holds the secret values of an
//! environment and masks any text with them; plans use it now, logs, history and the API
//! will use the same type.
//!
//! Masking is by value, not by meaning: a secret that a command transforms (base64, URL
//! encoding) is not recognised. Values shorter than [`MIN_SECRET_LEN`] are masked only as
//! the value of their own variable, because masking every `1` or `on` in every text would
//! make output unreadable without protecting anything.

use std::borrow::Cow;
use std::collections::BTreeSet;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Secret values shorter than this (in bytes) are not searched for inside other text.
pub const MIN_SECRET_LEN: usize = 4;

/// The words that make a variable name secret, matched anywhere in the name, any case.
const SECRET_WORDS: &[&str] = &["PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL"];

/// Does a variable with this name hold a secret?
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// Replaces the secret values of an environment wherever they occur in a text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// One regex for all secrets, longest first, so that a secret containing another is
    /// masked whole; `None` when there is nothing long enough to search for.
    pattern: Option<regex::Regex>,
    /// The secrets, for the (huge-input) case the regex cannot be built.
    secrets: Vec<String>,
}

impl Masker {
    /// A masker for the secret values among `env` (name, value pairs). Names that are
    /// not secret, and values shorter than [`MIN_SECRET_LEN`], are ignored.
    pub fn new<K, V>(env: impl IntoIterator<Item = (K, V)>) -> Masker
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let unique: BTreeSet<String> = env
            .into_iter()
            .filter(|(name, value)| {
                value.as_ref().len() >= MIN_SECRET_LEN && is_secret_name(name.as_ref())
            })
            .map(|(_, value)| value.as_ref().to_owned())
            .collect();
        let mut secrets: Vec<String> = unique.into_iter().collect();
        // Longest first: the regex takes the first alternative that matches at a position.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let pattern = if secrets.is_empty() {
            None
        } else {
            let alternatives: Vec<String> = secrets.iter().map(|s| regex::escape(s)).collect();
            regex::RegexBuilder::new(&alternatives.join("|"))
                .size_limit(64 << 20)
                .build()
                .ok()
        };
        Masker { pattern, secrets }
    }

    /// Whether there is no secret to search for (values of secret names are still masked
    /// by [`Masker::value`]).
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret value in it replaced by [`MASK`]; borrowed when there is
    /// none.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        if let Some(pattern) = &self.pattern {
            return pattern.replace_all(text, MASK);
        }
        // Only when the regex was too large to build: slower, same result for literals.
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        out
    }

    /// The value of variable `name` as it may be shown: [`MASK`] for a secret name,
    /// otherwise the value with any secret inside it masked.
    pub fn value<'t>(&self, name: &str, value: &'t str) -> Cow<'t, str> {
        if is_secret_name(name) {
            Cow::Borrowed(MASK)
        } else {
            self.mask(value)
        }
    }
}

/// `text` (a pipeline file) with the value of every key that has a secret's name written
/// over with `*`, byte for byte, so that offsets into it still hold; `None` when it has no
/// such key. For source excerpts in diagnostics, which show the lines around a problem:
/// `DB_PASSWORD = "hunter2"` on the next line is shown as `DB_PASSWORD = "*******"`. A key
/// is found as `NAME = value` (TOML), `NAME: value` (YAML) or `"NAME": value` (JSON) on one
/// line; a value written over several lines (a YAML block) is not recognised.
pub fn mask_assignments(text: &str) -> Option<String> {
    static ASSIGNMENT: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)["']?[A-Za-z0-9_.-]*(?:PASS|SECRET|TOKEN|KEY|CREDENTIAL)[A-Za-z0-9_.-]*["']?[ \t]*[:=][ \t]*("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,}\]#"'][^,}\]#\n]*)"#,
        )
        .expect("a valid pattern")
    });
    let mut masked: Option<Vec<u8>> = None;
    for found in ASSIGNMENT.captures_iter(text) {
        let Some(value) = found.get(1) else { continue };
        let quoted = value.as_str().starts_with(['"', '\'']);
        let inner = if quoted && value.len() >= 2 {
            value.start() + 1..value.end() - 1
        } else {
            value.range()
        };
        let bytes = masked.get_or_insert_with(|| text.as_bytes().to_vec());
        for b in &mut bytes[inner] {
            *b = b'*';
        }
    }
    // Whole UTF-8 characters were replaced by ASCII, so the text stays valid.
    masked.map(|bytes| String::from_utf8(bytes).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_assignments_are_masked_in_place_in_every_format() {
        let toml = "[env]\nDB_PASSWORD = \"hunter2\"\nHOST = \"db\"\n[jobs.a]\nenv = { API_KEY = 'k1', X = 1 }\n";
        assert_eq!(
            mask_assignments(toml).unwrap(),
            "[env]\nDB_PASSWORD = \"*******\"\nHOST = \"db\"\n[jobs.a]\nenv = { API_KEY = '**', X = 1 }\n"
        );
        let json = "{\"smtp_password\": \"hunter2\", \"retries\": 3, \"token\": \"a\\\"b\"}";
        assert_eq!(
            mask_assignments(json).unwrap(),
            "{\"smtp_password\": \"*******\", \"retries\": 3, \"token\": \"****\"}"
        );
        let yaml = "env:\n  GITHUB_TOKEN: ghp_abcé  # comment\n  USER: me\n";
        let masked = mask_assignments(yaml).unwrap();
        assert_eq!(masked.len(), yaml.len(), "offsets hold");
        assert_eq!(
            masked,
            "env:\n  GITHUB_TOKEN: ***********# comment\n  USER: me\n"
        );
        assert_eq!(
            mask_assignments("[jobs.a]\ncommand = \"echo $DB_PASSWORD\"\n"),
            None
        );
    }

    #[test]
    fn secret_names_match_any_case_anywhere() {
        for name in [
            "DB_PASSWORD",
            "passwd",
            "GITHUB_TOKEN",
            "ApiKey",
            "AWS_SECRET_ACCESS_KEY",
            "git_credentials",
            "SSH_KEYFILE",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PATH", "HOME", "USER", "DATABASE_URL", "TOKE"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn secret_values_are_masked_inside_other_text() {
        let m = Masker::new([
            ("DB_PASSWORD", "hunter22"),
            ("DATABASE_URL", "postgres://app:hunter22@db/app"),
        ]);
        assert_eq!(
            m.mask("postgres://app:hunter22@db/app"),
            "postgres://app:***@db/app"
        );
        assert_eq!(m.value("DB_PASSWORD", "hunter22"), MASK);
        assert_eq!(
            m.value("DATABASE_URL", "postgres://app:hunter22@db/app"),
            "postgres://app:***@db/app"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        let m = Masker::new([("API_TOKEN", "abcdef")]);
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Masker::default().mask("abcdef"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_secrets_are_masked_only_as_their_own_value() {
        let m = Masker::new([("PIN_KEY", "123"), ("EMPTY_TOKEN", "")]);
        assert!(m.is_empty());
        assert_eq!(m.mask("call 123 now"), "call 123 now");
        assert_eq!(m.value("PIN_KEY", "123"), MASK);
        assert_eq!(m.value("EMPTY_TOKEN", ""), MASK);
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let m = Masker::new([("A_KEY", "abcd"), ("B_KEY", "xxabcdxx")]);
        assert_eq!(m.mask("1 xxabcdxx 2 abcd"), "1 *** 2 ***");
    }

    #[test]
    fn regex_characters_in_secrets_are_literal() {
        let m = Masker::new([("SECRET", "a.b*c(d)")]);
        assert_eq!(m.mask("x a.b*c(d) axbbc(d)"), "x *** axbbc(d)");
    }

    #[test]
    fn names_that_are_not_secret_are_not_masked() {
        let m = Masker::new([("HOME", "/home/someone")]);
        assert!(m.is_empty());
        assert_eq!(m.mask("/home/someone"), "/home/someone");
    }
}
