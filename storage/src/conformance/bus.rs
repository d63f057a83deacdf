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
