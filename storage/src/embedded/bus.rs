//! The embedded bus: one append-only log file per partition, with group commit.
//!
//! A record on disk is `len: u32 LE | check: u32 LE | payload`, where `check` is the low 32
//! bits of the payload's XXH3-64. Appends from every caller queue up for one writer thread,
//! which writes everything pending, syncs each touched file once (`fdatasync`) and only then
//! answers: many concurrent batches share one sync. On open, a torn or corrupt tail (a
//! crash mid-write, never acknowledged) is cut off.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::{Bus, BusRecord};
use crate::error::{Result, StorageError};

const HEADER: usize = 8;
/// Largest record the bus takes; the server's message limits keep records far below it.
const MAX_RECORD: usize = 64 << 20;

fn check(payload: &[u8]) -> u32 {
    // Truncation intended: a 32-bit check is plenty to find a torn tail.
    #[allow(clippy::cast_possible_truncation, reason = "low 32 bits on purpose")]
    let low = xxhash_rust::xxh3::xxh3_64(payload) as u32;
    low
}

/// One partition: the file and where each record starts.
struct Partition {
    file: File,
    /// `starts[i]` is the file position of record `i`; the last element is the end.
    starts: RwLock<Vec<u64>>,
    end: watch::Sender<u64>,
}

type AppendRequest = (Vec<BusRecord>, oneshot::Sender<Result<Vec<u64>>>);

/// The embedded bus. See the module docs.
pub struct FileBus {
    partitions: Arc<Vec<Partition>>,
    queue: mpsc::Sender<AppendRequest>,
}

impl FileBus {
    /// Opens (creating if needed) the logs of `partitions` partitions under `dir`. A data
    /// directory keeps the partition count it was created with.
    pub fn open(dir: &Path, partitions: u32, sync: bool) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        let existing = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, &e))?
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .count();
        if existing != 0 && existing != partitions as usize {
            return Err(StorageError::Invalid(format!(
                "the bus in {} has {existing} partitions but {partitions} were configured; \
                 a data directory keeps its partition count",
                dir.display()
            )));
        }
        let parts = (0..partitions)
            .map(|p| open_partition(&dir.join(format!("p{p:03}.log"))))
            .collect::<Result<Vec<_>>>()?;
        let partitions = Arc::new(parts);
        // Bounded: when the disk cannot keep up, appenders wait here (backpressure).
        let (queue, rx) = mpsc::channel(1024);
        let writer = Arc::clone(&partitions);
        std::thread::Builder::new()
            .name("credence-bus-writer".into())
            .spawn(move || write_loop(&writer, rx, sync))
            .map_err(|e| StorageError::Backend(format!("cannot start the bus writer: {e}")))?;
        Ok(Self { partitions, queue })
    }

    fn partition(&self, partition: u32) -> Result<&Partition> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            StorageError::Invalid(format!(
                "partition {partition} does not exist (the bus has {})",
                self.partitions.len()
            ))
        })
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> StorageError {
    StorageError::Backend(format!("{}: {e}", path.display()))
}

/// Opens a log, indexes its records and cuts a torn tail.
fn open_partition(path: &PathBuf) -> Result<Partition> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, &e))?;
    let len = file.metadata().map_err(|e| io_error(path, &e))?.len();
    let mut starts = vec![0u64];
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut pos = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    loop {
        if reader.read_exact(&mut header).is_err() {
            break;
        }
        let n = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let sum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if n > MAX_RECORD {
            break;
        }
        payload.resize(n, 0);
        if reader.read_exact(&mut payload).is_err() || check(&payload) != sum {
            break;
        }
        pos += (HEADER + n) as u64;
        starts.push(pos);
    }
    drop(reader);
    if pos < len {
        tracing::warn!(path = %path.display(), kept = pos, dropped = len - pos, "cutting a torn bus tail");
        file.set_len(pos).map_err(|e| io_error(path, &e))?;
        file.sync_all().map_err(|e| io_error(path, &e))?;
    }
    let records = (starts.len() - 1) as u64;
    let (end, _) = watch::channel(records);
    Ok(Partition {
        file,
        starts: RwLock::new(starts),
        end,
    })
}

/// The writer thread: drains every queued append, writes, syncs once per touched file,
/// publishes the new ends, answers.
fn write_loop(parts: &[Partition], mut rx: mpsc::Receiver<AppendRequest>, sync: bool) {
    let mut pending: Vec<AppendRequest> = Vec::new();
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new(); parts.len()];
    while let Some(first) = rx.blocking_recv() {
        pending.push(first);
        while let Ok(more) = rx.try_recv() {
            pending.push(more);
        }
        let outcome = write_pending(parts, &pending, &mut buffers, sync);
        for (i, (_, reply)) in pending.drain(..).enumerate() {
            let answer = match &outcome {
                Ok(offsets) => Ok(offsets[i].clone()),
                Err(e) => Err(StorageError::Backend(e.to_string())),
            };
            // The caller may have gone away; its records are durable all the same.
            let _ = reply.send(answer);
        }
    }
}

