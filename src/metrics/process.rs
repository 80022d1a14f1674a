//! The process's own figures from `/proc/self` (Linux): resident memory, CPU time, open file
//! descriptors, start time. Elsewhere they are absent.

/// What `/proc/self` tells; `None` where it could not be read.
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    pub fn read() -> ProcessStats {
        #[cfg(target_os = "linux")]
        {
            linux::read()
        }
        #[cfg(not(target_os = "linux"))]
        {
            ProcessStats::default()
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::ProcessStats;

    pub fn read() -> ProcessStats {
        // SAFETY: sysconf only reads a system constant.
        let (page_size, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // Fields after the command name, which is in parentheses and may contain spaces.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After ")": state is field 3 of proc(5), so field N is at index N - 3.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = match (field(14), field(15)) {
            (Some(utime), Some(stime)) if ticks > 0 => Some((utime + stime) as f64 / ticks as f64),
            _ => None,
        };
        let resident_memory_bytes = field(24)
            .filter(|_| page_size > 0)
            .map(|pages| pages * page_size as u64);
        let start_time_seconds = field(22).and_then(|start_ticks| {
            let boot = boot_time_seconds()?;
            (ticks > 0).then(|| boot + start_ticks as f64 / ticks as f64)
        });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64);
        ProcessStats {
            resident_memory_bytes,
            cpu_seconds,
            open_fds,
            start_time_seconds,
        }
    }

    fn boot_time_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    }
}
