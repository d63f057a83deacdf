//! The bus: appends come back in order with their offsets; a sole consumer owns every
//! partition.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Appended records come back in order with their offsets, and the end watch moves.
pub async fn bus_appends_and_reads_in_order(stores: Stores) {
    use crate::BusRecord;
    let bus = &stores.bus;
    let before = *bus.end(0).borrow();
    let offsets = bus
        .append(vec![
            BusRecord {
                partition: 0,
                payload: b"one".to_vec(),
            },
            BusRecord {
                partition: 0,
                payload: b"two".to_vec(),
            },
        ])
        .await
        .expect("append");
    let offsets: Vec<u64> = offsets
        .into_iter()
        .map(|o| o.expect("every record appended"))
        .collect();
    assert_eq!(offsets, vec![before, before + 1]);
    assert_eq!(*bus.end(0).borrow(), before + 2);
    let read = bus.read(0, before, 10).await.expect("read");
    assert_eq!(
        read,
        vec![(before, b"one".to_vec()), (before + 1, b"two".to_vec())]
    );
    assert!(
        bus.read(0, before + 2, 10)
            .await
            .expect("read at end")
            .is_empty()
    );
}

/// A sole consumer is assigned every partition, each once, before anything is revoked; a
/// healthy bus says it serves.
pub async fn bus_assigns_every_partition_to_a_sole_consumer(stores: Stores) {
    use crate::{BusHealth, Rebalance};
    let bus = &stores.bus;
    assert_eq!(*bus.health().borrow(), BusHealth::Serving);
    let mut rebalances = bus.rebalances().expect("rebalances");
    let mut assigned = Vec::new();
    while assigned.len() < bus.partitions() as usize {
        match rebalances.recv().await.expect("the stream stays open") {
            Rebalance::Assigned(partitions) => assigned.extend(partitions),
            Rebalance::Revoked { partitions, .. } => {
                panic!("{partitions:?} revoked from a sole consumer")
            }
        }
    }
    assigned.sort_unstable();
    assert_eq!(assigned, (0..bus.partitions()).collect::<Vec<_>>());
}

/// Reads start at any offset, forwards or backwards, in any partition and in any order, and
/// each partition numbers its own records from where it stood.
pub async fn bus_reads_from_any_offset_of_any_partition(stores: Stores) {
    use crate::BusRecord;
    let bus = &stores.bus;
    let last = bus.partitions() - 1;
    let before = [*bus.end(0).borrow(), *bus.end(last).borrow()];
    let records = (0..20u8)
        .map(|i| BusRecord {
            partition: if i % 2 == 0 { 0 } else { last },
            payload: vec![i],
        })
        .collect();
    let offsets: Vec<u64> = bus
        .append(records)
        .await
        .expect("append")
        .into_iter()
        .map(|o| o.expect("every record appended"))
        .collect();
    if last == 0 {
        assert_eq!(offsets, (before[0]..before[0] + 20).collect::<Vec<_>>());
        return;
    }
    for (i, offset) in offsets.iter().enumerate() {
        let (p, i) = (i % 2, i as u64 / 2);
        assert_eq!(*offset, before[p] + i, "record {i} of its partition");
    }
    let payloads = |read: Vec<(u64, Vec<u8>)>| -> Vec<(u64, u8)> {
        read.into_iter().map(|(o, bytes)| (o, bytes[0])).collect()
    };
    let want = |p: usize, from: u64, n: u64| -> Vec<(u64, u8)> {
        (from..from + n)
            .map(|o| {
                let i = u8::try_from(o - before[p]).expect("small");
                (o, i * 2 + u8::try_from(p).expect("0 or 1"))
            })
            .collect()
    };
    // Middle, then further on, then back to the start, then the other partition, then a
    // short read, then the first one again where it left off. Each row: partition index,
    // offset (from the partition's first record of this check), most records asked for.
    let reads: [(usize, u64, usize); 7] = [
        (0, 4, 3),
        (0, 8, 100),
        (0, 0, 100),
        (1, 5, 100),
        (1, 0, 2),
        (0, 3, 1),
        (1, 2, 100),
    ];
    for (p, from, max) in reads {
        let partition = if p == 0 { 0 } else { last };
        let n = usize::try_from(10 - from).expect("small").min(max);
        let mut got = Vec::new();
        let mut at = before[p] + from;
        // A backend may answer fewer records than there are; reading on from where it
        // stopped gives the rest.
        while got.len() < n {
            let read = bus
                .read(partition, at, max - got.len())
                .await
                .expect("read");
            assert!(!read.is_empty(), "partition {partition}: nothing at {at}");
            assert!(read.len() <= max - got.len(), "more than asked for");
            at = read.last().map_or(at, |(o, _)| o + 1);
            got.extend(payloads(read));
        }
        assert_eq!(
            got,
            want(p, before[p] + from, n as u64),
            "partition {partition}, from {from}, max {max}"
        );
    }
    for p in [0, last] {
        let end = *bus.end(p).borrow();
        assert!(bus.read(p, end, 10).await.expect("read at end").is_empty());
    }
}