fn write_pending(
    parts: &[Partition],
    pending: &[AppendRequest],
    buffers: &mut [Vec<u8>],
    sync: bool,
) -> std::io::Result<Vec<Vec<u64>>> {
    // Positions of the new records, per partition, in queue order.
    let mut new_starts: Vec<Vec<u64>> = vec![Vec::new(); parts.len()];
    let mut next_pos: Vec<u64> = parts
        .iter()
        .map(|p| p.starts.read().last().copied().unwrap_or(0))
        .collect();
    let mut next_offset: Vec<u64> = parts.iter().map(|p| *p.end.borrow()).collect();
    let mut offsets = Vec::with_capacity(pending.len());
    for (records, _) in pending {
        let mut mine = Vec::with_capacity(records.len());
        for r in records {
            let p = r.partition as usize;
            let n = r.payload.len();
            #[allow(
                clippy::cast_possible_truncation,
                reason = "records are under MAX_RECORD"
            )]
            buffers[p].extend_from_slice(&(n as u32).to_le_bytes());
            buffers[p].extend_from_slice(&check(&r.payload).to_le_bytes());
            buffers[p].extend_from_slice(&r.payload);
            next_pos[p] += (HEADER + n) as u64;
            new_starts[p].push(next_pos[p]);
            mine.push(next_offset[p]);
            next_offset[p] += 1;
        }
        offsets.push(mine);
    }
    for (p, part) in parts.iter().enumerate() {
        if buffers[p].is_empty() {
            continue;
        }
        let result = (&part.file)
            .write_all(&buffers[p])
            .and_then(|()| if sync { part.file.sync_data() } else { Ok(()) });
        buffers[p].clear();
        if let Err(e) = result {
            // Put the file back to what was acknowledged, so no half-batch stays behind.
            let acknowledged = part.starts.read().last().copied().unwrap_or(0);
            let _ = part.file.set_len(acknowledged);
            return Err(e);
        }
    }
    for (p, part) in parts.iter().enumerate() {
        if new_starts[p].is_empty() {
            continue;
        }
        part.starts.write().append(&mut new_starts[p]);
        part.end.send_replace(next_offset[p]);
    }
    Ok(offsets)
}

#[async_trait]
impl Bus for FileBus {
    fn partitions(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation, reason = "opened from a u32 count")]
        let n = self.partitions.len() as u32;
        n
    }

    async fn append(&self, records: Vec<BusRecord>) -> Result<Vec<u64>> {
        for r in &records {
            self.partition(r.partition)?;
            if r.payload.len() > MAX_RECORD {
                return Err(StorageError::Invalid(format!(
                    "a bus record of {} bytes is over the {MAX_RECORD}-byte limit",
                    r.payload.len()
                )));
            }
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((records, reply))
            .await
            .map_err(|_| StorageError::Unavailable("the bus writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("the bus writer has stopped".into()))?
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let part = self.partition(partition)?;
        let (start, ends) = {
            let starts = part.starts.read();
            let records = (starts.len() - 1) as u64;
            if from >= records || max == 0 {
                return Ok(Vec::new());
            }
            #[allow(
                clippy::cast_possible_truncation,
                reason = "index of an in-memory vector"
            )]
            let (first, last) = (from as usize, (from as usize + max).min(starts.len() - 1));
            (starts[first], starts[first + 1..=last].to_vec())
        };
        let total = usize::try_from(ends.last().copied().unwrap_or(start) - start)
            .map_err(|_| StorageError::Backend("read range too large".into()))?;
        let mut bytes = vec![0u8; total];
        part.file
            .read_exact_at(&mut bytes, start)
            .map_err(|e| StorageError::Backend(format!("reading partition {partition}: {e}")))?;
        let mut out = Vec::with_capacity(ends.len());
        let mut pos = 0usize;
        for (i, end) in ends.iter().enumerate() {
            let end = usize::try_from(end - start).unwrap_or(total);
            out.push((from + i as u64, bytes[pos + HEADER..end].to_vec()));
            pos = end;
        }
        Ok(out)
    }

    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        match self.partitions.get(partition as usize) {
            Some(p) => p.end.subscribe(),
            // A partition that does not exist never gets records.
            None => watch::channel(0).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(partition: u32, s: &str) -> BusRecord {
        BusRecord {
            partition,
            payload: s.as_bytes().to_vec(),
        }
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_acknowledged_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = FileBus::open(dir.path(), 2, true).unwrap();
            let offsets = bus
                .append(vec![rec(0, "a"), rec(1, "b"), rec(0, "c")])
                .await
                .unwrap();
            assert_eq!(offsets, vec![0, 0, 1]);
        }
        // A crash mid-write: half a header and some bytes after the last record.
        let path = dir.path().join("p000.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let bus = FileBus::open(dir.path(), 2, true).unwrap();
        let read = bus.read(0, 0, 10).await.unwrap();
        assert_eq!(read, vec![(0, b"a".to_vec()), (1, b"c".to_vec())]);
        assert_eq!(*bus.end(0).borrow(), 2);
        assert_eq!(bus.append(vec![rec(0, "d")]).await.unwrap(), vec![2]);
        assert_eq!(bus.read(0, 2, 10).await.unwrap(), vec![(2, b"d".to_vec())]);
    }

    #[tokio::test]
    async fn the_partition_count_of_a_data_directory_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        drop(FileBus::open(dir.path(), 2, false).unwrap());
        let err = FileBus::open(dir.path(), 3, false).err().unwrap();
        assert!(err.to_string().contains("has 2 partitions but 3"), "{err}");
    }
}
