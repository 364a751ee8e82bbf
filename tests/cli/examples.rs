//! Every example pipeline lints clean: the examples are documentation that must stay true.

use crate::harness::{Sandbox, repo};

#[test]
fn every_example_lints_without_errors() {
    let sb = Sandbox::new();
    let examples = repo().join("examples");
    let run = sb.exe(&["lint", "--format", "json", examples.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["error_count"], 0, "{}", run.stdout);
    assert_eq!(run.code, 0, "{}", run.stdout);
    // Only the legacy file warns that it is legacy; and the examples that show `notify`
    // (the legacy one too) that nothing is sent yet.
    let warnings: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .filter(|&code| code != "exe::config::notify_not_sent")
        .collect();
    assert_eq!(warnings, ["exe::config::legacy_format"], "{}", run.stdout);
}

#[test]
fn each_example_file_lints_on_its_own() {
    let sb = Sandbox::new();
    let mut count = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let candidates = if path.is_dir() {
            std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect()
        } else {
            vec![path]
        };
        for file in candidates {
            if !matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("toml" | "yaml" | "yml" | "json")
            ) {
                continue;
            }
            let run = sb.exe(&["lint", file.to_str().unwrap()]);
            assert_eq!(run.code, 0, "{}: {}", file.display(), run.stdout);
            count += 1;
        }
    }
    assert!(
        count >= 8,
        "expected at least 8 example pipelines, found {count}"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_example_runs() {
    let sb = Sandbox::new();
    copy_dir(&repo().join("examples"), &sb.path().join("examples"));
    let pipelines = [
        "nightly-etl.toml",
        "matrix-build.yaml",
        "layered/pipeline.toml",
        "retries-and-timeouts.yaml",
        "legacy/executioner.json",
        "deploy.json",
        "data-quality.yaml",
        "backup-rotation.toml",
        "static-site/pipeline.toml",
        "fan-out.toml",
        "continue-on-error.toml",
    ];
    for file in pipelines {
        let run = sb.exe(&["apply", "--output", "quiet", &format!("examples/{file}")]);
        // continue-on-error.toml fails one branch on purpose, to show the others still run.
        let expected = i32::from(file == "continue-on-error.toml");
        assert_eq!(run.code, expected, "{file}:\n{}", run.stderr);
    }
}
