//! `kinedge check-config`: every mistake of a configuration with file, line and key, then
//! a summary when there is none.

use std::path::PathBuf;
use std::process::ExitCode;

pub(super) fn check_config(file: Option<PathBuf>) -> ExitCode {
    let report = crate::gateway::config::check::check(file.as_deref());
    for issue in report.all() {
        eprintln!("{issue}");
    }
    match &report.summary {
        Some(summary) if report.is_ok() => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        _ => ExitCode::from(2),
    }
}
