//! Downloading the assemble, run and save-artifacts scripts from an `http(s)://` scripts URL
//! (`spec.builder.scriptsUrl`) into the build context.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::s2i::scripts::Script;

/// Largest script prepare downloads from an `http(s)://` scripts URL.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed script download.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The scripts URL has no usable script.
    #[error("downloading {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// Writing a downloaded script failed.
    #[error("writing downloaded script {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Downloads `<base>/assemble`, `<base>/run` (required) and `<base>/save-artifacts` (optional,
/// a 404 is fine) into `dir` with mode 0755, each at most `limit` bytes. Returns the scripts
/// written.
pub fn download_scripts(base: &str, dir: &Path, limit: u64) -> Result<Vec<Script>, DownloadError> {
    let client = reqwest::blocking::Client::builder()
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .map_err(|e| DownloadError::Fetch {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
    std::fs::create_dir_all(dir).map_err(|source| DownloadError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for script in Script::ALL {
        let url = format!("{}/{}", base.trim_end_matches('/'), script.file_name());
        let failed = |reason: String| DownloadError::Fetch {
            url: url.clone(),
            reason,
        };
        let response = client.get(&url).send().map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && !script.is_required() {
            tracing::info!(%url, "optional script not provided by the scripts URL");
            continue;
        }
        if !status.is_success() {
            return Err(failed(format!("server answered {status}")));
        }
        let mut body = Vec::new();
        response
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|e| failed(e.to_string()))?;
        if body.len() as u64 > limit {
            return Err(failed(format!("script is larger than {limit} bytes")));
        }
        let path = dir.join(script.file_name());
        let write = |source| DownloadError::Write {
            path: path.clone(),
            source,
        };
        std::fs::write(&path, &body).map_err(write)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(write)?;
        tracing::info!(%url, bytes = body.len(), "downloaded script");
        written.push(script);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves `routes` (path, status, body) on 127.0.0.1 for `requests` requests.
    fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>, requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(requests) {
                let mut stream = stream.unwrap();
                let mut request_line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, b"not found".to_vec()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
            }
        });
        format!("http://{addr}/s2i")
    }

    #[test]
    fn downloads_required_and_optional_scripts() {
        let base = serve(
            vec![
                ("/s2i/assemble", 200, b"#!/bin/sh\necho assemble\n".to_vec()),
                ("/s2i/run", 200, b"#!/bin/sh\necho run\n".to_vec()),
            ],
            3,
        );
        let dir = tempfile::tempdir().unwrap();
        let got = download_scripts(&base, &dir.path().join("scripts"), 1024).unwrap();
        assert_eq!(got, [Script::Assemble, Script::Run]);
        let assemble = dir.path().join("scripts/assemble");
        assert_eq!(
            std::fs::read(&assemble).unwrap(),
            b"#!/bin/sh\necho assemble\n"
        );
        let mode = std::fs::metadata(&assemble).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        assert!(!dir.path().join("scripts/save-artifacts").exists());
    }

    #[test]
    fn missing_required_script_is_an_error_naming_the_url() {
        let base = serve(vec![("/s2i/assemble", 200, b"x".to_vec())], 2);
        let dir = tempfile::tempdir().unwrap();
        let err = download_scripts(&base, dir.path(), 1024).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("{base}/run")), "{message}");
        assert!(message.contains("404"), "{message}");
    }

    #[test]
    fn oversized_script_is_refused() {
        let base = serve(vec![("/s2i/assemble", 200, vec![b'a'; 2048])], 1);
        let dir = tempfile::tempdir().unwrap();
        let err = download_scripts(&base, dir.path(), 1024).unwrap_err();
        assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
        assert!(!dir.path().join("assemble").exists());
    }
}
