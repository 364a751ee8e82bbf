//! The `exe` binary: everything happens in [`executioner::run`].

fn main() {
    std::process::exit(executioner::run(std::env::args_os()));
}
