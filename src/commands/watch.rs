//! `exe watch`: the watch loop ([`crate::watch`]) around `apply`'s load and run, with one
//! history opened for every run (opened again if its file is removed or replaced meanwhile).

use std::path::{Path, PathBuf};

use super::apply;
use crate::cli::WatchArgs;
use crate::diagnostic::{At, Diagnostic};
use crate::error::Error;
use crate::store::Store;
use crate::watch::{self, Broken, Loaded, Settings, identity};

pub(super) fn run(args: &WatchArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let apply_args = &args.apply;
    if apply_args.dry_run || apply_args.resume.is_some() {
        return Err(Error::Usage {
            message: "`exe watch` starts new runs: --dry-run and --resume belong to `exe apply`"
                .to_owned(),
            help: Some(
                "see the plan with `exe plan FILE`; finish a run with `exe apply FILE --resume RUN`, then watch"
                    .to_owned(),
            ),
        });
    }
    let process_env: Vec<(String, String)> = std::env::vars().collect();
    let file = &apply_args.run.file;
    if !file.exists() {
        // Missing from the start is a mistyped name, not an edit in progress: say so as
        // `apply` would, and stop instead of waiting for the file to appear.
        super::load_pipeline(&apply_args.run, &process_env)?;
    }
    let mut load = || match super::load_pipeline(&apply_args.run, &process_env) {
        Ok(loaded) => {
            apply::show_warnings(&loaded.warnings, out);
            Ok(Loaded {
                files: loaded
                    .doc
                    .provenance
                    .files()
                    .map(Path::to_path_buf)
                    .collect(),
                pipeline: loaded.pipeline,
            })
        }
        Err(e) => {
            let diagnostics = match e {
                Error::Config(diagnostics) => diagnostics,
                other => vec![Diagnostic::error("exe::io", other.to_string())],
            };
            let mut files = vec![file.clone()];
            files.extend(diagnostics.iter().filter_map(file_of));
            Err(Broken { diagnostics, files })
        }
    };
    let mut first = None;
    if !apply_args.run.only.is_empty() || !apply_args.run.skip.is_empty() {
        // Likewise an `--only` or `--skip` id the pipeline does not have, when it loads:
        // waiting would not fix a mistyped flag. The loop starts from this load.
        let loaded = load();
        if let Ok(loaded) = &loaded {
            apply::select(&loaded.pipeline, apply_args)?;
        }
        first = Some(loaded);
    }
    let mut store = apply::open_store(db, apply_args)?;
    apply::close_orphans(&mut store, out.quiet)?;
    let mut opened = identity(db);
    let settings = Settings {
        db: db.to_path_buf(),
        debounce: args.debounce,
        on_busy: args.on_busy,
        quiet: out.quiet,
        color: out.color_err,
    };
    watch::run(
        &settings,
        || first.take().unwrap_or_else(&mut load),
        |pipeline, cancel| {
            let dispositions = apply::select(pipeline, apply_args)?;
            if identity(db) != opened {
                // Deleted (`git clean`), moved aside or replaced since it was opened: the
                // open connection would record into a file no one can find any more. It is
                // closed first; a deleted file's -wal and -shm, which it leaves, go with it
                // (beside a new database they would look like a lost history's WAL).
                drop(std::mem::replace(&mut store, Store::open_in_memory()?));
                Store::remove_side_files_of_deleted(db);
                store = apply::open_store(db, apply_args)?;
                apply::close_orphans(&mut store, out.quiet)?;
                opened = identity(db);
                if !out.quiet {
                    stderrln!(
                        "note: the history {} was removed or replaced; recording there anew",
                        db.display()
                    );
                }
            }
            apply::execute(
                apply_args,
                out,
                pipeline,
                dispositions,
                &process_env,
                &mut store,
                Some(cancel),
            )
        },
    )
}

/// The file a problem is in (an include that broke is watched for its fix).
fn file_of(diagnostic: &Diagnostic) -> Option<PathBuf> {
    match &diagnostic.at {
        Some(At::Span { source, .. }) => Some(source.path.clone()),
        Some(At::File(path)) => Some(path.clone()),
        _ => None,
    }
}
