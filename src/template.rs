//! Text templating: minijinja for `{{ ... }}` in string fields, and the older tool's
//! `${NAME}` interpolation.
//!
//! Everything is rendered once, at load time, with undefined names an error. The only
//! exceptions are `{{ run.id }}` and `{{ attempt }}`, which exist only when a job starts:
//! such a field becomes a [`Text::Runtime`], checked at load time with stand-in values and
//! rendered again at start. Rendering is bounded (fuel), so no template can hang exe.

use std::sync::OnceLock;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
pub use minijinja::{Value as Context, context};

use Context as Value;

/// Instructions one template may execute: far beyond any real field, far below a hang.
const FUEL: u64 = 100_000;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // On by default only with debug assertions; it is what names the undefined value
        // ("`vars.regoin` is undefined"), which release builds must say too.
        env.set_debug(true);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        env
    })
}

/// A rendered string field.
#[derive(Debug, Clone)]
pub enum Text {
    /// Fully rendered at load time.
    Static(String),
    /// Uses `run.id` or `attempt`: rendered when the job starts.
    Runtime {
        /// The template as written.
        source: String,
        /// The load-time context it is rendered with, plus `run` and `attempt`.
        context: Value,
    },
}

impl Text {
    /// The text to show before a run exists: rendered, or the template as written.
    pub fn display(&self) -> &str {
        match self {
            Text::Static(s) | Text::Runtime { source: s, .. } => s,
        }
    }

    /// The final text for one attempt.
    pub fn for_attempt(&self, run_id: i64, attempt: u32) -> Result<String, TemplateError> {
        match self {
            Text::Static(s) => Ok(s.clone()),
            Text::Runtime { source, context } => {
                let ctx = context! { run => context! { id => run_id }, attempt => attempt, ..context.clone() };
                environment()
                    .render_str(source, ctx)
                    .map_err(TemplateError::from)
            }
        }
    }
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What went wrong, e.g. "undefined value: `vars.missing`".
    pub message: String,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let mut message = e.kind().to_string();
        if let Some(detail) = e.detail() {
            message = format!("{message}: {detail}");
        }
        TemplateError { message }
    }
}

/// Any serializable value as a template context value.
pub fn to_value<T: serde::Serialize>(value: &T) -> Context {
    Context::from(Serde(value))
}

/// Does this string need rendering at all? (Most don't, and skipping them keeps large files fast.)
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders `text` with `ctx`. `ctx` is only built when the text is a template.
pub fn render(text: &str, ctx: impl FnOnce() -> Value) -> Result<Text, TemplateError> {
    if !is_template(text) {
        return Ok(Text::Static(text.to_owned()));
    }
    let env = environment();
    let template = env.template_from_str(text)?;
    let names = template.undeclared_variables(false);
    let ctx = ctx();
    if names.contains("run") || names.contains("attempt") {
        // Check it now with stand-ins so mistakes surface at lint time, not mid-run.
        let probe = context! { run => context! { id => 0 }, attempt => 1, ..ctx.clone() };
        template.render(probe)?;
        return Ok(Text::Runtime {
            source: text.to_owned(),
            context: ctx,
        });
    }
    if let Some(name) = names.iter().find(|n| {
        !env.globals().any(|(g, _)| g == n.as_str())
            && ctx.get_attr(n).is_ok_and(|v| v.is_undefined())
    }) {
        return Err(TemplateError {
            message: format!("undefined name `{name}`: {}", known_names(&ctx)),
        });
    }
    Ok(Text::Static(template.render(ctx)?))
}

/// Renders to a plain string; a `run.id` or `attempt` reference is an error here.
pub fn render_now(text: &str, ctx: impl FnOnce() -> Value) -> Result<String, TemplateError> {
    match render(text, ctx)? {
        Text::Static(s) => Ok(s),
        Text::Runtime { .. } => Err(TemplateError {
            message: "`run.id` and `attempt` are only known when a job starts; they can be used in `command` only".to_owned(),
        }),
    }
}

