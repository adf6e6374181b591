//! Writes: one Put Blob for an object that fits one block; otherwise Put
//! Block with several blocks in flight, committed by Put Block List.
//!
//! Uncommitted blocks are never visible, so a failed, aborted or dropped
//! upload leaves nothing to read or list; Azure discards such blocks after
//! a week (or at the blob's next commit).

use crate::client::{Azure, condition_headers, meta_from};
use std::collections::VecDeque;
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::encode::base64;
use wharf_guest_http::random::random_u64;
use wharf_guest_http::{Pending, Request, xml};

/// The most blocks a block blob commits.
pub const MAX_BLOCKS: u64 = 50_000;

/// An object being written.
pub struct Upload {
    azure: Azure,
    path: String,
    blob: String,
    mode: PutMode,
    /// The first block, held until we know whether a second follows.
    first: Option<Vec<u8>>,
    blocks: Option<Blocks>,
    size: u64,
}

/// The blocks of an upload of more than one block.
struct Blocks {
    /// Makes this upload's block ids differ from any other upload's to the
    /// same blob, so concurrent writers never overwrite each other's blocks.
    tag: u64,
    /// Ids of every block sent, in order.
    ids: Vec<String>,
    /// Blocks whose answer has not been read yet, oldest first.
    in_flight: VecDeque<Pending>,
}

impl Upload {
    /// Starts a write of `path`; nothing is sent before a block is complete.
    pub fn new(azure: &Azure, path: String, mode: PutMode) -> Upload {
        Upload {
            azure: azure.clone(),
            blob: azure.blob_name(&path),
            path,
            mode,
            first: None,
            blocks: None,
            size: 0,
        }
    }

    /// Put Blob: the whole (small) object in one request.
    fn put_blob(&mut self) -> Result<ObjectMeta, Error> {
        let body = self.first.take().unwrap_or_default();
        let mut headers = condition_headers(&self.mode);
        headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
        let request = self.azure.request("PUT", Some(&self.blob), &[], headers, body.len());
        self.commit(request, &body)
    }

    /// Waits for the blocks in flight, then Put Block List commits them.
    fn put_block_list(&mut self, mut blocks: Blocks) -> Result<ObjectMeta, Error> {
        while !blocks.in_flight.is_empty() {
            blocks.collect_oldest(&self.azure)?;
        }
        let body = block_list(&blocks.ids);
        let query = [("comp", "blocklist".to_string())];
        let headers = condition_headers(&self.mode);
        let request = self.azure.request("PUT", Some(&self.blob), &query, headers, body.len());
        self.commit(request, body.as_bytes())
    }

    fn commit(&self, request: Request, body: &[u8]) -> Result<ObjectMeta, Error> {
        let response = self.azure.send(&request, body, Some(&self.mode))?;
        let meta = meta_from(&self.path, self.size, &response);
        response.discard();
        Ok(meta)
    }
}

impl wharf_guest::Upload for Upload {
    /// Takes the next block (the host sends exactly `block_size` bytes but
    /// for the last append).
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        if let Some(blocks) = self.blocks.as_mut() {
            return blocks.put(&self.azure, &self.blob, chunk);
        }
        let Some(first) = self.first.take() else {
            self.first = Some(chunk);
            return Ok(());
        };
        // A second block: this becomes a block upload. Fail before
        // uploading gigabytes, not after.
        self.azure.check_precondition(&self.path, &self.mode)?;
        let blocks = self.blocks.insert(Blocks {
            tag: random_u64(),
            ids: Vec::new(),
            in_flight: VecDeque::new(),
        });
        blocks.put(&self.azure, &self.blob, first)?;
        blocks.put(&self.azure, &self.blob, chunk)
    }

    /// Makes the object visible, honouring the put-mode. On failure nothing
    /// is visible.
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        match self.blocks.take() {
            None => self.put_blob(),
            Some(blocks) => self.put_block_list(blocks),
        }
    }
}

impl Blocks {
    /// Put Block, after waiting for the oldest block when `max_in_flight`
    /// are on their way.
    fn put(&mut self, azure: &Azure, blob: &str, data: Vec<u8>) -> Result<(), Error> {
        while self.in_flight.len() >= azure.config().max_in_flight {
            self.collect_oldest(azure)?;
        }
        let index = self.ids.len() as u64;
        if index >= MAX_BLOCKS {
            return Err(Error::Invalid(format!(
                "Azure commits at most {MAX_BLOCKS} blocks: blob `{blob}` is larger than {MAX_BLOCKS} × block_size"
            )));
        }
        let id = block_id(self.tag, index);
        let query = [("comp", "block".to_string()), ("blockid", id.clone())];
        let request = azure.request("PUT", Some(blob), &query, Vec::new(), data.len());
        self.in_flight.push_back(request.start(&data)?);
        self.ids.push(id);
        Ok(())
    }

    /// Reads the answer to the oldest block in flight.
    fn collect_oldest(&mut self, azure: &Azure) -> Result<(), Error> {
        if let Some(pending) = self.in_flight.pop_front() {
            azure.wait(pending)?.discard();
        }
        Ok(())
    }
}

/// The id of block `index` of the upload tagged `tag`: base64 of a fixed
/// 24-byte text (`<16 hex digits>-<7 digits>`), so every id of a blob has
/// the same length, as Azure requires.
fn block_id(tag: u64, index: u64) -> String {
    base64(format!("{tag:016x}-{index:07}").as_bytes())
}

/// The Put Block List body committing `ids` in order.
fn block_list(ids: &[String]) -> String {
    let mut doc = String::from(r#"<?xml version="1.0" encoding="utf-8"?><BlockList>"#);
    for id in ids {
        doc.push_str("<Latest>");
        doc.push_str(&xml::escape(id));
        doc.push_str("</Latest>");
    }
    doc.push_str("</BlockList>");
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_guest_http::encode::base64_decode;

    #[test]
    fn block_ids_have_one_length() {
        let a = block_id(0xabc, 0);
        let b = block_id(u64::MAX, MAX_BLOCKS - 1);
        assert_eq!((a.len(), b.len()), (32, 32));
        assert_eq!(base64_decode(&a).unwrap(), b"0000000000000abc-0000000");
        assert_eq!(base64_decode(&b).unwrap(), b"ffffffffffffffff-0049999");
    }

    #[test]
    fn block_list_body() {
        assert_eq!(
            block_list(&["QQ==".into(), "Qg==".into()]),
            r#"<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ==</Latest><Latest>Qg==</Latest></BlockList>"#
        );
    }
}
