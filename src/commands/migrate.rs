//! `exe migrate`: legacy (or other-format) files to the current format, meaning kept.

use std::io::Write as _;

use crate::cli::{MigrateArgs, TargetFormat};
use crate::diagnostic::render_human;
use crate::emit::emit;
use crate::error::Error;
use crate::load::{self, LoadOptions};
use crate::source::Format;
use crate::spec::{CheckSpec, PipelineSpec};
use crate::store::{Access, Durability, OldHistory, Store};

pub(super) fn run(
    args: &MigrateArgs,
    out: super::Output,
    db: &std::path::Path,
) -> Result<i32, Error> {
    if let Some(old) = &args.history {
        return import_history(old, db, out);
    }
    let Some(file) = args.file.as_deref() else {
        return Err(Error::Usage {
            message: "name a FILE to convert, or --history OLD.db".to_owned(),
            help: None,
        });
    };
    let format = target_format(args)?;
    // Only the file itself: includes stay includes, profiles stay profiles.
    let (doc, warnings) =
        load::load(file, &LoadOptions::default()).map_err(|f| Error::Config(f.diagnostics))?;
    let notes: Vec<_> = warnings
        .into_iter()
        .filter(|w| w.code != "exe::config::legacy_format")
        .collect();
    if !notes.is_empty() && !out.quiet {
        stderr!("{}", render_human(&notes, false));
    }
    let mut spec = if doc.legacy {
        let mut spec = doc.spec.clone();
        keep_literal(&mut spec);
        spec
    } else {
        doc.provenance.main_spec().map_err(Error::Config)?
    };
    spec.version = Some(crate::spec::FORMAT_VERSION);
    // An unnamed pipeline is named after its file; the new file may be named otherwise, and
    // the name groups its runs in the history.
    if spec.name.is_none() {
        spec.name = file.file_stem().map(|s| s.to_string_lossy().into_owned());
    }
    let header = format!("Migrated from {} by `exe migrate`.", file.display());
    let text = emit(&spec, format, &header)?;
    match &args.output {
        None => std::io::stdout().write_all(text.as_bytes())?,
        Some(path) => {
            if path.exists() && !args.force {
                return Err(Error::Usage {
                    message: format!("{} already exists", path.display()),
                    help: Some("pass --force to overwrite it".to_owned()),
                });
            }
            std::fs::write(path, text).map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
            if !out.quiet {
                stderrln!(
                    "wrote {}; check it with `exe lint {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    Ok(0)
}

/// The format to write: `--to`, else OUT's extension, else TOML. OUT's extension must be one
/// exe reads, and agree with `--to`: `exe lint OUT` must load what was written.
fn target_format(args: &MigrateArgs) -> Result<Format, Error> {
    let to = args.to.map(|to| match to {
        TargetFormat::Toml => Format::Toml,
        TargetFormat::Yaml => Format::Yaml,
        TargetFormat::Json => Format::Json,
    });
    let Some(path) = &args.output else {
        return Ok(to.unwrap_or(Format::Toml));
    };
    let named = super::written_format(path)?;
    match to {
        Some(to) if to != named => Err(Error::Usage {
            message: format!(
                "--to {} contradicts {}, whose extension says {named}",
                to.extension(),
                path.display()
            ),
            help: Some(format!(
                "drop --to (the extension picks the format), or name the file `.{}`",
                to.extension()
            )),
        }),
        _ => Ok(named),
    }
}

/// A legacy file's strings are used as written, but in the current format the same
/// fields are templates: each one that holds `{{`, `{%` or `{#` becomes a template that
/// renders back to it exactly, so the migrated file runs the same commands (shell `${#var}`
/// included).
fn keep_literal(spec: &mut PipelineSpec) {
    fn raw(text: &mut String) {
        *text = literal_template(text);
    }
    for value in spec.env.iter_mut().flat_map(|env| env.values_mut()) {
        raw(&mut value.0);
    }
    for job in spec.jobs.iter_mut().flat_map(|jobs| jobs.values_mut()) {
        job.command.iter_mut().for_each(raw);
        job.description.iter_mut().for_each(raw);
        for value in job.env.iter_mut().flat_map(|env| env.values_mut()) {
            raw(&mut value.0);
        }
        let checks = (job.pre_checks.iter_mut()).chain(job.post_checks.iter_mut());
        for check in checks.flat_map(|list| list.iter_mut()) {
            match check {
                CheckSpec::FileExists { path }
                | CheckSpec::FileNotEmpty { path }
                | CheckSpec::LogClean { path, .. } => raw(path),
                CheckSpec::Command { run } => raw(run),
            }
        }
    }
}

/// A template that renders to `text`. Readably `{% raw %}text{% endraw %}`; but an `endraw`
/// in `text` (in any spacing: `{%endraw%}`, `{%- endraw -%}`) would end that block early, so
/// such a text instead gets each `{{`, `{%` and `{#` as an expression printing it
/// (`{{ "{{" }}`), and a final newline as one too (a template's own is dropped).
fn literal_template(text: &str) -> String {
    const OPENERS: [&str; 3] = ["{{", "{%", "{#"];
    if !OPENERS.iter().any(|o| text.contains(o)) {
        return text.to_owned();
    }
    if !text.contains("endraw") {
        return format!("{{% raw %}}{text}{{% endraw %}}");
    }
    let (body, newline) = match text.strip_suffix('\n') {
        Some(body) => (body, "{{ \"\\n\" }}"),
        None => (text, ""),
    };
    let mut out = String::with_capacity(body.len() * 2);
    let mut rest = body;
    // Left to right, so that in `{{{` the first two braces are one opener and the third
    // is text: no brace left as text can start an opener with what follows it.
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(opener) = OPENERS.iter().find(|o| rest.starts_with(*o)) {
            out.push_str("{{ \"");
            out.push_str(opener);
            out.push_str("\" }}");
            rest = &rest[opener.len()..];
        } else {
            out.push('{');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out.push_str(newline);
    out
}

/// `exe migrate --history OLD.db`: the older tool's runs into exe's history.
fn import_history(
    old: &std::path::Path,
    db: &std::path::Path,
    out: super::Output,
) -> Result<i32, Error> {
    if !old.is_file() {
        let what = if old.exists() {
            "is not a file"
        } else {
            "does not exist"
        };
        return Err(Error::Usage {
            message: format!("{} {what}", old.display()),
            help: Some("--history takes the SQLite file executioner kept its runs in".to_owned()),
        });
    }
    // Checked first: a file that is not the older tool's history leaves exe's as it was.
    let history = OldHistory::open(old)?;
    let mut store = Store::open(db, Access::ReadWrite, Durability::Normal)?;
    let imported = store.import_executioner(&history)?;
    // Always said, even with -q: what was recorded and is not in exe's history now.
    for problem in &imported.problems {
        stderrln!("warning: {problem}");
    }
    let left_out = imported.problems.iter().filter(|p| p.left_out()).count();
    if left_out > 0 {
        stderrln!(
            "warning: {left_out} {} of {} not imported (see above); fix {} there and import \
             again: the runs already imported are skipped",
            if left_out == 1 {
                "run or row"
            } else {
                "runs or rows"
            },
            old.display(),
            if left_out == 1 { "it" } else { "them" },
        );
    }
    if !out.quiet {
        stderrln!(
            "Imported {} run{} ({} jobs) from {} into {}{}.",
            imported.runs,
            if imported.runs == 1 { "" } else { "s" },
            imported.jobs,
            old.display(),
            db.display(),
            if imported.skipped > 0 {
                format!("; {} were already imported", imported.skipped)
            } else {
                String::new()
            }
        );
        if !imported.unfinished.is_empty() {
            let ids: Vec<String> = imported.unfinished.iter().map(i64::to_string).collect();
            stderrln!(
                "warning: executioner wrote no summary of run{} {} (it stopped first): imported \
                 from {} jobs, as FAILED if one failed, else CANCELLED",
                if ids.len() == 1 { "" } else { "s" },
                ids.join(", "),
                if ids.len() == 1 { "its" } else { "their" },
            );
        }
    }
    // Exit 1 when something recorded was left out, as for a run that did not all succeed.
    Ok(i32::from(left_out > 0))
}

#[cfg(test)]
mod tests {
    use super::literal_template;
    use crate::template::{Text, render};

    fn rendered(text: &str) -> String {
        match render(&literal_template(text), || crate::template::context! {}) {
            Ok(Text::Static(s)) => s,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn every_legacy_string_renders_back_to_itself() {
        for text in [
            "plain ${#x}",
            "{{ x }} {% if %} {# c #}",
            "{% endraw %} {{ x }}",
            "{%- endraw -%}{{ x }}",
            "{%endraw%}",
            "{% raw %}{{ y }}{% endraw %}",
            "{{{ {{{{ {%%} {## #}} }}} { {",
            "endraw {{\n",
            "{%endraw%}\n\n",
            "{{ \"{{\" }} {é{{ é",
            "{",
            "{{",
        ] {
            assert_eq!(rendered(text), text, "{:?}", literal_template(text));
        }
    }

    #[test]
    fn the_raw_block_is_kept_where_it_is_safe() {
        assert_eq!(
            literal_template("a {{ b }}"),
            "{% raw %}a {{ b }}{% endraw %}"
        );
        assert_eq!(literal_template("no braces"), "no braces");
        assert_eq!(
            literal_template("{%endraw%}{{"),
            "{{ \"{%\" }}endraw%}{{ \"{{\" }}"
        );
    }
}
