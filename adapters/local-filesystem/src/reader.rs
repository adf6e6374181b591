//! Reads: the object's file, opened once, read from the range's start.

use crate::client::{Store, io_error};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use wharf_guest::{ByteRange, Error};

pub struct ObjectReader {
    file: RefCell<File>,
    remaining: RefCell<u64>,
    path: String,
}

impl ObjectReader {
    pub fn next(&self, max: usize) -> Result<Vec<u8>, Error> {
        let mut remaining = self.remaining.borrow_mut();
        let want = (*remaining).min(max as u64) as usize;
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        let mut file = self.file.borrow_mut();
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read", &self.path, e)),
            }
        }
        if filled < want {
            return Err(Error::Backend(format!(
                "read `{}`: the file shrank while it was read ({} bytes missing)",
                self.path,
                want - filled
            )));
        }
        *remaining -= filled as u64;
        buf.truncate(filled);
        Ok(buf)
    }
}

impl Store {
    pub fn read(&self, path: &str, range: Option<ByteRange>) -> Result<ObjectReader, Error> {
        let full = self.file(path)?;
        let mut file = File::open(&full).map_err(|e| io_error("read", path, e))?;
        let meta = file.metadata().map_err(|e| io_error("read", path, e))?;
        if !meta.is_file() {
            return Err(Error::NotFound(format!("read `{path}`: not an object")));
        }
        let size = meta.len();
        let (start, end) = match range {
            None => (0, size),
            Some(r) => {
                let end = r.end.unwrap_or(size).min(size);
                if r.end.is_some_and(|e| e < r.start) {
                    return Err(Error::Invalid(format!("read `{path}`: range end before start")));
                }
                (r.start.min(end), end)
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_error("read", path, e))?;
        }
        Ok(ObjectReader {
            file: RefCell::new(file),
            remaining: RefCell::new(end - start),
            path: path.into(),
        })
    }
}
