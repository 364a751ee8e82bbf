//! Layering through the library API: includes < file < profile < --set, with provenance.

use executioner::diagnostic::At;
use executioner::load::{LoadOptions, load};
use executioner::validate::{Options, validate};

use crate::harness::Sandbox;

fn pipeline(sb: &Sandbox, options: &LoadOptions) -> executioner::model::Pipeline {
    let (doc, _) = load(&sb.path().join("main.toml"), options).unwrap_or_else(|d| panic!("{d:?}"));
    let (pipeline, diags) = validate(&doc, &Options::default());
    pipeline.unwrap_or_else(|| panic!("{diags:?}"))
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.file("common/a.toml", "max_parallel = 2\n[jobs.setup]\ncommand = \"echo setup\"\n[templates.t]\ntimeout = \"1m\"\n");
    sb.file(
        "main.toml",
        "include = [\"common/*.toml\"]\nmax_parallel = 3\n[jobs.build]\ncommand = \"make\"\nextends = \"t\"\nneeds = [\"setup\"]\n\
         [profiles.ci]\nmax_parallel = 8\n[profiles.ci.jobs.build]\ntimeout = \"5m\"\n",
    );
    sb
}

#[test]
fn later_layers_win_and_file_order_is_kept() {
    let sb = sandbox();
    let p = pipeline(&sb, &LoadOptions::default());
    assert_eq!(p.max_parallel, 3, "the file wins over its include");
    let ids: Vec<&str> = p.jobs.iter().map(|j| j.id.0.as_str()).collect();
    assert_eq!(ids, ["setup", "build"], "included jobs come first");
    assert_eq!(
        p.jobs[1].timeout,
        Some(std::time::Duration::from_mins(1)),
        "from the template"
    );

    let ci = pipeline(
        &sb,
        &LoadOptions {
            profile: Some("ci".into()),
            ..LoadOptions::default()
        },
    );
    assert_eq!(ci.max_parallel, 8);
    assert_eq!(
        ci.jobs[1].timeout,
        Some(std::time::Duration::from_mins(5)),
        "the profile wins over the template"
    );

    let set = LoadOptions {
        profile: Some("ci".into()),
        sets: vec!["max_parallel=5".into(), "jobs.build.timeout=0.5".into()],
        ..LoadOptions::default()
    };
    let p = pipeline(&sb, &set);
    assert_eq!(p.max_parallel, 5);
    assert_eq!(
        p.jobs[1].timeout,
        Some(std::time::Duration::from_millis(500)),
        "fractions are kept"
    );
}

