//! The load generator's live progress line (indicatif), drawn on stderr only when asked to
//! (the binary asks when stderr is a terminal), so piped output stays clean.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counts calls as they start and end, and shows them if enabled. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    active: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Progress {
    /// A progress line for `total` calls, drawn only if `enabled`.
    pub(crate) fn new(total: u64, enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} calls, {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            counts: Arc::default(),
        }
    }

    fn redraw(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} active, {} ok, {} failed",
                self.counts.active.load(Ordering::Relaxed),
                self.counts.ok.load(Ordering::Relaxed),
                self.counts.failed.load(Ordering::Relaxed),
            ));
        }
    }

    /// A call started.
    pub(crate) fn started(&self) {
        self.counts.active.fetch_add(1, Ordering::Relaxed);
        self.redraw();
    }

    /// A call ended, well or not. (Calls that failed before starting count too.)
    pub(crate) fn finished(&self, ok: bool) {
        let _ = self
            .counts
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let counter = if ok {
            &self.counts.ok
        } else {
            &self.counts.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.redraw();
    }

    /// Removes the line.
    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
