//! Copy Blob inside the account. Azure may finish a copy asynchronously:
//! the adapter then polls the destination's `x-ms-copy-status` for a bounded
//! time, well inside the host's call timeout.

use crate::client::{Azure, CopyState, condition_headers, copy_state, meta_from};
use crate::config::Auth;
use std::time::{Duration, Instant};
use wharf_guest::{Error, ObjectMeta, PutMode};

/// How long a pending copy is waited for before it is aborted.
const COPY_WAIT: Duration = Duration::from_secs(60);
const FIRST_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);

impl Azure {
    /// Copies `source` to `destination`, conditional on the destination per
    /// `mode` (Azure checks it atomically when the copy starts).
    pub fn copy(&self, source: &str, destination: &str, mode: &PutMode) -> Result<ObjectMeta, Error> {
        let size = self.stat(source)?.size;
        let mut headers = condition_headers(mode);
        headers.push(("x-ms-copy-source".into(), self.blob_url(&self.blob_name(source))));
        // With Entra ID the source is authorized by a token of its own
        // (API 2020-10-02 and later): the same one, the same account.
        if let Auth::Bearer(token) = &self.config().auth {
            headers.push(("x-ms-copy-source-authorization".into(), format!("Bearer {token}")));
        }
        let request = self.request("PUT", Some(&self.blob_name(destination)), &[], headers, 0);
        let response = self.send(&request, &[], Some(mode))?;
        let state = copy_state(&response);
        let meta = meta_from(destination, size, &response);
        let what = response.what().to_string();
        response.discard();
        match state {
            Some(s) if s.status == "success" => Ok(meta),
            Some(s) if s.status == "pending" => self.await_copy(destination, &s.id),
            Some(s) => Err(self.copy_failed(destination, &s)),
            None => Err(Error::Backend(format!("{what}: the answer has no x-ms-copy-status"))),
        }
    }

    /// Polls a pending copy until it ends or [`COPY_WAIT`] passes.
    fn await_copy(&self, destination: &str, id: &str) -> Result<ObjectMeta, Error> {
        let deadline = Instant::now() + COPY_WAIT;
        let mut pause = FIRST_POLL;
        while Instant::now() < deadline {
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_POLL);
            let head = self.head(destination)?;
            match head.copy {
                Some(s) if s.id != id => {
                    return Err(Error::Backend(format!(
                        "another copy into `{destination}` (id {}) replaced this one (id {id})",
                        s.id
                    )));
                }
                Some(s) if s.status == "success" => return Ok(head.meta),
                Some(s) if s.status == "pending" => {}
                Some(s) => return Err(self.copy_failed(destination, &s)),
                None => {
                    return Err(Error::Backend(format!(
                        "`{destination}` lost its copy status while copy {id} was pending"
                    )));
                }
            }
        }
        self.abort_copy(destination, id);
        Err(Error::Transient(format!(
            "the copy into `{destination}` did not finish within {} s; it was aborted and the \
             destination removed",
            COPY_WAIT.as_secs()
        )))
    }

    /// A copy that ended `failed` or `aborted`: its destination holds no
    /// usable data, so it is removed.
    fn copy_failed(&self, destination: &str, state: &CopyState) -> Error {
        self.discard_copy(destination, &state.id);
        Error::Backend(format!(
            "the copy into `{destination}` ended `{}`: {} (the destination was removed)",
            state.status, state.description
        ))
    }

    /// Abort Copy Blob, then removes the zero-length blob it leaves.
    fn abort_copy(&self, destination: &str, id: &str) {
        let query = [("comp", "copy".to_string()), ("copyid", id.to_string())];
        let headers = vec![("x-ms-copy-action".into(), "abort".into())];
        let request = self.request("PUT", Some(&self.blob_name(destination)), &query, headers, 0);
        match self.send(&request, &[], None) {
            Ok(response) => response.discard(),
            Err(e) => eprintln!("azure_blob: could not abort copy {id} into `{destination}`: {e:?}"),
        }
        self.discard_copy(destination, id);
    }

    /// Removes `destination` if it still holds copy `id`, and never a blob
    /// written there since (the delete is conditional on its etag).
    fn discard_copy(&self, destination: &str, id: &str) {
        let removed = self.head(destination).and_then(|head| match head.copy {
            Some(s) if s.id == id => self.delete_matching(destination, head.meta.etag.as_deref()),
            _ => Ok(()),
        });
        if let Err(e) = removed {
            eprintln!("azure_blob: could not remove `{destination}` after a failed copy: {e:?}");
        }
    }
}
