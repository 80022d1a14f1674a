//! `kinedge run`: the gateway, on a multi-threaded runtime of two workers, with its logging
//! and the allocator settings a small board needs.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{init_logging, load_config};

pub(super) fn run_gateway(config_path: Option<PathBuf>, data_dir: Option<PathBuf>) -> ExitCode {
    let config = match load_config(config_path.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log.level.as_deref(), config.log.format, "info");
    limit_malloc_arenas();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("kinedge")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::gateway::run(config, data_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps glibc from holding on to memory a gateway has freed:
/// - every thread that allocates under contention gets an arena of its own that keeps what
///   was freed in it; two arenas are enough for two worker threads;
/// - glibc raises its mmap threshold each time a large mmap'ed block is freed, so large
///   blocks then come from the heap and stay there: an Argon2 password check (19 MiB) on
///   every MQTT CONNECT would grow the process by that much each time. A fixed threshold of
///   4 MiB keeps large blocks in mmap, returned to the system when freed.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only adjusts allocator parameters; it is called before the runtime
        // starts its threads.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        }
    }
}
