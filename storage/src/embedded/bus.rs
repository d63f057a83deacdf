//! The embedded bus: one append-only log file per partition, with group commit.
//!
//! A record on disk is `len: u32 LE | check: u32 LE | payload`, where `check` is the low 32
//! bits of the payload's XXH3-64. Appends from every caller queue up for one writer thread,
//! which writes everything pending, syncs each touched file once (`fdatasync`) and only then
//! answers: many concurrent batches share one sync.
//!
//! **A failed round changes nothing.** An append is all or nothing, and so is a round of the
//! writer: when writing or syncing one partition fails, every file the round touched is cut
//! back to its acknowledged length (and synced), every buffer is cleared, and every append of
//! the round fails UNAVAILABLE, so the next round frames and numbers records exactly as if
//! the failed one never happened. If cutting back fails too, a file may hold bytes that were
//! never acknowledged and that the index does not know; the writer then stops for good and
//! [`Bus::health`] turns [`BusHealth::Failed`] with the reason, which every later append
//! returns.
//!
//! **Open.** A torn tail (a crash mid-write: never acknowledged, since answers come after the
//! sync) is cut off. A bad record that a valid one follows is not a torn tail: it is damage to
//! acknowledged data, and the bus refuses to open, naming the partition, the offset and byte
//! position, and what to do, instead of dropping the records behind it. A bad *last* record
//! cannot be told from a torn write and is cut; the node then refuses to start if the
//! pipeline had committed it (its committed offset lies past the end of the partition).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::{Bus, BusHealth, BusRecord, Rebalance};
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

/// The header of a record: its payload length and check.
fn header(bytes: [u8; HEADER]) -> (usize, u32) {
    let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let sum = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (n, sum)
}

/// One partition: the file and where each record starts.
struct Partition {
    file: File,
    /// `starts[i]` is the file position of record `i`; the last element is the end, which is
    /// also the file's length between rounds of the writer.
    starts: RwLock<Vec<u64>>,
    end: watch::Sender<u64>,
}

impl Partition {
    /// The length of the file that was acknowledged.
    fn acknowledged(&self) -> u64 {
        self.starts.read().last().copied().unwrap_or(0)
    }
}

type AppendRequest = (Vec<BusRecord>, oneshot::Sender<Result<Vec<Result<u64>>>>);

/// The file operations of the writer. Behind a trait so tests can make the N-th one fail;
/// the bus uses [`OsDisk`].
trait Disk: Send {
    /// Appends `bytes` at the end of `file` (opened in append mode).
    fn write(&mut self, file: &File, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes the data written so far durable.
    fn sync(&mut self, file: &File) -> std::io::Result<()>;
    /// Cuts `file` to `len` bytes.
    fn truncate(&mut self, file: &File, len: u64) -> std::io::Result<()>;
}

/// The real file system.
struct OsDisk;

impl Disk for OsDisk {
    fn write(&mut self, mut file: &File, bytes: &[u8]) -> std::io::Result<()> {
        file.write_all(bytes)
    }

    fn sync(&mut self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }

    fn truncate(&mut self, file: &File, len: u64) -> std::io::Result<()> {
        file.set_len(len)
    }
}

/// The embedded bus. See the module docs.
pub struct FileBus {
    partitions: Arc<Vec<Partition>>,
    queue: mpsc::Sender<AppendRequest>,
    health: watch::Receiver<BusHealth>,
    /// The rebalance stream's sender, once handed out; kept so the stream stays open while
    /// the bus lives (the pipeline reads "no change" from a quiet channel, not a closed one).
    consumer: Mutex<Option<mpsc::Sender<Rebalance>>>,
}

impl FileBus {
    /// Opens (creating if needed) the logs of `partitions` partitions under `dir`. A data
    /// directory keeps the partition count it was created with. Refuses to open a log with a
    /// bad record in the middle (see the module docs).
    pub fn open(dir: &Path, partitions: u32, sync: bool) -> Result<Self> {
        Self::open_with(dir, partitions, sync, Box::new(OsDisk))
    }

