//! Build information and process figures (CPU, memory, file descriptors, threads), exported
//! through the metric table under the conventional `process_*` names that dashboards and
//! alert rules written for any exporter already use. Read from `/proc/self` at scrape time;
//! on a system without procfs the process families are simply absent.

/// What `nv_build_info` reports: the binary's version, commit and cargo features.
#[derive(Clone, Copy, Debug)]
pub struct BuildInfo<'a> {
    pub version: &'a str,
    pub commit: &'a str,
    pub features: &'a str,
}

/// Clock ticks per second of `/proc/*/stat` times. USER_HZ is fixed by the Linux ABI at 100
/// on every architecture we build for; reading it would need `sysconf` (libc, unsafe) for
/// a constant (the Prometheus Go client hard-codes it for the same reason).
const USER_HZ: f64 = 100.0;

/// One reading of the process's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, all threads.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    /// Soft limit on open file descriptors (`None` when unlimited).
    pub max_fds: Option<u64>,
    pub threads: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where procfs is missing or unreadable.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
        let mut s = Self::parse(&stat, &status, &limits, &boot)?;
        // The directory handle that listed the fds was one of them.
        s.open_fds = open_fds.saturating_sub(1);
        Some(s)
    }

    /// Parses the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/self/limits` and
    /// `/proc/stat` (`open_fds` is left 0).
    pub fn parse(stat: &str, status: &str, limits: &str, proc_stat: &str) -> Option<Self> {
        // The command name (field 2) is in parentheses and may hold spaces or parentheses:
        // the fields after it start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field n is fields[n - 3].
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let (utime, stime) = (field(14)?, field(15)?);
        let start_ticks = field(22)?;
        let vsize = field(23)?;
        let status_kb = |key: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(key))?;
            line[key.len()..].split_whitespace().next()?.parse().ok()
        };
        let btime: u64 = proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l["Max open files".len()..].split_whitespace().next())
            .and_then(|soft| soft.parse().ok());
        Some(Self {
            cpu_seconds: (utime + stime) as f64 / USER_HZ,
            resident_memory_bytes: status_kb("VmRSS:").unwrap_or(0) * 1024,
            virtual_memory_bytes: vsize,
            open_fds: 0,
            max_fds,
            threads: status_kb("Threads:")?,
            start_time_seconds: btime as f64 + start_ticks as f64 / USER_HZ,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (nv (feed) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
        250 125 0 0 20 0 7 0 1000 123456789 3000 18446744073709551615 1 1 0 0 0 0 0 4096 \
        17664 0 0 0 17 1 0 0 0 0 0";
    const STATUS: &str = "Name:\tnextvision\nVmRSS:\t   12345 kB\nThreads:\t7\n";
    const LIMITS: &str =
        "Limit                     Soft Limit           Hard Limit           Units\n\
        Max open files            65536                524288               files\n";
    const PROC_STAT: &str = "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";

    #[test]
    fn parses_proc_texts() {
        let s = ProcessStats::parse(STAT, STATUS, LIMITS, PROC_STAT).unwrap();
        assert_eq!(s.cpu_seconds, 3.75);
        assert_eq!(s.resident_memory_bytes, 12345 * 1024);
        assert_eq!(s.virtual_memory_bytes, 123_456_789);
        assert_eq!(s.threads, 7);
        assert_eq!(s.max_fds, Some(65536));
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
    }

    #[test]
    fn unlimited_fds_and_garbage() {
        let limits = "Max open files            unlimited            unlimited            files\n";
        let s = ProcessStats::parse(STAT, STATUS, limits, PROC_STAT).unwrap();
        assert_eq!(s.max_fds, None);
        assert_eq!(
            ProcessStats::parse("garbage", STATUS, LIMITS, PROC_STAT),
            None
        );
        assert_eq!(ProcessStats::parse(STAT, "", LIMITS, PROC_STAT), None);
    }
}
