//! Guest stderr goes to the host log, a line at a time, tagged with the
//! backend; a chatty guest is cut off after a budget.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const MAX_LINE: usize = 4096;
const BUDGET: usize = 64 * 1024;

/// One instance's output: stderr lines are logged at WARN and the last
/// few kept (an error that the instance trapped quotes them: a Python
/// guest's traceback says why), stdout lines at INFO.
#[derive(Clone)]
pub(crate) struct GuestLog {
    backend: Arc<str>,
    redactor: super::Redactor,
    state: Arc<Mutex<LogState>>,
    stderr: bool,
}

#[derive(Default)]
struct LogState {
    /// The unfinished line of stdout and of stderr.
    lines: [Vec<u8>; 2],
    written: usize,
    /// The last stderr lines, redacted.
    tail: std::collections::VecDeque<String>,
}

/// Stderr lines an error quotes at most.
const TAIL_LINES: usize = 6;

impl GuestLog {
    /// The instance's stderr; [`GuestLog::stdout`] its stdout.
    pub(crate) fn new(backend: Arc<str>, redactor: super::Redactor) -> Self {
        GuestLog {
            backend,
            redactor,
            state: Arc::default(),
            stderr: true,
        }
    }

    /// The same instance's stdout (one output budget for both).
    pub(crate) fn stdout(&self) -> Self {
        GuestLog {
            stderr: false,
            ..self.clone()
        }
    }

    /// The last stderr lines, oldest first.
    pub(crate) fn tail(&self) -> Vec<String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tail.iter().cloned().collect()
    }

    fn emit(&self, line: &[u8]) {
        let text = self.redactor.apply(&String::from_utf8_lossy(line));
        let text = text.trim_end();
        if self.stderr {
            tracing::warn!(target: "wharf::guest", backend = %self.backend, "{text}");
            if !text.trim().is_empty() {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.tail.len() == TAIL_LINES {
                    st.tail.pop_front();
                }
                st.tail.push_back(text.to_string());
            }
        } else {
            tracing::info!(target: "wharf::guest", backend = %self.backend, "{text}");
        }
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
                let line = &mut st.lines[usize::from(self.stderr)];
                for &b in take {
                    if b == b'\n' || line.len() >= MAX_LINE {
                        lines.push(std::mem::take(line));
                        if b == b'\n' {
                            continue;
                        }
                    }
                    line.push(b);
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
            std::mem::take(&mut st.lines[usize::from(self.stderr)])
        };
        if !line.is_empty() {
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}
