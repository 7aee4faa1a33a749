//! Build script: records the git commit for `portcullis --version`.
//!
//! `PORTCULLIS_COMMIT` (e.g. set by a container build without `.git`) wins; else
//! `git rev-parse --short=12 HEAD` when the source is a checkout; else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PORTCULLIS_COMMIT");
    watch_git_head();
    let commit = std::env::var("PORTCULLIS_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PORTCULLIS_COMMIT={}", commit.trim());
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// Re-runs when HEAD moves: `.git/HEAD` and the ref it names (a worktree's `.git` is a file
/// naming its git directory).
fn watch_git_head() {
    let Some(git_dir) = git_dir() else {
        return;
    };
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    let Ok(text) = std::fs::read_to_string(&head) else {
        return;
    };
    if let Some(name) = text.trim().strip_prefix("ref: ") {
        let common = std::fs::read_to_string(git_dir.join("commondir"))
            .map(|c| git_dir.join(c.trim()))
            .unwrap_or_else(|_| git_dir.clone());
        // Only files that exist: a missing one would make cargo rerun this on every build.
        for watched in [common.join(name), common.join("packed-refs")] {
            if watched.exists() {
                println!("cargo:rerun-if-changed={}", watched.display());
            }
        }
    }
}

fn git_dir() -> Option<std::path::PathBuf> {
    let dot_git = Path::new(".git");
    if dot_git.is_dir() {
        return Some(dot_git.to_path_buf());
    }
    let text = std::fs::read_to_string(dot_git).ok()?;
    let dir = text.trim().strip_prefix("gitdir: ")?;
    Some(Path::new(dir).to_path_buf())
}
