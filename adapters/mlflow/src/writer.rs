//! Writes: a multipart upload through the server's `mpu/*` routes when the
//! artifact store has them (S3, Azure, GCS destinations: the parts go to the
//! presigned URLs the server hands out), otherwise one `PUT` whose body is
//! streamed from the appends. The file store answers `mpu/create` with 501.

use crate::client::{MPU, Missing, Mlflow, error_detail};
use serde_json::{Value, json};
use std::collections::VecDeque;
use wharf_guest::{Error, ObjectMeta};
use wharf_guest_http::encode::uri_encode;
use wharf_guest_http::{BodyWriter, Endpoint, HttpError, Pending, Request, Response};

/// An object being written.
pub struct Upload {
    client: Mlflow,
    path: String,
    key: String,
    size_hint: Option<u64>,
    state: State,
    size: u64,
}

enum State {
    /// Nothing sent yet.
    Idle,
    /// One `PUT` under way, its body chunked (no `Content-Length`): dropped
    /// unfinished, the body never ends and the server keeps nothing.
    Put(BodyWriter),
    Multipart(Multipart),
}

struct Multipart {
    /// The artifact directory and file name the `mpu` routes take.
    dir: String,
    name: String,
    upload_id: String,
    /// Presigned part URLs with their headers, by part number - 1.
    credentials: Vec<Credential>,
    done: Vec<(u32, String, String)>,
    in_flight: VecDeque<(u32, Pending)>,
}

struct Credential {
    part_number: u32,
    url: String,
    headers: Vec<(String, String)>,
}

impl Upload {
    /// Starts a write of `path`; nothing is sent before the first bytes.
    pub fn new(client: &Mlflow, path: String, size_hint: Option<u64>) -> Upload {
        Upload {
            client: client.clone(),
            key: client.key(&path),
            path,
            size_hint,
            state: State::Idle,
            size: 0,
        }
    }