fn known_names(ctx: &Value) -> String {
    let names: Vec<String> = ctx
        .try_iter()
        .map(|it| it.map(|v| v.to_string()).collect())
        .unwrap_or_default();
    format!("the names defined here are {}", names.join(", "))
}

/// Is a rendered `when` true? False, empty, `false`, `0`, `no` and `off` are false.
pub fn truthy(text: &str) -> bool {
    !matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "false" | "0" | "no" | "off" | "none"
    )
}

/// Replaces `${NAME}` with `lookup(NAME)`. Names `lookup` does not know are left as
/// written and returned, so the caller can warn. `$${NAME}` writes a literal `${NAME}`.
pub fn interpolate<'a>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> (String, Vec<String>) {
    if !text.contains("${") {
        return (text.to_owned(), Vec::new());
    }
    let mut out = String::with_capacity(text.len());
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let after = &rest[at + 2..];
        let end = after.find('}');
        let name = end.map(|e| &after[..e]);
        let valid = name.is_some_and(|n| {
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !n.as_bytes()[0].is_ascii_digit()
        });
        match (escaped, valid, name) {
            (true, true, Some(name)) => {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                out.push_str(name);
                out.push('}');
                rest = &after[name.len() + 1..];
            }
            (false, true, Some(name)) => {
                out.push_str(&rest[..at]);
                if let Some(value) = lookup(name) {
                    out.push_str(value);
                } else {
                    out.push_str(&rest[at..at + 3 + name.len()]);
                    unknown.push(name.to_owned());
                }
                rest = &after[name.len() + 1..];
            }
            _ => {
                out.push_str(&rest[..at + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Value {
        context! { vars => context! { region => "eu" }, matrix => context! { os => "linux" } }
    }

    #[test]
    fn renders_and_skips_plain_text() {
        assert_eq!(
            render_now("sync {{ vars.region }}", ctx).unwrap(),
            "sync eu"
        );
        assert_eq!(
            render_now("plain", || unreachable!("no context needed")).unwrap(),
            "plain"
        );
    }

    #[test]
    fn undefined_names_are_errors() {
        let e = render_now("{{ vars.nope }}", ctx).unwrap_err();
        assert!(e.message.contains("undefined"), "{e:?}");
        let e = render_now("{{ nope }}", ctx).unwrap_err();
        assert!(e.message.contains("`nope`"), "{e:?}");
    }

    #[test]
    fn run_id_and_attempt_wait_for_the_start() {
        let text = render("log-{{ run.id }}-{{ attempt }}-{{ matrix.os }}", ctx).unwrap();
        assert_eq!(
            text.display(),
            "log-{{ run.id }}-{{ attempt }}-{{ matrix.os }}"
        );
        assert_eq!(text.for_attempt(42, 2).unwrap(), "log-42-2-linux");
        assert!(render("{{ run.nope }}", ctx).is_err());
    }

    #[test]
    fn runaway_templates_stop() {
        let e = render_now(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            ctx,
        )
        .unwrap_err();
        assert!(e.message.contains("fuel"), "{e:?}");
    }

    #[test]
    fn legacy_interpolation() {
        let lookup = |n: &str| match n {
            "HOME" => Some("/home/u"),
            _ => None,
        };
        assert_eq!(
            interpolate("${HOME}/x", lookup),
            ("/home/u/x".to_owned(), vec![])
        );
        assert_eq!(
            interpolate("${NOPE}/x", lookup),
            ("${NOPE}/x".to_owned(), vec!["NOPE".to_owned()])
        );
        assert_eq!(
            interpolate("$${HOME} ${ bad} $5", lookup).0,
            "${HOME} ${ bad} $5"
        );
    }

    #[test]
    fn truthiness() {
        for f in ["", "false", "False", "0", "no", "off"] {
            assert!(!truthy(f), "{f}");
        }
        for t in ["true", "1", "yes", "prod"] {
            assert!(truthy(t), "{t}");
        }
    }
}
