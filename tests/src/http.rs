//! A minimal HTTP/1.1 client for the dashboard's JSON API (plain TCP, loopback only): one
//! request per connection, so the tests need no HTTP client crate.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// An answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Header lines as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `base` is `http://ADDR/`; `path` starts with `/`.
fn addr_of(base: &str) -> anyhow::Result<&str> {
    base.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .with_context(|| format!("not an http:// address: {base}"))
}

/// Sends one request and reads the whole answer (`Connection: close`).
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> anyhow::Result<Answer> {
    let addr = addr_of(base)?;
    let mut tcp = TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut raw))
        .await
        .context("no answer within 30 s")??;
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(raw: &str) -> anyhow::Result<Answer> {
    let (head, body) = raw.split_once("\r\n\r\n").context("no header end")?;
    let mut lines = head.lines();
    let status_line = lines.next().context("no status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(body)?
    } else {
        body.to_owned()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn unchunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("bad chunk")?;
        let size = usize::from_str_radix(size.trim(), 16)?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("short chunk")?);
        body = rest.get(size + 2..).context("short chunk")?;
    }
}

/// `POST path` with a JSON body (and a bearer token when given).
pub async fn post_json(
    base: &str,
    path: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> anyhow::Result<Answer> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    request(base, "POST", path, &headers, &body.to_string()).await
}

/// `GET path` (with a bearer token when given).
pub async fn get(base: &str, path: &str, token: Option<&str>) -> anyhow::Result<Answer> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    request(base, "GET", path, &headers, "").await
}

/// An open Server-Sent Events stream.
pub struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    /// Opens `GET path` as an event stream; fails unless the answer is 200.
    pub async fn open(base: &str, path: &str) -> anyhow::Result<Self> {
        let addr = addr_of(base)?;
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut reader = BufReader::new(tcp);
        let mut status = String::new();
        reader.read_line(&mut status).await?;
        if !status.contains(" 200 ") {
            bail!("the event stream answered {status:?}");
        }
        Ok(Self { reader })
    }

    /// The next `data:` payload within `wait`.
    pub async fn next_data(&mut self, wait: Duration) -> anyhow::Result<String> {
        tokio::time::timeout(wait, async {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await? == 0 {
                    bail!("the event stream ended");
                }
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    return Ok(data.trim().to_owned());
                }
            }
        })
        .await
        .context("no event in time")?
    }
}
