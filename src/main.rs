//! The `kinedge` command: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    kinedge::cli::main()
}
