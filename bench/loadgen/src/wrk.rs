//! HTTP scenarios driven by `wrk` (C, epoll, one thread): it reaches the bare endpoint's limit
//! on this machine where a Rust client built on reqwest spends its own CPU first. A scenario
//! is a request (or a Lua expression making one per request) and a number of connections;
//! wrk's Lua `done` hook prints the totals and percentiles as JSON for [`Measured`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One measured run: totals and latency percentiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Requests completed.
    pub requests: u64,
    /// Failed requests: socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
    /// Measured wall time.
    pub seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
}

/// What each wrk connection sends.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path (and query), the same for every request unless `lua_path` is set.
    pub path: String,
    /// Extra headers (an `authorization` among them).
    pub headers: Vec<(String, String)>,
    /// A JSON body sent with every request, unless `lua_body` is set.
    pub body: Option<String>,
    /// A Lua expression evaluated per request for the body; `n` counts requests.
    pub lua_body: Option<String>,
    /// A Lua expression evaluated per request for the path; `n` counts requests.
    pub lua_path: Option<String>,
}

impl Request {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body: None,
            lua_body: None,
            lua_path: None,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            method: "POST",
            body: Some(body.into()),
            ..Self::get(path)
        }
        .header("content-type", "application/json")
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// With a bearer token.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Builds the body per request from a Lua expression over the request counter `n`.
    pub fn lua_body(mut self, expression: impl Into<String>) -> Self {
        self.lua_body = Some(expression.into());
        self
    }

    /// Builds the path per request from a Lua expression over the request counter `n`.
    pub fn lua_path(mut self, expression: impl Into<String>) -> Self {
        self.lua_path = Some(expression.into());
        self
    }

    fn script(&self) -> String {
        // Long brackets of level 5 cannot clash with JSON or tokens.
        let quote = |s: &str| format!("[=====[{s}]=====]");
        let mut lua = format!("wrk.method = {}\n", quote(self.method));
        lua += &format!("wrk.path = {}\n", quote(&self.path));
        if let Some(body) = &self.body {
            lua += &format!("wrk.body = {}\n", quote(body));
        }
        for (name, value) in &self.headers {
            // The spaces keep `[ [=====[` from reading as a long string's `[[`.
            lua += &format!("wrk.headers[ {} ] = {}\n", quote(name), quote(value));
        }
        if self.lua_body.is_some() || self.lua_path.is_some() {
            let path = self.lua_path.clone().unwrap_or_else(|| "nil".into());
            let body = self.lua_body.clone().unwrap_or_else(|| "nil".into());
            lua += &format!(
                "local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, {path}, nil, {body})\nend\n"
            );
        }
        lua += r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"errors\":%d,\"seconds\":%f,\"rps\":%f,\"p50_ms\":%f,\"p99_ms\":%f,\"p999_ms\":%f}\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
"#;
        lua
    }
}

/// The `wrk` binary and a directory for its scripts.
#[derive(Debug, Clone)]
pub struct Wrk {
    bin: PathBuf,
    scripts: PathBuf,
}

impl Wrk {
    /// `wrk` at `bin`, writing scripts under `scripts`.
    pub fn new(bin: impl Into<PathBuf>, scripts: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(scripts)?;
        Ok(Self {
            bin: bin.into(),
            scripts: scripts.to_owned(),
        })
    }

    /// Sends `request` to `base` (scheme, host and port) over `connections` connections from
    /// one thread for `duration`.
    pub async fn run(
        &self,
        base: &str,
        request: &Request,
        connections: usize,
        duration: Duration,
    ) -> anyhow::Result<Measured> {
        let script = self.scripts.join(format!("{}.lua", std::process::id()));
        std::fs::write(&script, request.script())?;
        let out = tokio::process::Command::new(&self.bin)
            .args(["-t1", &format!("-c{connections}")])
            .arg(format!("-d{}s", duration.as_secs().max(1)))
            .args(["--timeout", "10s", "-s"])
            .arg(&script)
            .arg(format!("{base}{}", request.path))
            .output()
            .await
            .with_context(|| format!("running {}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = stdout
            .lines()
            .find_map(|l| l.strip_prefix("WRK_JSON "))
            .with_context(|| {
                format!(
                    "wrk printed no result ({}): {stdout}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        Ok(serde_json::from_str(json)?)
    }
}
