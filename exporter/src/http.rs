//! The exporter's HTTP server: `GET /metrics` and a short index page, nothing else.
//!
//! Written here rather than taken from an HTTP crate because what it must do is small and its
//! bounds are the point: a request head of at most `MAX_HEAD` bytes read within `READ_TIMEOUT`
//! (a slow client is dropped), at most `MAX_CONNECTIONS` connections at once (more are answered
//! 503 and closed, or beyond `MAX_REFUSALS` of those closed at once), one request per connection (`Connection: close`), a response written
//! within `WRITE_TIMEOUT`. No request body is read, no other input taken.

use std::{os::fd::AsRawFd as _, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::timeout,
};

/// Longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Connections beyond those told 503 at once; more are closed without a word.
const MAX_REFUSALS: usize = 16;
/// Time a client has to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the server answers with: the body of `/metrics` for a request's `Accept` header.
pub trait Metrics: Send + Sync + 'static {
    /// The content type and body, or an error message (answered 500).
    fn scrape(&self, accept: Option<&str>) -> Result<(&'static str, String), String>;
}

/// A response, before it is written.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// `HEAD`: headers only.
    pub head_only: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            head_only: false,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            if self.status == 405 {
                "Allow: GET, HEAD\r\n"
            } else {
                ""
            }
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>memstall_exporter</title></head>\n\
<body><h1>memstall_exporter</h1>\n<p>Memory compaction, reclaim and fragmentation stalls, \
counted in the kernel.</p>\n<p><a href=\"/metrics\">/metrics</a></p></body></html>\n";

/// The answer to a complete request head.
pub fn respond(head: &str, metrics: &dyn Metrics) -> Response {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text(400, "bad request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text(400, "HTTP/1.0 or HTTP/1.1 only");
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Response::text(405, "GET or HEAD only"),
    };
    let accept = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim())
    });
    // The path without a query string.
    let path = target.split('?').next().unwrap_or(target);
    let mut response = match path {
        "/metrics" => match metrics.scrape(accept) {
            Ok((content_type, body)) => Response {
                status: 200,
                content_type,
                body,
                head_only: false,
            },
            Err(e) => Response::text(500, &e),
        },
        "/" => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX.to_owned(),
            head_only: false,
        },
        _ => Response::text(404, "not found: /metrics is the only path"),
    };
    response.head_only = head_only;
    response
}

/// Reads a request head: up to the blank line, at most `MAX_HEAD` bytes.
async fn read_head(stream: &mut TcpStream) -> Result<String, Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Response::text(400, "read error"))?;
        if n == 0 {
            return Err(Response::text(400, "incomplete request"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return String::from_utf8(buf).map_err(|_| Response::text(400, "not UTF-8"));
        }
        if buf.len() > MAX_HEAD {
            return Err(Response::text(431, "request head too large"));
        }
    }
}

/// Answers 503 and closes gracefully: the response, then the end of our side, then whatever
/// the client sent read and dropped (briefly), so that closing does not reset the connection
/// under the client's feet before it has read the answer.
async fn refuse(mut stream: TcpStream) {
    let busy = Response::text(503, "too many connections");
    let _ = timeout(WRITE_TIMEOUT, async {
        stream.write_all(&busy.bytes()).await?;
        stream.shutdown().await
    })
    .await;
    let mut sink = [0u8; 1024];
    let mut left = MAX_HEAD;
    let _ = timeout(Duration::from_secs(1), async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Holds back what is written to `stream` until its end (`shutdown`), so that the response and
/// the end of the connection reach the client together: the client is woken once, with
/// everything. Written and then shut down uncorked, the first write wakes the client, which on
/// a busy machine can take the CPU from the exporter before it has shut down: the client then
/// has the body but waits for the end of the stream until the exporter gets a CPU again (timed
/// inside the exporter under the fragmenting workload: a write of 0.02 ms of CPU, 13 ms of
/// wall time).
fn cork(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a descriptor the stream owns, with an int option of its size.
    // Failing, it changes nothing but the number of wake-ups.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

async fn serve(mut stream: TcpStream, metrics: Arc<dyn Metrics>) {
    let response = match timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        // A scrape reads the kernel's maps on the event loop's one thread: other connections
        // wait for it, which is short (milliseconds; the benchmark measures it).
        Ok(Ok(head)) => respond(&head, metrics.as_ref()),
        Ok(Err(r)) => r,
        Err(_) => Response::text(408, "request head not received in time"),
    };
    cork(&stream);
    let _ = timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response.bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Accepts connections until the task is dropped.
pub async fn run(listener: TcpListener, metrics: Arc<dyn Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    serve(stream, metrics).await;
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                // Else dropped here: closed at once.
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Metrics for Fixed {
        fn scrape(&self, accept: Option<&str>) -> Result<(&'static str, String), String> {
            Ok(("text/plain", format!("accept={accept:?}")))
        }
    }

    #[test]
    fn answers_only_its_paths_and_methods() {
        let r = respond(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text",
            &Fixed,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "accept=Some(\"application/openmetrics-text\")");
        let r = respond("GET /metrics?x=1 HTTP/1.0\r\nHost: a", &Fixed);
        assert_eq!((r.status, r.body.as_str()), (200, "accept=None"));
        assert_eq!(respond("GET / HTTP/1.1", &Fixed).status, 200);
        assert!(respond("HEAD /metrics HTTP/1.1", &Fixed).head_only);
        assert_eq!(respond("GET /etc/passwd HTTP/1.1", &Fixed).status, 404);
        assert_eq!(respond("POST /metrics HTTP/1.1", &Fixed).status, 405);
        assert_eq!(respond("GET /metrics", &Fixed).status, 400);
        assert_eq!(respond("GET /metrics SPDY/3", &Fixed).status, 400);
        assert_eq!(respond("", &Fixed).status, 400);
        let bytes = respond("HEAD / HTTP/1.1", &Fixed).bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\r\n\r\n") && text.contains("Content-Length: "));
    }
}
