//! `exe plan --format dot|mermaid`: the dependency graph for Graphviz and Mermaid.
//!
//! Edges go from a need to the job that needs it (the direction work flows). Skipped jobs
//! are drawn dashed. Job ids can hold any character a matrix value holds, so every id is
//! escaped for the target language; Mermaid node names are generated (`n0`, `n1`, ...) and
//! the id is only ever a label.

use std::fmt::Write as _;

use crate::plan::Plan;

/// A Graphviz digraph of the plan, nodes in execution order.
pub fn dot(plan: &Plan<'_>) -> String {
    let jobs = &plan.pipeline.jobs;
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_id(&plan.pipeline.name));
    out.push_str("  rankdir=LR;\n  node [shape=box];\n");
    for step in &plan.steps {
        let name = &jobs[step.job].id.0;
        let id = dot_id(name);
        let mut attributes = Vec::new();
        // Graphviz reads entities in a label (`&amp;` shows as `&`), the node's id included.
        if name.contains('&') {
            attributes.push(format!("label={}", dot_id(&name.replace('&', "&amp;"))));
        }
        if !step.decision.runs() {
            attributes.push("style=dashed, fontcolor=gray40, color=gray40".to_owned());
        }
        if attributes.is_empty() {
            let _ = writeln!(out, "  {id};");
        } else {
            let _ = writeln!(out, "  {id} [{}];", attributes.join(", "));
        }
    }
    for step in &plan.steps {
        let job = &jobs[step.job];
        for need in plan.needs(job) {
            let _ = writeln!(out, "  {} -> {};", dot_id(need), dot_id(&job.id.0));
        }
    }
    out.push_str("}\n");
    out
}

/// A DOT quoted string: backslashes and quotes escaped, line breaks as `\n`.
fn dot_id(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Mermaid flowchart of the plan, nodes in execution order.
pub fn mermaid(plan: &Plan<'_>) -> String {
    let jobs = &plan.pipeline.jobs;
    let mut out = String::from("flowchart TD\n");
    let mut skipped = Vec::new();
    for step in &plan.steps {
        let _ = writeln!(
            out,
            "  n{}[\"{}\"]",
            step.job,
            mermaid_label(&jobs[step.job].id.0)
        );
        if !step.decision.runs() {
            skipped.push(format!("n{}", step.job));
        }
    }
    for step in &plan.steps {
        for &need in &jobs[step.job].needs {
            let _ = writeln!(out, "  n{need} --> n{}", step.job);
        }
    }
    if !skipped.is_empty() {
        out.push_str("  classDef skipped stroke-dasharray: 5 5,color:#777;\n");
        let _ = writeln!(out, "  class {} skipped;", skipped.join(","));
    }
    out
}

/// Text safe inside a quoted Mermaid label: quotes, brackets and markup as entity codes.
fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '[' => out.push_str("#91;"),
            ']' => out.push_str("#93;"),
            '(' => out.push_str("#40;"),
            ')' => out.push_str("#41;"),
            '{' => out.push_str("#123;"),
            '}' => out.push_str("#125;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_ids_are_quoted_and_escaped() {
        assert_eq!(dot_id("build[os=linux]"), "\"build[os=linux]\"");
        assert_eq!(dot_id("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }

    #[test]
    fn mermaid_labels_escape_what_mermaid_parses() {
        assert_eq!(
            mermaid_label("build[os=\"x\"]#1"),
            "build#91;os=#quot;x#quot;#93;#35;1"
        );
        assert_eq!(mermaid_label("a<b>&(c)"), "a#lt;b#gt;#amp;#40;c#41;");
    }
}
