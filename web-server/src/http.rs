//! One HTTP request per connection: read the head (at most 8 KiB, within 10 s), answer
//! `GET` or `HEAD` with a file, `/config.json` or an error, close.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::files::{self, Refusal};
use crate::Site;

/// Largest request head read; a longer one gets 431.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an answer may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, content type and body.
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn text(status: &'static str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status}\n").into_bytes(),
        }
    }
}

/// Serves one connection.
pub async fn answer(mut stream: TcpStream, peer: SocketAddr, site: &Site) {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return,
        Ok(Err(HeadError::TooLarge)) => {
            let _ = write(
                &mut stream,
                Answer::text("431 Request Header Fields Too Large"),
                site,
                false,
            )
            .await;
            return;
        }
        Ok(Err(HeadError::Io(error))) => {
            tracing::debug!(%peer, %error, "reading the request failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no request in time");
            return;
        }
    };
    let (method, target) = match parse_request_line(&head) {
        Some(parts) => parts,
        None => {
            let _ = write(&mut stream, Answer::text("400 Bad Request"), site, false).await;
            return;
        }
    };
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let head_only = method == "HEAD";
    let answer = if method != "GET" && !head_only {
        Answer::text("405 Method Not Allowed")
    } else if path == "/config.json" {
        Answer {
            status: "200 OK",
            content_type: "application/json",
            body: site.config_json.clone().into_bytes(),
        }
    } else {
        match files::resolve(site.root(), path) {
            Ok(file) => match tokio::fs::read(&file).await {
                Ok(body) => Answer {
                    status: "200 OK",
                    content_type: files::mime(path_name(&file))
                        .unwrap_or("application/octet-stream"),
                    body,
                },
                Err(error) => {
                    tracing::warn!(file = %file.display(), %error, "cannot read");
                    Answer::text("500 Internal Server Error")
                }
            },
            Err(Refusal::NotFound) => Answer::text("404 Not Found"),
            Err(Refusal::BadPath) => Answer::text("404 Not Found"),
        }
    };
    tracing::debug!(%peer, method, path, status = answer.status, "answered");
    if let Err(error) = write(&mut stream, answer, site, head_only).await {
        tracing::debug!(%peer, %error, "writing the answer failed");
    }
}

fn path_name(file: &std::path::Path) -> &str {
    file.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

enum HeadError {
    TooLarge,
    Io(std::io::Error),
}

/// Reads until the blank line ending the head; `None` if the client closed first.
async fn read_head(stream: &mut TcpStream) -> Result<Option<String>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            head.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// `GET /path HTTP/1.1` → (`GET`, `/path`).
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    Some((method, target))
}

async fn write(
    stream: &mut TcpStream,
    answer: Answer,
    site: &Site,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        answer.status,
        answer.content_type,
        answer.body.len(),
        site.csp(),
    );
    tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(head.as_bytes()).await?;
        if !head_only {
            stream.write_all(&answer.body).await?;
        }
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client too slow"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_request_line() {
        assert_eq!(
            parse_request_line("GET /a.js?x=1 HTTP/1.1\r\nHost: x"),
            Some(("GET", "/a.js?x=1"))
        );
        assert_eq!(parse_request_line("GET a.js HTTP/1.1"), None);
        assert_eq!(parse_request_line("GET / HTTP/2 extra"), None);
        assert_eq!(parse_request_line(""), None);
    }
}
