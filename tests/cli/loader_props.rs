//! Property tests: no input, however malformed, makes loading or validation panic.

use executioner::load::{LoadOptions, load_text};
use executioner::source::Format;
use executioner::validate::{Options, validate};
use proptest::prelude::*;

fn check(text: String, format: Format) {
    let name = format!("fuzz.{}", format.extension());
    if let Ok((doc, _)) = load_text(
        std::path::Path::new(&name),
        text,
        format,
        &LoadOptions::default(),
    ) {
        let _ = validate(&doc, &Options::default());
    }
}

/// Text that looks like a pipeline: fragments of real syntax glued at random.
fn pipelineish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "[jobs.a]\n",
        "command = \"echo {{ vars.x }}\"\n",
        "needs = [\"a\", \"b\"]\n",
        "timeout = \"1h30m\"\n",
        "jobs:\n",
        "  a:\n",
        "    command: x\n",
        "    needs: [a]\n",
        "{\"jobs\": {",
        "\"a\": {\"command\": \"true\"}",
        "}}",
        "<<: *x\n",
        "&x ",
        "*x",
        "matrix = { os = [1, 2] }\n",
        "extends = \"t\"\n",
        "[templates.t]\n",
        "- ",
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "=",
        "\n",
        " ",
        "${HOME}",
        "{%",
        "%}",
        "\u{e9}",
        "\t",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        for format in [Format::Toml, Format::Yaml, Format::Json] {
            check(text.clone(), format);
        }
    }

    #[test]
    fn pipeline_like_text_never_panics(text in pipelineish()) {
        for format in [Format::Toml, Format::Yaml, Format::Json] {
            check(text.clone(), format);
        }
    }
}
