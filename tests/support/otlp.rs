//! A tiny OTLP/HTTP receiver for the end-to-end suites: accepts trace exports on 127.0.0.1,
//! answers `200 {}`, and keeps every export (request head and body) for the test to inspect.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// One export request: its request line and headers (lowercased) and its body.
#[derive(Debug, Clone)]
pub struct Export {
    /// Request line and headers, lowercased.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Accepts OTLP/HTTP exports on 127.0.0.1 and answers each with `200 {}`.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    exports: Arc<Mutex<Vec<Export>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve_connection(mut sock: TcpStream, exports: Arc<Mutex<Vec<Export>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let header_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + len {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[header_end..header_end + len].to_vec();
        buf.drain(..header_end + len);
        exports.lock().unwrap().push(Export { head, body });
        let reply =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if sock.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Starts a receiver on a free port.
pub async fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let exports = Arc::new(Mutex::new(Vec::new()));
    let task = {
        let exports = exports.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve_connection(sock, exports.clone()));
            }
        })
    };
    Receiver {
        endpoint,
        exports,
        task,
    }
}

impl Receiver {
    /// Every export so far.
    pub fn exports(&self) -> Vec<Export> {
        self.exports.lock().unwrap().clone()
    }

    /// Every span received so far, each with its resource's attributes.
    pub fn spans(&self) -> Vec<(Value, Value)> {
        let mut out = Vec::new();
        for e in self.exports() {
            let Ok(doc) = serde_json::from_slice::<Value>(&e.body) else {
                continue;
            };
            for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        out.push((rs["resource"].clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// Waits (at most 20 s) for a span of `trace_id`.
    pub async fn span_of_trace(&self, trace_id: &str) -> (Value, Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self
                .spans()
                .into_iter()
                .find(|(_, s)| s["traceId"] == trace_id)
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no span of trace {trace_id} arrived; received {:?}",
                self.exports()
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An attribute's value as text (OTLP/JSON carries integers as strings).
pub fn attr(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
                .unwrap_or_else(|| v.to_string())
        })
}

/// `bytes` random bytes as hex.
pub fn hex_id(bytes: usize) -> String {
    let mut s = String::new();
    while s.len() < bytes * 2 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(bytes * 2);
    s
}

/// The environment that points a process's trace export at `endpoint` (OTLP/HTTP JSON,
/// exported every 100 ms).
pub fn otel_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_owned()),
        ("OTEL_SERVICE_NAME", "tollgate-test".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
}

impl Receiver {
    /// Every export body so far, as text.
    pub fn everything(&self) -> String {
        self.exports()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.body).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
