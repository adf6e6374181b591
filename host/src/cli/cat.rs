use super::{Ctx, exit};
use clap::Args;
use wharf::{ByteRange, Error, ErrorKind, Expected, ObjectPath, Reference};

/// `wharf cat <path> [--range R]`.
#[derive(Args)]
pub(crate) struct Cat {
    /// The object's path in the backend (`wharf ls` lists them), or a
    /// reference to a one-file model (MODEL@N, MODEL@latest, MODEL@ALIAS),
    /// whose file is then checked against its recorded sha256.
    path: String,
    /// Only these bytes, as HTTP ranges write them: `START-END` (both
    /// included), `START-` (to the end) or `-N` (the last N).
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    range: Option<RangeArg>,
    /// The sha256 the bytes written must have (checked as they stream:
    /// a mismatch is exit 5, reported after the bytes went out).
    #[arg(long)]
    sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeArg {
    /// `start` and `end`, both included; `end` `None` for "to the end".
    From(u64, Option<u64>),
    /// The last n bytes.
    Last(u64),
}

pub(crate) fn parse_range(s: &str) -> Result<RangeArg, String> {
    let bad = || format!("range `{s}`: write START-END (both included), START- or -N");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let num = |t: &str| t.parse::<u64>().map_err(|_| bad());
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Ok(RangeArg::Last(num(b)?)),
        (false, true) => Ok(RangeArg::From(num(a)?, None)),
        (false, false) => {
            let (start, end) = (num(a)?, num(b)?);
            if end < start {
                return Err(format!("range `{s}`: the end comes before the start"));
            }
            Ok(RangeArg::From(start, Some(end)))
        }
        (true, true) => Err(bad()),
    }
}

impl Cat {
    pub async fn execute(mut self, ctx: &Ctx) -> wharf::Result<u8> {
        let service = ctx.service().await?;
        if !matches!(Reference::parse(&self.path)?, Reference::Path(_)) {
            let (object, file) = service.file_object(&self.path, None).await?;
            self.path = object.to_string();
            if self.range.is_none() {
                if self
                    .sha256
                    .as_ref()
                    .is_some_and(|s| !s.eq_ignore_ascii_case(&file.checksum))
                {
                    return Err(Error::new(
                        ErrorKind::Integrity,
                        format!("`{}` records sha256 {}, not the one asked for", object, file.checksum),
                    ));
                }
                self.sha256 = Some(file.checksum);
            }
        }
        let range = match self.range {
            None => None,
            Some(r) => {
                // One stat: the size both places a suffix range and checks
                // that the range starts inside the object.
                let size = service.adapter().stat(&ObjectPath::parse(&self.path)?).await?.size;
                let range = match r {
                    RangeArg::From(start, end) => ByteRange {
                        start,
                        end: end.map(|e| e + 1),
                    },
                    RangeArg::Last(n) => ByteRange {
                        start: size.saturating_sub(n),
                        end: None,
                    },
                };
                if range.start > size || (range.start == size && size > 0) {
                    return Err(Error::new(
                        ErrorKind::Invalid,
                        format!(
                            "range starts at byte {} but `{}` has {size} bytes",
                            range.start, self.path
                        ),
                    ));
                }
                Some(range)
            }
        };
        let expect = Expected {
            size: None,
            sha256: self.sha256,
        };
        let mut out = tokio::io::stdout();
        service.read_object_into(&self.path, range, &expect, &mut out).await?;
        Ok(exit::OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_http() {
        assert_eq!(parse_range("0-99"), Ok(RangeArg::From(0, Some(99))));
        assert_eq!(parse_range("100-"), Ok(RangeArg::From(100, None)));
        assert_eq!(parse_range("-500"), Ok(RangeArg::Last(500)));
        for bad in ["", "-", "5", "a-b", "9-3", "1-2-3"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
