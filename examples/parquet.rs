//! A real object_store consumer over wharf: the `parquet` crate's async
//! Arrow writer and reader, unchanged, through `wharf::object_store::WharfStore`.
//!
//!     cargo run -p wharf-tests --example parquet [-- BACKEND_OR_URL]
//!
//! Writes a table of sensor readings (200,000 rows in 20 row groups) as
//! `examples/readings.parquet` into the backend (with no argument, the
//! CLI's default: `local_filesystem` into `./wharf-data`; a configured
//! name, or a URL such as `s3://bucket/prefix`), as a multipart upload of
//! 1 MiB parts. Then reads back two columns of two row groups and counts
//! the anomalies in them, and prints every byte range the adapter was
//! asked for: parquet reads the footer and the column chunks it needs, not
//! the file. `tests/tests/parquet.rs` runs the same functions over
//! local_filesystem (plain and under checksum + compression + encryption),
//! aws_s3 on s3s-fs and redis.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataSuffixFetch};
use parquet::arrow::{AsyncArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use wharf::layers::LayeredAdapter;
use wharf::{Adapter, ByteRange, ObjectPath, ObjectReader};

/// Rows in each row group.
pub const ROWS_PER_GROUP: usize = 10_000;
/// A reading above this is an anomaly.
pub const THRESHOLD: f64 = 0.995;
/// The multipart upload's part size.
pub const PART: usize = 1 << 20;

/// Reading `i` of the table: (timestamp in ms, sensor, value in [0, 1)).
/// A fixed sequence (SplitMix64), so a reader can check what it got.
pub fn reading(i: usize) -> (i64, String, f64) {
    let mut z = (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let value = (z >> 11) as f64 / (1u64 << 53) as f64;
    (
        1_767_225_600_000 + i as i64 * 1000,
        format!("sensor-{:02}", i % 16),
        value,
    )
}

/// The rows `start..start + n` as a batch: timestamp, sensor, value, anomaly.
fn batch(start: usize, n: usize) -> RecordBatch {
    let rows: Vec<_> = (start..start + n).map(reading).collect();
    let ts = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
    let sensor = StringArray::from_iter_values(rows.iter().map(|r| r.1.as_str()));
    let value = Float64Array::from_iter_values(rows.iter().map(|r| r.2));
    let anomaly = BooleanArray::from_iter(rows.iter().map(|r| Some(r.2 > THRESHOLD)));
    RecordBatch::try_from_iter([
        ("timestamp", Arc::new(ts) as ArrayRef),
        ("sensor", Arc::new(sensor) as ArrayRef),
        ("value", Arc::new(value) as ArrayRef),
        ("anomaly", Arc::new(anomaly) as ArrayRef),
    ])
    .expect("columns of one length")
}

/// Writes `groups` row groups of readings to `path`, streamed as a
/// multipart upload of [`PART`]-byte parts; returns the file's size.
pub async fn write_readings(store: Arc<dyn ObjectStore>, path: &Path, groups: usize) -> parquet::errors::Result<u64> {
    let upload = BufWriter::with_capacity(store.clone(), path.clone(), PART);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROWS_PER_GROUP))
        .build();
    // parquet 60 takes object_store's BufWriter as it is (an AsyncWrite).
    let mut writer = AsyncArrowWriter::try_new(upload, batch(0, 1).schema(), Some(props))?;
    // Half a row group per batch: the writer cuts the groups.
    for start in (0..groups * ROWS_PER_GROUP).step_by(ROWS_PER_GROUP / 2) {
        writer.write(&batch(start, ROWS_PER_GROUP / 2)).await?;
    }
    writer.close().await?;
    Ok(store.head(path).await?.size)
}

/// What [`read_anomalies`] found.
#[derive(Debug, PartialEq)]
pub struct Found {
    /// Rows read.
    pub rows: usize,
    /// Readings above [`THRESHOLD`] among them, by the stored flag.
    pub anomalies: usize,
    /// The sum of the values read (to compare with [`reading`]).
    pub sum: f64,
}

