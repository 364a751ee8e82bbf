//! Value types of the format that are more than one serde primitive: durations, sizes,
//! "a string or a list", environment values, `inherit_env` and `when`.
//!
//! Each has its own visitor so a bad value gets a message that says what would be valid,
//! instead of serde's "data did not match any variant".

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration: `"500ms"`, `"90s"`, `"5m"`, `"1h30m"` or a number of seconds (`0.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

/// Parses the text form of a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    duration_of(text).map_err(|e| match e {
        DurationError::Invalid => format!(
            "invalid duration `{text}`: expected e.g. \"500ms\", \"90s\", \"5m\", \"1h30m\" or a number of seconds"
        ),
        DurationError::TooLong => too_long(text),
    })
}

/// Why a text is not a duration, for callers that say so in their own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not in a duration's form (or negative).
    Invalid,
    /// In a duration's form, but above [`MAX_DURATION`].
    TooLong,
}

/// [`parse_duration`], with the reason as a [`DurationError`].
pub fn duration_of(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Invalid);
    }
    let checked = |seconds: f64| {
        seconds_to_duration(seconds).map_err(|long| {
            if long {
                DurationError::TooLong
            } else {
                DurationError::Invalid
            }
        })
    };
    if let Ok(seconds) = text.parse::<f64>() {
        return checked(seconds);
    }
    let mut total = 0.0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(DurationError::Invalid)?;
        if digits == 0 {
            return Err(DurationError::Invalid);
        }
        let number: f64 = rest[..digits].parse().map_err(|_| DurationError::Invalid)?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(DurationError::Invalid),
        };
        total += number * scale;
        rest = rest[unit_len..].trim_start();
    }
    checked(total)
}

/// The longest duration the format takes: 100 years. Longer ones are typos, and a deadline
/// that far past now cannot be represented as a point in time.
pub const MAX_DURATION: Duration = Duration::from_hours(100 * 365 * 24);

/// A number of seconds as a duration; `Err(true)` when it is above [`MAX_DURATION`],
/// `Err(false)` when it is negative or not a number.
fn seconds_to_duration(seconds: f64) -> Result<Duration, bool> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(false);
    }
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or(true)
}

/// The error for a duration above [`MAX_DURATION`].
fn too_long(v: impl fmt::Display) -> String {
    format!("invalid duration `{v}`: at most 100 years (\"36500d\")")
}

/// The shortest text form of a duration, as `exe migrate` writes it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if d.subsec_millis() != 0 || !d.as_nanos().is_multiple_of(1_000_000) {
        if d.as_nanos().is_multiple_of(1_000_000) {
            return format!("{ms}ms");
        }
        return format!("{}s", d.as_secs_f64());
    }
    let s = d.as_secs();
    if s == 0 {
        return "0s".to_owned();
    }
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 {
        out.push_str(&format!("{sec}s"));
    }
    out
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"90s\", \"5m\", \"1h30m\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_duration(v).map(DurationSpec).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Some(Duration::from_secs(v))
                    .filter(|d| *d <= MAX_DURATION)
                    .map(DurationSpec)
                    .ok_or_else(|| E::custom(too_long(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v).map_err(|_| {
                    E::custom(format!("invalid duration `{v}`: it cannot be negative"))
                })?;
                self.visit_u64(v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                seconds_to_duration(v).map(DurationSpec).map_err(|long| {
                    E::custom(if long {
                        too_long(v)
                    } else {
                        format!("invalid duration `{v}`: expected a non-negative number of seconds")
                    })
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl JsonSchema for DurationSpec {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"500ms\", \"90s\", \"5m\", \"1h30m\", or a number of seconds (fractions allowed).",
            "anyOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+)?|([0-9.]+\\s*(ms|s|sec|m|min|h|d)\\s*)+)\\s*$" }
            ]
        })
    }
}

/// A size in bytes: `"512MiB"`, `"4GiB"` or an integer number of MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec(pub u64);

const MIB: u64 = 1024 * 1024;

/// Parses the text form of a size into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "invalid size `{text}`: expected e.g. \"512MiB\", \"4GiB\" or an integer number of MiB"
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number: f64 = text[..split].parse().map_err(|_| bad())?;
    #[allow(clippy::cast_precision_loss)]
    let scale = match text[split..].trim() {
        "" => MIB as f64,
        "B" => 1.0,
        "KiB" | "K" => 1024.0,
        "MiB" | "M" => MIB as f64,
        "GiB" | "G" => (1024 * MIB) as f64,
        "TiB" | "T" => (1024 * 1024 * MIB) as f64,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return Err(bad()),
    };
    let bytes = number * scale;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    if bytes.is_finite() && (0.0..1.8e19).contains(&bytes) {
        Ok(bytes as u64)
    } else {
        Err(bad())
    }
}

fn format_size(bytes: u64) -> String {
    for (unit, scale) in [
        ("TiB", 1024 * 1024 * MIB),
        ("GiB", 1024 * MIB),
        ("MiB", MIB),
        ("KiB", 1024),
    ] {
        if bytes >= scale && bytes.is_multiple_of(scale) {
            return format!("{}{unit}", bytes / scale);
        }
    }
    format!("{bytes}B")
}

impl<'de> Deserialize<'de> for SizeSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"512MiB\", \"4GiB\" or an integer number of MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_size(v).map(SizeSpec).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                v.checked_mul(MIB)
                    .map(SizeSpec)
                    .ok_or_else(|| E::custom("size too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v)
                    .map_err(|_| E::custom(format!("invalid size `{v}`: it cannot be negative")))?;
                self.visit_u64(v)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for SizeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl JsonSchema for SizeSpec {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: \"512MiB\", \"4GiB\", or an integer number of MiB.",
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(B|K|M|G|T|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)?\\s*$" }
            ]
        })
    }
}

/// One string or a list of strings (`needs = "a"` and `needs = ["a"]` mean the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringList(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringList(items))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for StringList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl JsonSchema for StringList {
    fn schema_name() -> Cow<'static, str> {
        "StringList".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A string or a list of strings.",
            "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }]
        })
    }
}

/// Whether `name` is a portable variable name (what a shell's `$NAME` can read): letters,
/// digits and `_`, not starting with a digit.
pub fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// An environment value: strings, numbers and booleans are all passed as their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EnvValue(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(EnvValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(EnvValue(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for EnvValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// Which of the caller's environment variables jobs see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InheritEnv {
    /// `true`: all of them; `false`: none.
    All(bool),
    /// `"default"`: PATH HOME USER LOGNAME SHELL LANG LC_* TZ TMPDIR.
    Default,
    /// Exactly these names.
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for InheritEnv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InheritEnv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false, \"default\" or a list of variable names")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(InheritEnv::All(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "default" => Ok(InheritEnv::Default),
                    "true" => Ok(InheritEnv::All(true)),
                    "false" => Ok(InheritEnv::All(false)),
                    _ => Err(E::custom(format!(
                        "invalid inherit_env `{v}`: expected true, false, \"default\" or a list of variable names"
                    ))),
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(InheritEnv::Only(names))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for InheritEnv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            InheritEnv::All(b) => s.serialize_bool(*b),
            InheritEnv::Default => s.serialize_str("default"),
            InheritEnv::Only(names) => names.serialize(s),
        }
    }
}

impl JsonSchema for InheritEnv {
    fn schema_name() -> Cow<'static, str> {
        "InheritEnv".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "true (all), false (none), \"default\" (PATH HOME USER LOGNAME SHELL LANG LC_* TZ TMPDIR) or a list of names.",
            "anyOf": [
                { "type": "boolean" },
                { "enum": ["default", "true", "false"] },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

/// A job's `when`: a boolean, or a template expression rendered at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// A literal boolean.
    Bool(bool),
    /// A template such as `"{{ vars.deploy }}"`; false, empty, `false`, `0` or `no` skip the job.
    Expr(String),
}

impl<'de> Deserialize<'de> for When {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = When;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean or a template expression string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(When::Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(When::Expr(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for When {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            When::Bool(b) => s.serialize_bool(*b),
            When::Expr(e) => s.serialize_str(e),
        }
    }
}

impl JsonSchema for When {
    fn schema_name() -> Cow<'static, str> {
        "When".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["boolean", "string"] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 0.5),
            ("90s", 90.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("0.5", 0.5),
            ("1.5s", 1.5),
            ("1h 30m", 5400.0),
            ("2d", 172_800.0),
            ("5 m", 300.0),
        ];
        for (text, secs) in ok {
            assert!(
                (parse_duration(text).unwrap().as_secs_f64() - secs).abs() < 1e-9,
                "{text}"
            );
        }
        for bad in ["", "5x", "-1s", "m", "1.2.3s", "nan", "inf", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        for long in ["36501d", "1e19", "876001h"] {
            assert_eq!(
                parse_duration(long),
                Err(format!(
                    "invalid duration `{long}`: at most 100 years (\"36500d\")"
                ))
            );
        }
    }

    #[test]
    fn the_schema_pattern_for_durations_takes_what_the_loader_reads() {
        let schema =
            serde_json::to_value(DurationSpec::json_schema(&mut SchemaGenerator::default()))
                .unwrap();
        let pattern = schema["anyOf"][1]["pattern"].as_str().unwrap();
        let pattern = regex::Regex::new(pattern).unwrap();
        for text in [
            "500ms", "90s", "5m", "1h30m", "1h 30m", "0.5", "1e3", "2d", "5 m", "1h30", "30sec5",
            "", "m", "5x", "abc", "1.5s",
        ] {
            assert_eq!(
                pattern.is_match(text),
                parse_duration(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn durations_round_trip_through_their_text() {
        for secs in [0.0, 0.5, 1.0, 30.0, 90.0, 1800.0, 10800.0, 5400.5, 0.25] {
            let d = Duration::from_secs_f64(secs);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{secs}");
        }
        assert_eq!(format_duration(Duration::from_hours(3)), "3h");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 * MIB);
        assert_eq!(parse_size("4GiB").unwrap(), 4096 * MIB);
        assert_eq!(parse_size("2").unwrap(), 2 * MIB);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert!(parse_size("4 parsecs").is_err());
        assert_eq!(format_size(4096 * MIB), "4GiB");
    }
}
