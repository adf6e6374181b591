//! Pending uploads: writes that were started and never committed, which a
//! crashed save leaves inside the storage where `list` cannot see them (an
//! S3 multipart upload, a temporary file, staged chunks). `wharf gc` finds
//! them here and aborts the ones old enough.

use super::StorageService;
use crate::adapter::PendingUpload;
use crate::error::Result;

/// Pending uploads asked for in one call to the adapter.
const PAGE: u32 = 1000;

impl StorageService {
    /// Every pending upload whose path starts with `prefix` (`""` for the
    /// whole backend), all pages of it. Writes in progress right now are
    /// included: compare `started_ms` with a grace period before aborting.
    /// `Unsupported` when the backend keeps nothing of the kind it can show.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn demo(service: &wharf::StorageService) -> wharf::Result<()> {
    /// let day_ago = std::time::SystemTime::now()
    ///     .duration_since(std::time::UNIX_EPOCH)
    ///     .unwrap()
    ///     .as_millis() as u64
    ///     - 86_400_000;
    /// for upload in service.pending_uploads("models/").await? {
    ///     if upload.started_ms.is_some_and(|t| t < day_ago) {
    ///         service.abort_pending(&upload).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.adapter.list_pending(prefix, cursor.as_deref(), PAGE).await?;
            all.extend(page.entries);
            match page.next_cursor {
                // A cursor that does not move would loop forever.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(all)
    }

    /// Discards one pending upload (as [`pending_uploads`] listed it) and
    /// what it staged. One already gone succeeds; a committed object is
    /// never touched.
    ///
    /// [`pending_uploads`]: StorageService::pending_uploads
    pub async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        self.adapter.abort_pending(upload).await
    }
}