/// Reads only the `value` and `anomaly` columns of the row groups
/// `groups`, with ranged reads (the footer, then the column chunks).
pub async fn read_anomalies(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    groups: &[usize],
) -> parquet::errors::Result<Found> {
    let reader = StoreReader {
        store,
        path: path.clone(),
    };
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [2, 3]);
    let batches: Vec<RecordBatch> = builder
        .with_projection(mask)
        .with_row_groups(groups.to_vec())
        .build()?
        .try_collect()
        .await?;
    let mut found = Found {
        rows: 0,
        anomalies: 0,
        sum: 0.0,
    };
    for b in &batches {
        assert_eq!(b.num_columns(), 2, "the projection: value, anomaly");
        let value = b
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("value is f64");
        let anomaly = b
            .column(1)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("anomaly is bool");
        found.rows += b.num_rows();
        found.anomalies += anomaly.true_count();
        // One at a time, in row order: the same additions as `expected`.
        for v in value.values() {
            found.sum += v;
        }
    }
    Ok(found)
}

/// A Parquet file in an [`ObjectStore`], as parquet's own documentation
/// reads one (parquet 60 deprecated its `ParquetObjectReader` for this):
/// ranges by `get_range`/`get_ranges`, the footer by a suffix `get_opts`
/// without knowing the size.
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store.get_range(&self.path, range).map_err(external).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_via_suffix_and_finish(self)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl MetadataSuffixFetch for &mut StoreReader {
    fn fetch_suffix(&mut self, suffix: usize) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(suffix as u64)),
            ..Default::default()
        };
        async move {
            let got = self.store.get_opts(&self.path, options).await.map_err(external)?;
            got.bytes().await.map_err(external)
        }
        .boxed()
    }
}

/// What [`read_anomalies`] must find, from [`reading`] alone.
pub fn expected(groups: &[usize]) -> Found {
    let mut found = Found {
        rows: 0,
        anomalies: 0,
        sum: 0.0,
    };
    for g in groups {
        for i in g * ROWS_PER_GROUP..(g + 1) * ROWS_PER_GROUP {
            let v = reading(i).2;
            found.rows += 1;
            found.anomalies += usize::from(v > THRESHOLD);
            found.sum += v;
        }
    }
    found
}

/// A layer that records every `read` the adapter is asked for: the path
/// and the byte range (`None`: the whole object).
pub struct ReadLog {
    inner: Arc<dyn Adapter>,
    /// (path, range) in the order asked.
    pub reads: Mutex<Vec<(String, Option<ByteRange>)>>,
}

impl ReadLog {
    /// `inner`, recorded.
    pub fn new(inner: Arc<dyn Adapter>) -> Arc<Self> {
        Arc::new(ReadLog {
            inner,
            reads: Mutex::default(),
        })
    }

    /// The reads so far.
    pub fn take(&self) -> Vec<(String, Option<ByteRange>)> {
        std::mem::take(&mut self.reads.lock().expect("not poisoned"))
    }
}

#[async_trait::async_trait]
impl LayeredAdapter for ReadLog {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> wharf::Result<Box<dyn ObjectReader>> {
        self.reads
            .lock()
            .expect("not poisoned")
            .push((path.as_str().to_string(), range));
        self.inner.read(path, range).await
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    let (mut config, base) =
        wharf::Config::discover(std::env::var_os("WHARF_CONFIG").as_deref().map(std::path::Path::new))?;
    let name = match &arg {
        Some(a) => config.backend_arg(a)?,
        None => config.default_backend().to_string(),
    };
    let host = wharf::Host::new(config, &base)?;
    let log = ReadLog::new(host.adapter(&name).await?);
    let store: Arc<dyn ObjectStore> = Arc::new(wharf::object_store::WharfStore::new(log.clone()));

    let path = Path::from("examples/readings.parquet");
    let size = write_readings(store.clone(), &path, 20).await?;
    println!("{name}: wrote {path}, {size} bytes, 200000 rows in 20 row groups");
    log.take();
    let groups = [3, 7];
    let found = read_anomalies(store, &path, &groups).await?;
    println!(
        "read `value` and `anomaly` of row groups {groups:?}: {} rows, {} anomalies (expected {})",
        found.rows,
        found.anomalies,
        expected(&groups).anomalies
    );
    let reads = log.take();
    let bytes: u64 = reads
        .iter()
        .map(|(_, r)| r.and_then(|r| r.end.map(|e| e - r.start)).unwrap_or(size))
        .sum();
    println!("{} reads, {bytes} of {size} bytes:", reads.len());
    for (p, r) in reads {
        match r {
            Some(ByteRange { start, end: Some(end) }) => println!("  {p} [{start}, {end})"),
            Some(ByteRange { start, end: None }) => println!("  {p} [{start}, end)"),
            None => println!("  {p} whole"),
        }
    }
    Ok(())
}
