//! `exe schema` matches the checked-in schema; `exe init` writes starters that lint clean.

use crate::harness::{Sandbox, repo};

#[test]
fn checked_in_schema_matches_the_binary() {
    let sb = Sandbox::new();
    let run = sb.exe(&["schema"]);
    assert_eq!(run.code, 0);
    let checked_in = std::fs::read_to_string(repo().join("schemas/pipeline.schema.json")).unwrap();
    assert!(
        run.stdout == checked_in,
        "schemas/pipeline.schema.json is out of date: run `cargo run -- schema > schemas/pipeline.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        schema["properties"]["jobs"]["type"]
            .to_string()
            .contains("object"),
        "{}",
        schema["properties"]["jobs"]
    );
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn every_starter_lints_clean_and_init_never_overwrites() {
    let sb = Sandbox::new();
    let list = sb.exe(&["init", "--list"]);
    let names: Vec<&str> = list
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert!(names.len() >= 4, "{}", list.stdout);
    for name in names {
        let file = format!(
            "{name}.{}",
            if name.ends_with("yaml") {
                "yaml"
            } else {
                "toml"
            }
        );
        let run = sb.exe(&["init", "--template", name, &file]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let checked = sb.exe(&["lint", &file]);
        assert_eq!(checked.code, 0, "{name}: {}", checked.stdout);
    }
    let again = sb.exe(&["init", "--template", "basic", "basic.toml"]);
    assert_eq!(again.code, 2);
    again.assert_stderr_has("already exists");
    let unknown = sb.exe(&["init", "--template", "nope"]);
    assert_eq!(unknown.code, 2);
    unknown.assert_stderr_has("unknown starter");
}

#[test]
fn default_init_writes_pipeline_toml() {
    let sb = Sandbox::new();
    assert_eq!(sb.exe(&["init"]).code, 0);
    assert!(sb.path().join("pipeline.toml").is_file());
    assert_eq!(sb.exe(&["lint", "pipeline.toml"]).code, 0);
    // A folder gets the default name inside it.
    std::fs::create_dir(sb.path().join("ci")).unwrap();
    let into = sb.exe(&["init", "--template", "basic-yaml", "ci"]);
    assert_eq!(into.code, 0, "{}", into.stderr);
    assert!(sb.path().join("ci/pipeline.yaml").is_file());
    // A folder not made yet is named as one.
    let missing = sb.exe(&["init", "later/"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    missing.assert_stderr_has("later/ is not a folder, nor a file name ending in .toml");
    missing.assert_stderr_has("make the folder first (`mkdir -p later/`)");
    // The starter's first line names the file written.
    assert_eq!(
        sb.exe(&["init", "--template", "etl", "nightly.toml"]).code,
        0
    );
    let text = std::fs::read_to_string(sb.path().join("nightly.toml")).unwrap();
    assert!(
        text.starts_with("# nightly.toml: a starter extract"),
        "{text}"
    );
}

#[test]
fn the_file_name_picks_the_starters_format_and_a_mismatch_is_refused() {
    let sb = Sandbox::new();
    // The default starter, asked for as YAML, is its YAML twin: the file loads.
    for file in ["p.yaml", "p.yml"] {
        assert_eq!(sb.exe(&["init", file]).code, 0);
        assert_eq!(sb.exe(&["lint", file]).code, 0, "{file}");
    }
    assert_eq!(
        sb.exe(&["init", "--template", "basic-yaml", "p.toml"]).code,
        0
    );
    assert_eq!(sb.exe(&["lint", "p.toml"]).code, 0);
    // No twin, or no format at all: nothing is written that would not load.
    for (args, says) in [
        (
            &["init", "--template", "etl", "etl.yaml"][..],
            "written in TOML, not YAML",
        ),
        (&["init", "p.json"], "written in TOML, not JSON"),
        (
            &["init", "pipeline.txt"],
            "exe reads pipelines by their extension",
        ),
    ] {
        let run = sb.exe(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        run.assert_stderr_has(says);
        assert!(!sb.path().join(args.last().unwrap()).exists());
    }
}
