//! `exe migrate`: legacy (or other-format) files to the current format, meaning kept.

use std::io::Write as _;

use crate::cli::{MigrateArgs, TargetFormat};
use crate::diagnostic::render_human;
use crate::emit::emit;
use crate::error::Error;
use crate::load::{self, LoadOptions};
use crate::source::Format;
use crate::store::{Access, Durability, Store};

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
        doc.spec.clone()
    } else {
        doc.provenance.main_spec().map_err(Error::Config)?
    };
    spec.version = Some(crate::spec::FORMAT_VERSION);
    let format = match args.to {
        TargetFormat::Toml => Format::Toml,
        TargetFormat::Yaml => Format::Yaml,
        TargetFormat::Json => Format::Json,
    };
    let header = format!("Migrated from {} by `exe migrate`.", file.display());
    let text = emit(&spec, format, &header).map_err(|message| Error::Usage {
        message: format!("cannot write this pipeline as {format}: {message}"),
        help: Some("try another `--to` format".to_owned()),
    })?;
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
    let mut store = Store::open(db, Access::ReadWrite, Durability::Normal)?;
    let imported = store.import_executioner(old)?;
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
    }
    Ok(0)
}
