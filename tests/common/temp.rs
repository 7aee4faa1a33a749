//! Temp directories of test processes: `portcullis-test-<pid>-<tag>-<n>` under the system temp
//! dir. A test binary has no teardown hook, so the first call of each binary removes the
//! directories of test processes that have ended. Shared by every test harness (`#[path]`-included
//! where a harness does not use `common`).

use std::path::PathBuf;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh temp directory for config, key and data files.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    static SWEPT: Once = Once::new();
    SWEPT.call_once(remove_dirs_of_ended_test_processes);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("portcullis-test-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Removes `portcullis-test-<pid>-*` directories whose process is gone (Linux: no `/proc/<pid>`).
fn remove_dirs_of_ended_test_processes() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("portcullis-test-"))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let ended = pid.parse::<u32>().is_ok_and(|p| {
            p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
        });
        if ended {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
