//! `kinedge storage compact`: rewrites the stream database offline to give back its free
//! pages.

use std::process::ExitCode;

use super::args::StorageAction;
use super::load_config;

pub(super) fn storage_command(action: StorageAction) -> ExitCode {
    let StorageAction::Compact { config, data_dir } = action;
    let config = match load_config(config.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let dir = crate::gateway::resolve_data_dir(&config, data_dir);
    match crate::storage::compact(&dir) {
        Ok(done) => {
            println!(
                "compacted {}: {} -> {} bytes",
                dir.join(crate::storage::STREAMS_DB).display(),
                done.bytes_before,
                done.bytes_after
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
