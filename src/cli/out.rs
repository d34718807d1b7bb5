//! Standard output that behaves in a pipe: `pulp-rs repo show big | head` must end quietly.
//!
//! Rust ignores SIGPIPE, so `println!` panics once the reader has gone. Every line a command
//! prints goes through [`outln!`] instead: a write to a closed stdout is dropped and remembered
//! ([`closed`]), so a long listing can stop early and `bench` still writes its chart and JSON.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to stdout; a closed or failing stdout makes it (and every later line) a
/// no-op. Use through [`outln!`].
pub fn line(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{args}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout has gone (its reader closed the pipe): nothing more will be shown.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// `println!` that never panics on a closed stdout (see [`line`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