    fn open_with(dir: &Path, partitions: u32, sync: bool, disk: Box<dyn Disk>) -> Result<Self> {
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
            .map(|p| open_partition(&dir.join(format!("p{p:03}.log")), p))
            .collect::<Result<Vec<_>>>()?;
        let partitions = Arc::new(parts);
        // Bounded: when the disk cannot keep up, appenders wait here (backpressure).
        let (queue, rx) = mpsc::channel(1024);
        let (health_tx, health) = watch::channel(BusHealth::Serving);
        let writer = Writer {
            buffers: vec![Vec::new(); partitions.len()],
            parts: Arc::clone(&partitions),
            disk,
            sync,
            health: health_tx,
        };
        std::thread::Builder::new()
            .name("credence-bus-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StorageError::Backend(format!("cannot start the bus writer: {e}")))?;
        Ok(Self {
            partitions,
            queue,
            health,
            consumer: Mutex::new(None),
        })
    }

    fn partition(&self, partition: u32) -> Result<&Partition> {
        self.partitions.get(partition as usize).ok_or_else(|| {
            StorageError::Invalid(format!(
                "partition {partition} does not exist (the bus has {})",
                self.partitions.len()
            ))
        })
    }

    /// `Unavailable` with the reason, once the writer has stopped for good.
    fn failed(&self) -> Option<StorageError> {
        match &*self.health.borrow() {
            BusHealth::Serving => None,
            BusHealth::Failed(reason) => Some(StorageError::Unavailable(reason.clone())),
        }
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> StorageError {
    StorageError::Backend(format!("{}: {e}", path.display()))
}

/// Opens a log, indexes its records and cuts a torn tail; refuses a bad record in the middle.
fn open_partition(path: &Path, index: u32) -> Result<Partition> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, &e))?;
    let len = file.metadata().map_err(|e| io_error(path, &e))?.len();
    let starts = index_records(&file).map_err(|e| io_error(path, &e))?;
    let pos = starts.last().copied().unwrap_or(0);
    if pos < len {
        let bad = (starts.len() - 1) as u64;
        if let Some(next) = find_record(&file, pos + 1, len).map_err(|e| io_error(path, &e))? {
            let path = path.display();
            return Err(StorageError::Backend(format!(
                "bus partition {index} ({path}) is damaged in the middle: record offset {bad} \
                 at byte {pos} fails its check, and {} bytes follow it, with a valid record at \
                 byte {next}. Those are acknowledged records, so the bus will not cut them off. \
                 Restore {path} from a backup; or, to start partition {index} empty, move the \
                 file aside and leave an empty one in its place (mv {path} {path}.damaged && \
                 touch {path}): every record in it would be lost, and the node will refuse to \
                 start while the pipeline's committed offset of partition {index} lies past \
                 the new end",
                len - pos
            )));
        }
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

/// Where each valid record of a log starts, up to the first bad or incomplete one; the last
/// element is where the valid records end. A read error other than the end of the file is
/// returned, not taken for a torn tail.
fn index_records(file: &File) -> std::io::Result<Vec<u64>> {
    let mut starts = vec![0u64];
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let mut bytes = [0u8; HEADER];
    let mut payload = Vec::new();
    loop {
        if !read_or_eof(&mut reader, &mut bytes)? {
            break;
        }
        let (n, sum) = header(bytes);
        if n > MAX_RECORD {
            break;
        }
        payload.resize(n, 0);
        if !read_or_eof(&mut reader, &mut payload)? || check(&payload) != sum {
            break;
        }
        pos += (HEADER + n) as u64;
        starts.push(pos);
    }
    Ok(starts)
}

/// Fills `buf`; `false` when the file ends first.
fn read_or_eof(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The position of the first valid record (a header whose length fits the file and whose
/// check matches its payload) at or after byte `from`, scanning byte by byte.
fn find_record(file: &File, from: u64, len: u64) -> std::io::Result<Option<u64>> {
    const WINDOW: u64 = 1 << 20;
    let mut window = Vec::new();
    let mut window_start = from;
    let mut payload = Vec::new();
    let mut at = from;
    while at + HEADER as u64 <= len {
        if at + HEADER as u64 > window_start + window.len() as u64 {
            window_start = at;
            #[allow(clippy::cast_possible_truncation, reason = "at most WINDOW")]
            window.resize((len - at).min(WINDOW) as usize, 0);
            file.read_exact_at(&mut window, at)?;
        }
        #[allow(clippy::cast_possible_truncation, reason = "inside the window")]
        let rel = (at - window_start) as usize;
        let mut bytes = [0u8; HEADER];
        bytes.copy_from_slice(&window[rel..rel + HEADER]);
        let (n, sum) = header(bytes);
        let body = at + HEADER as u64;
        if n <= MAX_RECORD && body + n as u64 <= len {
            let inside = window.get(rel + HEADER..rel + HEADER + n);
            let matches = if let Some(inside) = inside {
                check(inside) == sum
            } else {
                payload.resize(n, 0);
                file.read_exact_at(&mut payload, body)?;
                check(&payload) == sum
            };
            if matches {
                return Ok(Some(at));
            }
        }
        at += 1;
    }
    Ok(None)
}

/// Why a round of the writer failed.
enum RoundError {
    /// Nothing of the round was kept; the next round may work.
    Failed(String),
    /// A file could not be put back; the writer takes no more appends.
    Stopped(String),
}

/// The writer thread's state.
struct Writer {
    parts: Arc<Vec<Partition>>,
    disk: Box<dyn Disk>,
    sync: bool,
    /// Per partition, the framed records of the round (kept to reuse the allocations).
    buffers: Vec<Vec<u8>>,
    health: watch::Sender<BusHealth>,
}

impl Writer {
    /// Drains every queued append, writes, syncs once per touched file, publishes the new
    /// ends, answers; after a failure it cannot undo, answers every append with the reason.
    fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>) {
        let mut pending: Vec<AppendRequest> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            pending.push(first);
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            match self.write_round(&pending) {
                Ok(offsets) => {
                    for ((_, reply), offsets) in pending.drain(..).zip(offsets) {
                        // The caller may have gone away; its records are durable all the same.
                        let _ = reply.send(Ok(offsets.into_iter().map(Ok).collect()));
                    }
                }
                Err(RoundError::Failed(reason)) => {
                    tracing::error!(%reason, "a bus write failed; its appends were refused");
                    for (_, reply) in pending.drain(..) {
                        let _ = reply.send(Err(StorageError::Unavailable(reason.clone())));
                    }
                }
                Err(RoundError::Stopped(reason)) => {
                    tracing::error!(%reason, "the bus writer has stopped for good");
                    // Health first: a caller that sees the error and asks finds it set.
                    self.health.send_replace(BusHealth::Failed(reason.clone()));
                    for (_, reply) in pending.drain(..) {
                        let _ = reply.send(Err(StorageError::Unavailable(reason.clone())));
                    }
                    // Appends check the health first; these raced with the failure.
                    while let Some((_, reply)) = rx.blocking_recv() {
                        let _ = reply.send(Err(StorageError::Unavailable(reason.clone())));
                    }
                    return;
                }
            }
        }
    }

    /// Writes one round; on success returns, per request, the offsets of its records.
    fn write_round(
        &mut self,
        pending: &[AppendRequest],
    ) -> std::result::Result<Vec<Vec<u64>>, RoundError> {
        let parts = &*self.parts;
        // Positions of the new records, per partition, in queue order.
        let mut new_starts: Vec<Vec<u64>> = vec![Vec::new(); parts.len()];
        let mut next_pos: Vec<u64> = parts.iter().map(Partition::acknowledged).collect();
        let mut next_offset: Vec<u64> = parts.iter().map(|p| *p.end.borrow()).collect();
        let mut offsets = Vec::with_capacity(pending.len());
        for (records, _) in pending {
            let mut mine = Vec::with_capacity(records.len());
            for r in records {
                let p = r.partition as usize;
                let n = r.payload.len();
                let buffer = &mut self.buffers[p];
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "records are under MAX_RECORD"
                )]
                buffer.extend_from_slice(&(n as u32).to_le_bytes());
                buffer.extend_from_slice(&check(&r.payload).to_le_bytes());
                buffer.extend_from_slice(&r.payload);
                next_pos[p] += (HEADER + n) as u64;
                new_starts[p].push(next_pos[p]);
                mine.push(next_offset[p]);
                next_offset[p] += 1;
            }
            offsets.push(mine);
        }
        let mut touched = Vec::new();
        let mut failure = None;
        for (p, part) in parts.iter().enumerate() {
            if self.buffers[p].is_empty() {
                continue;
            }
            touched.push(p);
            let written = self.disk.write(&part.file, &self.buffers[p]);
            let result = if self.sync {
                written.and_then(|()| self.disk.sync(&part.file))
            } else {
                written
            };
            if let Err(e) = result {
                failure = Some(format!("writing bus partition {p} failed: {e}"));
                break;
            }
        }
        // Every buffer, also those of partitions the round never reached: the next round
        // starts from what was acknowledged.
        for buffer in &mut self.buffers {
            buffer.clear();
        }
        if let Some(failure) = failure {
            return Err(self.cut_back(&touched, &failure));
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

    /// Cuts every partition the failed round touched back to its acknowledged length, so no
    /// partition keeps a record that was never acknowledged (the earlier ones of the round
    /// were written and synced before a later one failed).
    fn cut_back(&mut self, touched: &[usize], failure: &str) -> RoundError {
        for &p in touched {
            let part = &self.parts[p];
            let acknowledged = part.acknowledged();
            let cut = self.disk.truncate(&part.file, acknowledged);
            let cut = if self.sync {
                cut.and_then(|()| self.disk.sync(&part.file))
            } else {
                cut
            };
            if let Err(e) = cut {
                return RoundError::Stopped(format!(
                    "the bus stopped taking events: {failure}, and cutting partition {p} back \
                     to its acknowledged {acknowledged} bytes failed too ({e}), so its file may \
                     hold records that were never acknowledged. Check the disk (space, \
                     errors in the kernel log), then restart the node: it reads the file \
                     again from the start"
                ));
            }
        }
        RoundError::Failed(format!(
            "{failure}; nothing of this append was kept, retry it"
        ))
    }
}

#[async_trait]
impl Bus for FileBus {
    fn partitions(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation, reason = "opened from a u32 count")]
        let n = self.partitions.len() as u32;
        n
    }

