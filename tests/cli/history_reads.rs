//! Reading the history through the real binary: what `runs`, `show`, `logs` and `stats` print,
//! and how they treat values and databases they cannot read as asked.

use crate::harness::Sandbox;
use crate::history::json;

#[test]
fn stats_keep_apart_jobs_of_different_pipelines_with_one_id() {
    let sb = Sandbox::new();
    sb.file("p1.toml", "name = \"p1\"\n[jobs.a]\ncommand = \"false\"\n");
    sb.file("p3.toml", "name = \"p3\"\n[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p1.toml"]).code, 1);
    for _ in 0..2 {
        assert_eq!(sb.exe(&["apply", "-q", "p3.toml"]).code, 0);
    }
    let stats = sb.exe(&["stats", "--format", "json"]);
    let rows: Vec<(String, String, u64, u64)> = json(&stats)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pipeline"].as_str().unwrap().to_owned(),
                r["job"].as_str().unwrap().to_owned(),
                r["runs"].as_u64().unwrap(),
                r["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("p1".to_owned(), "a".to_owned(), 1, 1),
            ("p3".to_owned(), "a".to_owned(), 2, 0)
        ]
    );
    let text = sb.exe(&["stats"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let lines: Vec<Vec<&str>> = text
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        lines,
        [
            ["PIPELINE", "JOB", "RUNS", "FAILED"],
            ["p1", "a", "1", "100%"],
            ["p3", "a", "2", "0%"]
        ],
        "{}",
        text.stdout
    );
}