#[test]
fn provenance_names_the_file_profile_or_flag() {
    let sb = sandbox();
    let options = LoadOptions {
        profile: Some("ci".into()),
        sets: vec!["jobs.build.command=make all".into()],
        ..LoadOptions::default()
    };
    let (doc, _) = load(&sb.path().join("main.toml"), &options).unwrap();
    let path = |p: &[&str]| vec![p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    match doc.provenance.locate(&path(&["jobs", "setup", "command"])) {
        Some(At::Span { source, span }) => {
            assert!(source.path.ends_with("common/a.toml"));
            assert_eq!(&source.text[span], "\"echo setup\"");
        }
        other => panic!("{other:?}"),
    }
    match doc.provenance.locate(&path(&["max_parallel"])) {
        Some(At::Span { source, span }) => {
            assert!(source.path.ends_with("main.toml"));
            assert_eq!(&source.text[span], "8", "the value in profiles.ci");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(doc.provenance.locate(&path(&["jobs", "build", "command"])), Some(At::Flag(f)) if f == "--set jobs.build.command=make all")
    );
}

#[test]
fn bad_profile_and_set_are_reported_at_the_flag() {
    let sb = sandbox();
    let err = load(
        &sb.path().join("main.toml"),
        &LoadOptions {
            profile: Some("cj".into()),
            ..LoadOptions::default()
        },
    )
    .unwrap_err()
    .diagnostics;
    assert_eq!(err[0].code, "exe::config::unknown_profile");
    assert_eq!(err[0].help.as_deref(), Some("did you mean `ci`?"));
    let err = load(
        &sb.path().join("main.toml"),
        &LoadOptions {
            sets: vec!["jobs.build.timeout=5x".into()],
            ..LoadOptions::default()
        },
    )
    .unwrap_err()
    .diagnostics;
    assert_eq!(err[0].code, "exe::config::invalid_duration");
    assert!(
        matches!(&err[0].at, Some(At::Flag(f)) if f == "--set jobs.build.timeout=5x"),
        "{:?}",
        err[0].at
    );
}

#[test]
fn matrix_expands_and_needs_name_all_or_one() {
    let sb = Sandbox::new();
    sb.file(
        "main.toml",
        "[jobs.build]\ncommand = \"echo {{ matrix.os }}-{{ matrix.v }}\"\nmatrix = { os = [\"linux\", \"mac\"], v = [1, 2] }\n\
         [jobs.all]\ncommand = \"true\"\nneeds = [\"build\"]\n[jobs.one]\ncommand = \"true\"\nneeds = [\"build[os=mac,v=2]\"]\n",
    );
    let p = pipeline(&sb, &LoadOptions::default());
    let ids: Vec<&str> = p.jobs.iter().map(|j| j.id.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "build[os=linux,v=1]",
            "build[os=linux,v=2]",
            "build[os=mac,v=1]",
            "build[os=mac,v=2]",
            "all",
            "one"
        ]
    );
    assert_eq!(p.jobs[3].command.display(), "echo mac-2");
    assert_eq!(p.jobs[4].needs, [0, 1, 2, 3]);
    assert_eq!(p.jobs[5].needs, [3]);
}

#[test]
fn a_100_000_job_chain_validates_without_recursion() {
    let sb = Sandbox::new();
    let mut text = String::new();
    for i in 0..100_000 {
        text.push_str(&format!("[jobs.j{i}]\ncommand = \"true\"\n"));
        if i > 0 {
            text.push_str(&format!("needs = [\"j{}\"]\n", i - 1));
        }
    }
    text.push_str("[jobs.j0x]\ncommand = \"true\"\nneeds = [\"j99999\"]\n");
    sb.file("main.toml", &text);
    let p = pipeline(&sb, &LoadOptions::default());
    assert_eq!(p.jobs.len(), 100_001);
    // Close the chain into a cycle: the whole path is reported, no stack overflow.
    sb.file(
        "main.toml",
        text.replacen(
            "[jobs.j0]\ncommand = \"true\"\n",
            "[jobs.j0]\ncommand = \"true\"\nneeds = [\"j0x\"]\n",
            1,
        ),
    );
    let (doc, _) = load(&sb.path().join("main.toml"), &LoadOptions::default()).unwrap();
    let (none, diags) = validate(&doc, &Options::default());
    assert!(none.is_none());
    let cycle = diags
        .iter()
        .find(|d| d.code == "exe::graph::cycle")
        .expect("a cycle");
    assert_eq!(cycle.message.matches(" -> ").count(), 100_001);
}

#[test]
fn env_entries_may_name_each_other_in_any_order() {
    let sb = Sandbox::new();
    sb.file(
        "main.toml",
        "[env]\nA = \"${B}/x\"\nB = \"${C}/y\"\nC = \"root\"\n[jobs.j]\ncommand = \"true\"\nenv = { D = \"${A}/${E}\", E = \"e\" }\n",
    );
    let p = pipeline(&sb, &LoadOptions::default());
    let env = p.job_env(&p.jobs[0]);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("A"), Some("root/y/x"));
    assert_eq!(get("D"), Some("root/y/x/e"));
}

#[test]
fn extends_in_defaults_applies_to_every_job() {
    let sb = Sandbox::new();
    sb.file(
        "main.toml",
        "[defaults]\nextends = \"slow\"\n[templates.slow]\ntimeout = \"2h\"\n[jobs.a]\ncommand = \"true\"\n[jobs.b]\ncommand = \"true\"\ntimeout = \"1s\"\n",
    );
    let p = pipeline(&sb, &LoadOptions::default());
    assert_eq!(p.jobs[0].timeout, Some(std::time::Duration::from_hours(2)));
    assert_eq!(
        p.jobs[1].timeout,
        Some(std::time::Duration::from_secs(1)),
        "the job's own value wins"
    );
}
