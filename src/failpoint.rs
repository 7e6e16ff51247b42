//! Crash injection for the tests of crash safety: with `BERTH_FAILPOINT=NAME` in its
//! environment, the daemon kills itself with SIGKILL when it reaches the point NAME, exactly
//! as `kill -9` at that moment would. Without the variable a point costs one load of a
//! cached value. The points are listed in docs/security.md.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    POINT
        .get_or_init(|| {
            std::env::var("BERTH_FAILPOINT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Dies here if this point is armed.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        tracing::warn!(point = name, "failpoint reached: killing the daemon");
        // SAFETY: plain system calls; SIGKILL ends the process at once, as `kill -9` does.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
