//! Request path → file under the served folder, and the file's MIME type.
//!
//! Served are the files at the top of the folder and in its `vendor/` folder (the page
//! and its bundled libraries), of the types the page uses: not the build and test
//! tooling that lives beside them (`package.json`, `node_modules/`, `tests/`,
//! `scripts/`). Only plain names are accepted (`A-Z a-z 0-9 . _ -` per segment, no
//! segment starting with `.`), so `..`, percent-escapes, backslashes and hidden files
//! never reach the file system; the resolved path must still lie under the folder (a
//! symlink pointing out is refused too).

use std::path::{Path, PathBuf};

/// Why a path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a name this server serves (`..`, escapes, hidden files, unknown type).
    BadPath,
    /// No such file.
    NotFound,
}

/// The file for request path `path` (query already removed) under `root` (canonical).
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, Refusal> {
    let relative = path.strip_prefix('/').ok_or(Refusal::BadPath)?;
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_string()
    };
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    let segments: Vec<&str> = relative.split('/').collect();
    let placed = match segments.as_slice() {
        [_] => true,
        [folder, _] => *folder == "vendor",
        _ => false,
    };
    if relative.len() > 512 || !placed || !segments.iter().all(|s| plain(s)) {
        return Err(Refusal::BadPath);
    }
    mime(&relative).ok_or(Refusal::BadPath)?;
    let file = root
        .join(&relative)
        .canonicalize()
        .map_err(|_| Refusal::NotFound)?;
    if !file.starts_with(root) {
        return Err(Refusal::BadPath);
    }
    if !file.is_file() {
        return Err(Refusal::NotFound);
    }
    Ok(file)
}

/// The MIME type of a file name, by extension; `None` for a type this server does not
/// serve.
pub fn mime(name: &str) -> Option<&'static str> {
    let extension = name.rsplit_once('.')?.1;
    Some(match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_plain_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("index.html"), "<p>").unwrap();
        std::fs::create_dir(root.join("vendor")).unwrap();
        std::fs::write(root.join("vendor/nats.js"), "").unwrap();
        std::fs::write(root.join(".secret.txt"), "").unwrap();
        std::fs::write(root.join("notes.md"), "").unwrap();
        std::fs::write(root.join("package.json"), "{}").unwrap();
        std::fs::create_dir(root.join("tests")).unwrap();
        std::fs::write(root.join("tests/browser.mjs"), "").unwrap();
        assert_eq!(resolve(&root, "/"), Ok(root.join("index.html")));
        assert_eq!(
            resolve(&root, "/vendor/nats.js"),
            Ok(root.join("vendor/nats.js"))
        );
        for bad in [
            "/../etc/passwd.txt",
            "/vendor/../index.html",
            "/%2e%2e/x.js",
            "/.secret.txt",
            "/vendor//nats.js",
            "/a\\b.js",
            "/notes.md",
            "/package.json",
            "/tests/browser.mjs",
            "/node_modules/x/index.js",
            "index.html",
        ] {
            assert_eq!(resolve(&root, bad), Err(Refusal::BadPath), "{bad}");
        }
        assert_eq!(resolve(&root, "/missing.js"), Err(Refusal::NotFound));
        assert_eq!(resolve(&root, "/vendor"), Err(Refusal::BadPath));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_leading_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("link.txt"))
            .unwrap();
        assert_eq!(resolve(&root, "/link.txt"), Err(Refusal::BadPath));
    }

    #[test]
    fn knows_the_page_types() {
        assert_eq!(mime("app.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(mime("style.css"), Some("text/css; charset=utf-8"));
        assert_eq!(mime("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(mime("Makefile"), None);
    }
}
