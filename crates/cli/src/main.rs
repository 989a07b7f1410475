//! `roster`: the command-line entry point; everything else is the `roster_cli` library.

fn main() -> std::process::ExitCode {
    roster_cli::main()
}