    /// Multipart when the size is known to span several parts and the store
    /// supports it; one streamed `PUT` otherwise.
    fn begin(&mut self) -> Result<State, Error> {
        let parts = self.size_hint.map_or(0, |n| n.div_ceil(self.client.cfg.part_size));
        // The mpu routes take the artifact's directory in the URL: a file at
        // the root of the artifact store has none.
        if self.client.cfg.multipart
            && parts > 1
            && let Some((dir, name)) = self.key.rsplit_once('/')
        {
            match self.create_multipart(dir, name, parts) {
                Ok(mp) => return Ok(State::Multipart(mp)),
                Err(Error::Unsupported(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.client
            .request("PUT", &Mlflow::artifact_route(&self.key))
            .header("content-type", "application/octet-stream")
            .start_body(None)
            .map(State::Put)
            .map_err(Error::from)
    }

    /// The answer to the `PUT`: accepted (2xx), or the server's refusal.
    fn accepted(&self, answer: Result<Response, HttpError>) -> Result<(), Error> {
        let response = answer?;
        if !(200..300).contains(&response.status) {
            return Err(self.put_failed(response));
        }
        response.discard();
        Ok(())
    }

    /// A `PUT` the server refused: its error, explained when the file store
    /// cannot hold the path.
    fn put_failed(&self, response: Response) -> Error {
        let (what, status) = (response.what().to_string(), response.status);
        let text = response.error_text();
        if status == 500
            && let Some(e) = self.client.explain_put_failure(&self.path)
        {
            return e;
        }
        self.client.fail(&what, status, &text, Missing::NotFound)
    }

    fn mpu_request(&self, action: &str, dir: &str, doc: &Value) -> Result<Value, Error> {
        let route = format!("{MPU}/{action}/{}", uri_encode(dir, true));
        let mut request = self.client.request("POST", &route);
        request.set_header("content-type", "application/json");
        let body = doc.to_string();
        let response = self.client.send(&request, body.as_bytes(), Missing::WrongServer)?;
        let what = response.what().to_string();
        let text = response.text(4 << 20)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| Error::Backend(format!("{what}: the answer is not JSON ({e})")))
    }

    fn create_multipart(&self, dir: &str, name: &str, parts: u64) -> Result<Multipart, Error> {
        let answer = self.mpu_request("create", dir, &json!({ "path": name, "num_parts": parts }))?;
        let bad = |why: &str| Error::Backend(format!("POST {}{MPU}/create/{dir}: {why}", self.client.url()));
        let upload_id = answer
            .get("upload_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut credentials = Vec::new();
        for c in answer
            .get("credentials")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no credentials in the answer"))?
        {
            let url = c
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a credential without url"))?;
            let part_number = c
                .get("part_number")
                .and_then(|n| n.as_u64().or_else(|| n.as_str().and_then(|s| s.parse().ok())))
                .ok_or_else(|| bad("a credential without part_number"))?;
            let headers = c
                .get("headers")
                .and_then(Value::as_object)
                .map(|h| {
                    h.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.to_ascii_lowercase(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            credentials.push(Credential {
                part_number: part_number as u32,
                url: url.to_string(),
                headers,
            });
        }
        credentials.sort_by_key(|c| c.part_number);
        if credentials.len() as u64 != parts {
            return Err(bad(&format!("{} part URLs for {parts} parts", credentials.len())));
        }
        Ok(Multipart {
            dir: dir.to_string(),
            name: name.to_string(),
            upload_id,
            credentials,
            done: Vec::new(),
            in_flight: VecDeque::new(),
        })
    }

    fn send_part(&mut self, data: Vec<u8>) -> Result<(), Error> {
        let window = self.client.cfg.max_in_flight;
        let State::Multipart(mp) = &mut self.state else {
            unreachable!("multipart started")
        };
        while mp.in_flight.len() >= window {
            collect_oldest(mp)?;
        }
        let index = mp.done.len() + mp.in_flight.len();
        let Some(cred) = mp.credentials.get(index) else {
            return Err(Error::Invalid(format!(
                "`{}`: more bytes than the size hint {} announced",
                self.path,
                self.size_hint.unwrap_or(0)
            )));
        };
        let request = presigned_request(&cred.url, &cred.headers)?;
        let pending = request.start(&data)?;
        mp.in_flight.push_back((cred.part_number, pending));
        Ok(())
    }

    fn complete(&self, mp: &mut Multipart) -> Result<(), Error> {
        while !mp.in_flight.is_empty() {
            collect_oldest(mp)?;
        }
        let parts: Vec<Value> = mp
            .done
            .iter()
            .map(|(n, etag, url)| json!({ "part_number": n, "etag": etag, "url": url }))
            .collect();
        let doc = json!({ "path": mp.name, "upload_id": mp.upload_id, "parts": parts });
        self.mpu_request("complete", &mp.dir, &doc)?;
        Ok(())
    }

    fn abort_quietly(&self, mp: Multipart) {
        if let Err(e) = self.abort_multipart(mp) {
            eprintln!("mlflow: could not abort the multipart upload of `{}`: {e:?}", self.path);
        }
    }

    fn abort_multipart(&self, mp: Multipart) -> Result<(), Error> {
        // Let parts in flight end first: a part that lands after the abort
        // may be kept by the store.
        for (_, pending) in mp.in_flight {
            if let Ok(response) = pending.wait() {
                response.discard();
            }
        }
        let doc = json!({ "path": mp.name, "upload_id": mp.upload_id });
        match self.mpu_request("abort", &mp.dir, &doc) {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl wharf_guest::Upload for Upload {
    /// Sends `chunk` (with multipart, the host sends exactly `part_size`
    /// bytes but for the last append).
    fn append(&mut self, chunk: Vec<u8>) -> Result<(), Error> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.size += chunk.len() as u64;
        if matches!(self.state, State::Idle) {
            self.state = self.begin()?;
        }
        match &mut self.state {
            State::Put(body) => match body.write(&chunk)? {
                None => Ok(()),
                Some(early) => Err(self.put_failed(early)),
            },
            State::Multipart(_) => self.send_part(chunk),
            State::Idle => unreachable!("begin sets the state"),
        }
    }

    /// Makes the object visible. On failure nothing is visible: a multipart
    /// upload is aborted, a `PUT` the server did not accept kept nothing.
    fn finish(mut self) -> Result<ObjectMeta, Error> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => {
                // No bytes at all: an empty artifact.
                let request = self.client.request("PUT", &Mlflow::artifact_route(&self.key));
                self.accepted(Mlflow::transmit(&request, &[]))?;
            }
            State::Put(body) => self.accepted(body.finish().and_then(Pending::wait))?,
            State::Multipart(mut mp) => {
                let result = self.complete(&mut mp);
                if result.is_err() {
                    self.abort_quietly(mp);
                }
                result?;
            }
        }
        Ok(ObjectMeta {
            path: self.path.clone(),
            size: self.size,
            etag: None,
            modified_ms: None,
        })
    }

    /// Discards what was sent: a `PUT` is cut before its body ends (the
    /// server keeps nothing), a multipart upload is aborted.
    fn abort(mut self) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Multipart(mp) => self.abort_multipart(mp),
            // Dropping the body unfinished cancels the request.
            State::Put(_) | State::Idle => Ok(()),
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let State::Multipart(mp) = std::mem::replace(&mut self.state, State::Idle) {
            self.abort_quietly(mp);
        }
    }
}

/// A request to a presigned part URL (its query carries the signature and
/// is never printed).
fn presigned_request(url: &str, headers: &[(String, String)]) -> Result<Request, Error> {
    let bad = || Error::Backend("the server handed out a part URL that is not http(s)://host/path".into());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let split = rest.find('/').ok_or_else(bad)?;
    let endpoint = Endpoint::parse(&format!("{scheme}://{}", &rest[..split])).map_err(|_| bad())?;
    let mut request = Request::new("PUT", &endpoint, &rest[split..]);
    for (k, v) in headers {
        request.set_header(k, v.clone());
    }
    Ok(request)
}

fn collect_oldest(mp: &mut Multipart) -> Result<(), Error> {
    let Some((n, pending)) = mp.in_flight.pop_front() else {
        return Ok(());
    };
    let response = pending.wait()?;
    let what = response.what().to_string();
    if !(200..300).contains(&response.status) {
        let status = response.status;
        let text = error_detail(&response.error_text());
        let message = format!("{what}: part {n}: {status} {text}");
        return Err(match status {
            401 | 403 => Error::Denied(message),
            s if wharf_guest_http::is_transient_status(s) => Error::Transient(message),
            _ => Error::Backend(message),
        });
    }
    let etag = response
        .header("etag")
        .map(str::to_string)
        .ok_or_else(|| Error::Backend(format!("{what}: part {n} has no ETag")))?;
    response.discard();
    let url = mp
        .credentials
        .iter()
        .find(|c| c.part_number == n)
        .map(|c| c.url.clone())
        .unwrap_or_default();
    mp.done.push((n, etag, url));
    Ok(())
}
