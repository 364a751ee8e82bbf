//! `exe plan`: load, validate and select like `apply`, then show what would run.
//!
//! It reads the history (if there is one) to tell which jobs are up to date, and never
//! writes it; it may save the hash cache beside it (see `fingerprint::cache`).

use std::io::Write as _;
use std::path::Path;

use crate::cli::{PlanArgs, PlanFormat, split_ids};
use crate::diagnostic::{Diagnostic, render_human};
use crate::error::{EXIT_FAILED, Error};
use crate::fingerprint::Fingerprinter;
use crate::plan::explain::{self, Explainer};
use crate::plan::{Plan, View, graph_formats, json, text};
use crate::selection;

/// `--detailed-exitcode`: something would run (Terraform's "changes present").
const EXIT_CHANGES: i32 = 2;

pub(super) fn run(args: &PlanArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let result = plan(args, out, db);
    if !args.detailed_exitcode {
        return result;
    }
    // Terraform's convention: 0 nothing to do, 2 something would run, 1 any error. Exit 2
    // is taken, so errors are reported here instead of by the caller's mapping.
    result.or_else(|e| {
        stderr!("{}", render_error(&e, out.color));
        Ok(EXIT_FAILED)
    })
}

fn plan(args: &PlanArgs, out: super::Output, db: &Path) -> Result<i32, Error> {
    let run = &args.run;
    let process_env: Vec<(String, String)> = std::env::vars().collect();
    let super::Loaded {
        doc,
        mut pipeline,
        warnings: diagnostics,
    } = super::load_pipeline(run, &process_env)?;
    pipeline.continue_on_error |= args.continue_on_error;
    let dispositions = selection::select(&pipeline, &split_ids(&run.skip), &split_ids(&run.only))
        .map_err(Error::Config)?;
    // Under `--force`, or with no job that has `inputs`, the history has nothing to say.
    let history = if run.force || pipeline.jobs.iter().all(|j| j.inputs.is_empty()) {
        None
    } else {
        super::history::open_read(db).unwrap_or_else(|e| {
            stderrln!(
                "warning: cannot read the run history, so no job is shown as up to date: {e}"
            );
            None
        })
    };
    let fingerprinter = Fingerprinter::new(&pipeline, db);
    let (dispositions, changes) = super::up_to_date(
        &pipeline,
        dispositions,
        run.force,
        history.as_ref(),
        &fingerprinter,
    )?;
    if history.is_some() {
        fingerprinter.save_cache();
    }
    // Every secret a job could see, or a command could have been rendered from.
    let masker = super::masker(&pipeline, &process_env);
    let mut explanations = Vec::new();
    if !args.explain.is_empty() {
        // Built only when asked: it copies the whole document, which a 100,000-job plan
        // should not pay for.
        let explainer = Explainer::new(&doc, &pipeline, run.profile.as_deref(), &masker);
        let mut unknown = Vec::new();
        for path in &args.explain {
            match explainer.explain(path) {
                Ok(e) => explanations.push(e),
                Err(d) => unknown.push(d),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::Config(unknown));
        }
    }
    // `exe apply` here would refuse these (the plan may be for another machine: a warning).
    let mut diagnostics = diagnostics;
    let capacity = crate::resources::for_pipeline(&pipeline);
    let too_big = crate::resources::too_big(&pipeline, &dispositions, capacity);
    diagnostics.extend(too_big.into_iter().map(|m| {
        Diagnostic::warning("exe::run::too_big", m)
            .help("`exe apply` on this machine refuses to start the run")
    }));
    if !out.quiet && !diagnostics.is_empty() {
        stderr!("{}", render_human(&diagnostics, false));
    }
    let plan = Plan::new(
        &pipeline,
        &dispositions,
        args.max_parallel
            .map_or(pipeline.max_parallel, |n| n as usize),
    )
    .with_changes(changes);
    let view = View {
        masker: &masker,
        show_env: args.show_env,
        explanations: &explanations,
        color: out.color,
    };
    let rendered = match args.format {
        PlanFormat::Text => text::render(&plan, &view),
        PlanFormat::Json => json::render(&plan, &view),
        PlanFormat::Dot => graph_formats::dot(&plan),
        PlanFormat::Mermaid => graph_formats::mermaid(&plan),
    };
    if matches!(args.format, PlanFormat::Dot | PlanFormat::Mermaid) && !explanations.is_empty() {
        // A graph has no place for them, and stdout must stay a valid graph.
        let text: String = explanations.iter().map(explain::render_text).collect();
        stderr!("Explain:\n{text}");
    }
    match std::io::stdout().write_all(rendered.as_bytes()) {
        // `exe plan | head` is not an error: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        EXIT_CHANGES
    } else {
        0
    })
}

/// An error as the caller would print it (see `lib.rs`), for `--detailed-exitcode`.
fn render_error(e: &Error, color: bool) -> String {
    match e {
        Error::Config(diagnostics) => render_human(diagnostics, color),
        Error::Usage { message, help } => {
            let mut d = Diagnostic::error("exe::cli::usage", message.clone());
            d.help.clone_from(help);
            render_human(&[d], color)
        }
        other => render_human(&[Diagnostic::error("exe::io", other.to_string())], color),
    }
}