    /// All or nothing: either every record gets an offset or the outer `Err` says why none
    /// did (one write and one sync per partition cannot keep half of a batch).
    async fn append(&self, records: Vec<BusRecord>) -> Result<Vec<Result<u64>>> {
        if let Some(failed) = self.failed() {
            return Err(failed);
        }
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

    /// One process owns the whole data directory, so it is assigned every partition, once,
    /// and nothing is ever revoked.
    fn rebalances(&self) -> Result<mpsc::Receiver<Rebalance>> {
        let mut consumer = self.consumer.lock();
        if consumer.is_some() {
            return Err(crate::bus::rebalances_taken());
        }
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Rebalance::Assigned((0..self.partitions()).collect()))
            .map_err(|e| StorageError::Backend(format!("cannot queue the assignment: {e}")))?;
        *consumer = Some(tx);
        Ok(rx)
    }

    fn health(&self) -> watch::Receiver<BusHealth> {
        self.health.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;

    fn rec(partition: u32, s: &str) -> BusRecord {
        BusRecord {
            partition,
            payload: s.as_bytes().to_vec(),
        }
    }

    /// The offsets of an append that must succeed.
    async fn append(bus: &FileBus, records: Vec<BusRecord>) -> Vec<u64> {
        bus.append(records)
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    /// Every record of a partition.
    async fn all(bus: &FileBus, partition: u32) -> Vec<(u64, Vec<u8>)> {
        bus.read(partition, 0, 1_000).await.unwrap()
    }

    fn records(items: &[(u64, &str)]) -> Vec<(u64, Vec<u8>)> {
        items
            .iter()
            .map(|(o, s)| (*o, s.as_bytes().to_vec()))
            .collect()
    }

    /// Asserts that partition `p` holds exactly `expected[p]`, for every `p`.
    async fn assert_holds(bus: &FileBus, expected: &[&[(u64, &str)]]) {
        for (p, want) in (0u32..).zip(expected) {
            assert_eq!(all(bus, p).await, records(want), "partition {p}");
        }
    }

    /// The real disk, except that the `fail_write`-th write (counting from 1) writes half of
    /// its bytes and fails, and so does the `fail_sync`-th sync; truncation fails while
    /// `fail_truncate` is set. 0 never fails.
    #[derive(Clone, Default)]
    struct Faults(Arc<FaultState>);

    #[derive(Default)]
    struct FaultState {
        fail_write: AtomicU32,
        fail_sync: AtomicU32,
        fail_truncate: AtomicBool,
        writes: AtomicU32,
        syncs: AtomicU32,
    }

    impl Faults {
        fn disk(&self) -> Box<dyn Disk> {
            Box::new(self.clone())
        }
    }

    fn injected(what: &str) -> std::io::Error {
        std::io::Error::other(format!("injected {what} failure"))
    }

    impl Disk for Faults {
        fn write(&mut self, file: &File, bytes: &[u8]) -> std::io::Result<()> {
            let n = self.0.writes.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.0.fail_write.load(Ordering::SeqCst) {
                OsDisk.write(file, &bytes[..bytes.len() / 2])?;
                return Err(injected("write"));
            }
            OsDisk.write(file, bytes)
        }

        fn sync(&mut self, file: &File) -> std::io::Result<()> {
            let n = self.0.syncs.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.0.fail_sync.load(Ordering::SeqCst) {
                return Err(injected("sync"));
            }
            OsDisk.sync(file)
        }

        fn truncate(&mut self, file: &File, len: u64) -> std::io::Result<()> {
            if self.0.fail_truncate.load(Ordering::SeqCst) {
                return Err(injected("truncate"));
            }
            OsDisk.truncate(file, len)
        }
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_acknowledged_records_stay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = FileBus::open(dir.path(), 2, true).unwrap();
            let offsets = append(&bus, vec![rec(0, "a"), rec(1, "b"), rec(0, "c")]).await;
            assert_eq!(offsets, vec![0, 0, 1]);
        }
        // A crash mid-write: half a header and some bytes after the last record.
        let path = dir.path().join("p000.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let bus = FileBus::open(dir.path(), 2, true).unwrap();
        assert_eq!(all(&bus, 0).await, records(&[(0, "a"), (1, "c")]));
        assert_eq!(*bus.end(0).borrow(), 2);
        assert_eq!(append(&bus, vec![rec(0, "d")]).await, vec![2]);
        assert_eq!(bus.read(0, 2, 10).await.unwrap(), records(&[(2, "d")]));
    }

    #[tokio::test]
    async fn a_torn_record_whose_length_runs_past_the_end_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        drop({
            let bus = FileBus::open(dir.path(), 1, true).unwrap();
            append(&bus, vec![rec(0, "alpha"), rec(0, "bravo")]).await;
            bus
        });
        // A whole record was being written and only its first 20 bytes landed.
        let mut torn = Vec::new();
        torn.extend_from_slice(&40u32.to_le_bytes());
        torn.extend_from_slice(&check(&[7; 40]).to_le_bytes());
        torn.extend_from_slice(&[7; 12]);
        let path = dir.path().join("p000.log");
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn)
            .unwrap();
        let bus = FileBus::open(dir.path(), 1, true).unwrap();
        assert_eq!(all(&bus, 0).await, records(&[(0, "alpha"), (1, "bravo")]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * (8 + 5));
    }

    /// Corrupts one byte of `p000.log` at `at` (after appending "alpha", "bravo", "charlie").
    async fn corrupted_at(at: u64) -> (tempfile::TempDir, Result<FileBus>) {
        let dir = tempfile::tempdir().unwrap();
        drop({
            let bus = FileBus::open(dir.path(), 2, true).unwrap();
            append(
                &bus,
                vec![
                    rec(0, "alpha"),
                    rec(0, "bravo"),
                    rec(1, "x"),
                    rec(0, "charlie"),
                ],
            )
            .await;
            bus
        });
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.path().join("p000.log"))
            .unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
        drop(file);
        let opened = FileBus::open(dir.path(), 2, true);
        (dir, opened)
    }

