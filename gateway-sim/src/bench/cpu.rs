//! CPU time of one thread or one process, read from `/proc`, so that a relay's CPU can be
//! measured apart from the load generator's.
//!
//! The first field of `schedstat` is the scheduler's own run time in nanoseconds
//! (`sum_exec_runtime`), exact whatever the tick; `stat`'s `utime + stime` counts in clock
//! ticks and, with tick-based accounting, can be badly skewed for a thread that wakes for a
//! moment at a fixed phase of the tick (as a relay fed in 1 ms slots does).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Where a relay's CPU time is read.
#[derive(Debug, Clone)]
pub(crate) enum CpuClock {
    /// One thread: its `schedstat`.
    Thread(PathBuf),
    /// Every thread of a process: the `task` directory.
    Process(PathBuf),
}

impl CpuClock {
    /// The calling thread (its `/proc/<pid>/task/<tid>/schedstat`).
    pub(crate) fn current_thread() -> io::Result<Self> {
        // `/proc/thread-self` links to `<pid>/task/<tid>`; resolve it now, from this thread.
        let link = std::fs::read_link("/proc/thread-self")?;
        let clock = Self::Thread(PathBuf::from("/proc").join(link).join("schedstat"));
        clock.read()?;
        Ok(clock)
    }

    /// A whole process, all its threads (a thread that has ended no longer counts).
    pub(crate) fn process(pid: u32) -> Self {
        Self::Process(PathBuf::from(format!("/proc/{pid}/task")))
    }

    /// CPU time used so far.
    pub(crate) fn read(&self) -> io::Result<Duration> {
        match self {
            CpuClock::Thread(path) => run_time(path),
            CpuClock::Process(dir) => {
                let mut total = Duration::ZERO;
                for task in std::fs::read_dir(dir)? {
                    // A thread may end between the listing and the read.
                    if let Ok(t) = run_time(&task?.path().join("schedstat")) {
                        total += t;
                    }
                }
                Ok(total)
            }
        }
    }
}

fn run_time(schedstat: &PathBuf) -> io::Result<Duration> {
    let text = std::fs::read_to_string(schedstat)?;
    let nanos = text
        .split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, schedstat.display().to_string())
        })?;
    Ok(Duration::from_nanos(nanos))
}
