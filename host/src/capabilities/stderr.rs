//! Guest stderr goes to the host log, a line at a time, tagged with the
//! backend; a chatty guest is cut off after a budget.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_LINE: usize = 4096;
const BUDGET: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct GuestLog {
    backend: Arc<str>,
    redactor: super::Redactor,
    state: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    line: Vec<u8>,
    written: usize,
}

impl GuestLog {
    pub(crate) fn new(backend: Arc<str>, redactor: super::Redactor) -> Self {
        GuestLog {
            backend,
            redactor,
            state: Arc::default(),
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = self.redactor.apply(&String::from_utf8_lossy(line));
        tracing::warn!(target: "wharf::guest", backend = %self.backend, "{}", text.trim_end());
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut lines = Vec::new();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.written < BUDGET {
                let room = BUDGET - st.written;
                let take = &buf[..buf.len().min(room)];
                st.written += take.len();
                for &b in take {
                    if b == b'\n' || st.line.len() >= MAX_LINE {
                        lines.push(std::mem::take(&mut st.line));
                        if b == b'\n' {
                            continue;
                        }
                    }
                    st.line.push(b);
                }
                if st.written >= BUDGET {
                    lines.push(b"(further guest output suppressed)".to_vec());
                }
            }
        }
        for line in lines {
            self.emit(&line);
        }
        // Always accept everything: a guest must never block on its log.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let line = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut st.line)
        };
        if !line.is_empty() {
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}