    #[tokio::test]
    async fn damage_in_the_middle_of_a_log_refuses_to_open_and_says_where_and_what_to_do() {
        // "bravo" is record 1, at byte 13; its payload starts at byte 21.
        for at in [21, 13, 17] {
            let (dir, opened) = corrupted_at(at).await;
            let err = opened
                .err()
                .expect("a damaged log must not open")
                .to_string();
            for part in [
                "bus partition 0",
                "record offset 1 at byte 13",
                "28 bytes follow it",
                "valid record at byte 26",
                "Restore",
                "every record in it would be lost",
            ] {
                assert!(err.contains(part), "byte {at}: {part:?} missing from {err}");
            }
            // Nothing was cut: the damaged file is left as it was, for the operator.
            let len = std::fs::metadata(dir.path().join("p000.log"))
                .unwrap()
                .len();
            assert_eq!(len, 13 * 2 + 15, "byte {at}");
        }
    }

    #[tokio::test]
    async fn a_damaged_last_record_cannot_be_told_from_a_torn_tail_and_is_cut() {
        let (_dir, opened) = corrupted_at(26 + 8 + 3).await;
        let bus = opened.unwrap();
        assert_eq!(all(&bus, 0).await, records(&[(0, "alpha"), (1, "bravo")]));
        assert_eq!(all(&bus, 1).await, records(&[(0, "x")]));
    }

