//! `exe init`: write a commented starter pipeline from `templates/`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::InitArgs;
use crate::error::Error;

/// The starters, compiled into the binary so `exe init` works anywhere.
const STARTERS: &[(&str, &str, &str)] = &[
    ("basic", "toml", include_str!("../../templates/basic.toml")),
    (
        "basic-yaml",
        "yaml",
        include_str!("../../templates/basic.yaml"),
    ),
    ("etl", "toml", include_str!("../../templates/etl.toml")),
    (
        "matrix",
        "toml",
        include_str!("../../templates/matrix.toml"),
    ),
];

/// The starter's text for `path`, whose extension picks the format: the starter itself, or
/// its twin in that format (`basic` and `basic-yaml`). A starter is never written in a
/// format other than its name's: the file would not load.
fn in_format_of(
    path: &Path,
    template: &str,
    ext: &str,
    text: &'static str,
) -> Result<&'static str, Error> {
    let wanted = super::written_format(path)?.extension();
    if wanted == ext {
        return Ok(text);
    }
    let base = template.strip_suffix("-yaml").unwrap_or(template);
    let twin = if wanted == "toml" {
        base.to_owned()
    } else {
        format!("{base}-{wanted}")
    };
    match STARTERS
        .iter()
        .find(|(name, e, _)| *name == twin && *e == wanted)
    {
        Some(&(_, _, twin_text)) => Ok(twin_text),
        None => Err(Error::Usage {
            message: format!(
                "the starter `{template}` is written in {}, not {}",
                ext.to_ascii_uppercase(),
                wanted.to_ascii_uppercase()
            ),
            help: Some(format!(
                "write it as `.{ext}`, then `exe migrate FILE --to {wanted}` converts it"
            )),
        }),
    }
}

/// The starter with its first line naming the file written (`# ci.yaml: a starter ...`),
/// not the starter's own name.
fn named(text: &str, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    match text.strip_prefix("# ").and_then(|t| t.split_once(": ")) {
        Some((_, rest)) if !name.is_empty() => format!("# {name}: {rest}"),
        _ => text.to_owned(),
    }
}

pub(super) fn run(args: &InitArgs) -> Result<i32, Error> {
    if args.list {
        let mut out = std::io::stdout().lock();
        for (name, ext, _) in STARTERS {
            writeln!(out, "{name}\t(.{ext})")?;
        }
        return Ok(0);
    }
    let Some(&(_, ext, text)) = STARTERS.iter().find(|(name, _, _)| *name == args.template) else {
        let names: Vec<&str> = STARTERS.iter().map(|(n, _, _)| *n).collect();
        return Err(Error::Usage {
            message: format!("unknown starter `{}`", args.template),
            help: Some(format!("starters: {}", names.join(", "))),
        });
    };
    let (path, text) = match &args.path {
        None => (PathBuf::from(format!("pipeline.{ext}")), text),
        // A folder gets the default name inside it.
        Some(dir) if dir.is_dir() => (dir.join(format!("pipeline.{ext}")), text),
        // No folder of that name, and no extension: likely a folder still to make.
        Some(path) if !path.exists() && path.extension().is_none() => {
            return Err(Error::Usage {
                message: format!(
                    "{} is not a folder, nor a file name ending in .toml, .yaml, .yml or .json",
                    path.display()
                ),
                help: Some(format!(
                    "make the folder first (`mkdir -p {}`), or name the file",
                    path.display()
                )),
            });
        }
        Some(path) => (path.clone(), in_format_of(path, &args.template, ext, text)?),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Usage {
                message: format!("{} already exists", path.display()),
                help: Some("pass --force to overwrite it, or give another path".to_owned()),
            }
        } else {
            Error::Write {
                path: path.clone(),
                source,
            }
        }
    })?;
    file.write_all(named(text, &path).as_bytes())
        .map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    stderrln!(
        "wrote {}; check it with `exe lint {}`",
        path.display(),
        path.display()
    );
    Ok(0)
}
