//! Integration tests: the real `exe` binary, driven through one small harness.

mod apply;
mod bad_input;
mod diagnostics;
mod examples;
mod harness;
mod history;
mod history_faults;
mod history_reads;
mod layering;
mod loader_props;
mod migrate;
mod plan;
mod schema_and_init;
mod up_to_date;
mod watch;