    /// A failed round leaves every partition as acknowledged: the first partition of the
    /// round was written and synced before the second failed, and the third still had its
    /// buffer. The next append, and a reopen, see only acknowledged records at their offsets.
    #[tokio::test]
    async fn a_failed_write_leaves_every_partition_as_acknowledged() {
        let acknowledged: &[&[(u64, &str)]] = &[
            &[(0, "a0"), (1, "a1")],
            &[(0, "b1")],
            &[(0, "c0"), (1, "c1")],
        ];
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        {
            let bus = FileBus::open_with(dir.path(), 3, true, faults.disk()).unwrap();
            assert_eq!(append(&bus, vec![rec(0, "a0"), rec(2, "c0")]).await, [0, 0]);
            // Writes so far: 2. The next round writes partitions 0, 1, 2: the 2nd fails.
            faults.0.fail_write.store(4, Ordering::SeqCst);
            let err = bus
                .append(vec![rec(0, "lost-a"), rec(1, "lost-b"), rec(2, "lost-c")])
                .await
                .expect_err("the round failed");
            assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
            assert!(err.to_string().contains("partition 1"), "{err}");
            assert_eq!(*bus.health().borrow(), BusHealth::Serving);
            for p in 0..3 {
                assert_eq!(*bus.end(p).borrow(), [1, 0, 1][p as usize], "partition {p}");
            }
            let offsets = append(&bus, vec![rec(1, "b1"), rec(0, "a1"), rec(2, "c1")]).await;
            assert_eq!(offsets, [0, 1, 1]);
            assert_holds(&bus, acknowledged).await;
        }
        let bus = FileBus::open(dir.path(), 3, true).unwrap();
        assert_holds(&bus, acknowledged).await;
        assert_eq!(append(&bus, vec![rec(1, "b2")]).await, [1]);
    }

