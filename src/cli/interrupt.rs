//! Ctrl-C and SIGTERM: the first stops reading so the run can finish what it read (a valid
//! output, the summary, the report); a second aborts at once, removing unfinished files.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The stop request a run polls, and which signal made it.
#[derive(Debug, Clone)]
pub struct Interrupt {
    stop: Arc<AtomicBool>,
    signal: Arc<AtomicI32>,
}

impl Interrupt {
    /// Starts the thread that receives SIGINT and SIGTERM for the rest of the process.
    pub fn install() -> anyhow::Result<Interrupt> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let interrupt = Interrupt {
            stop: Arc::new(AtomicBool::new(false)),
            signal: Arc::new(AtomicI32::new(0)),
        };
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let seen = interrupt.clone();
        // The handler only records the signal; this ordinary thread acts on it, where locks,
        // file removal and printing are allowed.
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if seen.signal.swap(sig, Ordering::SeqCst) == 0 {
                        seen.stop.store(true, Ordering::SeqCst);
                        continue;
                    }
                    abort(sig);
                }
            })?;
        Ok(interrupt)
    }

    /// The flag a reader watches: set once the first signal arrives.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The signal that stopped the run, if one did.
    pub fn received(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

/// The conventional exit status of a process ended by `sig`: 130 for SIGINT, 143 for SIGTERM.
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}

/// The signal's name for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// A second signal: no more waiting. Unfinished outputs go, so no temporary file survives.
fn abort(sig: i32) -> ! {
    dnatsim::output::remove_pending();
    let mut err = std::io::stderr().lock();
    if std::io::stderr().is_terminal() {
        // Clear a progress bar's line.
        let _ = write!(err, "\r\x1b[2K");
    }
    let _ = writeln!(
        err,
        "dnatsim: {} again: stopped at once; unfinished output files removed",
        name(sig)
    );
    std::process::exit(exit_code(sig));
}
