//! The bus: appends come back in order with their offsets.

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