    #[tokio::test]
    async fn a_failed_sync_leaves_every_partition_as_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        {
            let bus = FileBus::open_with(dir.path(), 2, true, faults.disk()).unwrap();
            // The first round syncs partition 0, then partition 1's sync fails.
            faults.0.fail_sync.store(2, Ordering::SeqCst);
            assert!(bus.append(vec![rec(0, "a"), rec(1, "b")]).await.is_err());
            assert_eq!(append(&bus, vec![rec(1, "b1"), rec(0, "a1")]).await, [0, 0]);
        }
        let bus = FileBus::open(dir.path(), 2, true).unwrap();
        assert_holds(&bus, &[&[(0, "a1")], &[(0, "b1")]]).await;
    }

    /// When a file cannot be put back, the writer stops for good: health turns failed and
    /// every later append fails UNAVAILABLE saying why; acknowledged records stay readable.
    #[tokio::test]
    async fn a_failed_cut_back_stops_the_writer_and_the_bus_reports_itself_failed() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        let bus = FileBus::open_with(dir.path(), 2, true, faults.disk()).unwrap();
        assert_eq!(append(&bus, vec![rec(0, "a")]).await, [0]);
        let mut health = bus.health();
        assert_eq!(*health.borrow_and_update(), BusHealth::Serving);
        faults.0.fail_write.store(3, Ordering::SeqCst);
        faults.0.fail_truncate.store(true, Ordering::SeqCst);
        let err = bus
            .append(vec![rec(0, "x"), rec(1, "y")])
            .await
            .expect_err("the round failed");
        assert!(err.to_string().contains("stopped taking events"), "{err}");
        assert!(health.has_changed().unwrap());
        let BusHealth::Failed(reason) = health.borrow().clone() else {
            panic!("the bus still says it serves");
        };
        assert!(reason.contains("cutting partition 0 back"), "{reason}");
        assert!(reason.contains("restart the node"), "{reason}");
        // The disk works again, but the writer does not trust its files any more.
        faults.0.fail_truncate.store(false, Ordering::SeqCst);
        let later = bus.append(vec![rec(1, "z")]).await.expect_err("refused");
        assert!(
            matches!(&later, StorageError::Unavailable(m) if *m == reason),
            "{later}"
        );
        assert_eq!(all(&bus, 0).await, records(&[(0, "a")]));
        assert_eq!(*bus.end(1).borrow(), 0);
    }

    #[tokio::test]
    async fn the_embedded_bus_assigns_every_partition_once() {
        let dir = tempfile::tempdir().unwrap();
        let bus = FileBus::open(dir.path(), 3, false).unwrap();
        let mut rebalances = bus.rebalances().unwrap();
        match rebalances.recv().await {
            Some(Rebalance::Assigned(partitions)) => assert_eq!(partitions, [0, 1, 2]),
            other => panic!("expected every partition assigned, got {other:?}"),
        }
        // Nothing more comes, and the stream stays open while the bus lives.
        assert!(matches!(
            rebalances.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        let again = bus.rebalances().expect_err("one consumer per bus");
        assert!(matches!(again, StorageError::Conflict(_)), "{again}");
    }

    #[tokio::test]
    async fn the_partition_count_of_a_data_directory_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        drop(FileBus::open(dir.path(), 2, false).unwrap());
        let err = FileBus::open(dir.path(), 3, false).err().unwrap();
        assert!(err.to_string().contains("has 2 partitions but 3"), "{err}");
    }
}
