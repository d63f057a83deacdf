//! The series: history, changes and aggregates, keyset pages, idempotent appends.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Score history and changes by subject and time, paged; aggregates with known numbers.
pub async fn series_history_changes_and_aggregates(stores: Stores) {
    let s = &stores.series;
    let points = vec![
        point("s1", "financial", "north", T0 + 10, -10.5, 2, 0),
        point("s1", "social", "north", T0 + HOUR + 1, 4.25, 1, 1),
        point("s2", "financial", "south", T0 + 20, 2.0, 1, 2),
        point("s1", "financial", "north", T0 + 5, 0.5, 0, 3), // late: earlier event time
        point("s2", "financial", "south", T0 + 25 * HOUR, -1.0, 3, 4),
    ];
    // Engine order within one event: "z-rule" before "a-rule" (not alphabetical).
    let changes = vec![
        (0, change("s1", "z-rule", T0 + 10, -8.0)),
        (0, change("s1", "a-rule", T0 + 10, -2.5)),
        (1, change("s1", "social", T0 + HOUR + 1, 4.25)),
        (2, change("s2", "fin", T0 + 20, 2.0)),
    ];
    s.append_scores(0, points.clone(), changes.clone())
        .await
        .expect("append");

    let history = s
        .score_history("s1", TimeRange::default(), &Page::first(2))
        .await
        .expect("history");
    assert_eq!(history.items, vec![points[3].clone(), points[0].clone()]);
    let rest = s
        .score_history(
            "s1",
            TimeRange::default(),
            &Page {
                size: 2,
                token: history.next_token,
            },
        )
        .await
        .expect("history page 2");
    assert_eq!(rest.items, vec![points[1].clone()]);
    assert!(rest.next_token.is_empty());
    let ranged = s
        .score_history(
            "s1",
            TimeRange {
                from: Some(ts(T0 + 10)),
                to: Some(ts(T0 + HOUR + 1)),
            },
            &Page::first(0),
        )
        .await
        .expect("ranged history");
    assert_eq!(ranged.items, vec![points[0].clone()]);

    let got = s
        .score_changes("s1", TimeRange::default(), &Page::first(0))
        .await
        .expect("changes");
    assert_eq!(
        got.items,
        vec![
            changes[0].1.clone(),
            changes[1].1.clone(),
            changes[2].1.clone()
        ]
    );
    let got = s
        .score_changes(
            "s1",
            TimeRange {
                from: Some(ts(T0 + HOUR)),
                to: None,
            },
            &Page::first(0),
        )
        .await
        .expect("ranged changes");
    assert_eq!(got.items, vec![changes[2].1.clone()]);

    let row = |start: i64, key: &str, events: u64, changes: u64, sum: f64, pos: f64, neg: f64| {
        AggregateRow {
            window_start: ts(start),
            key: key.into(),
            events,
            changes,
            delta_sum: sum,
            delta_positive: pos,
            delta_negative: neg,
        }
    };
    let query = crate::AggregateQuery {
        window: AggregateWindow::Hour,
        group_by: AggregateGroupBy::Subject,
        range: TimeRange::default(),
        subject_id: String::new(),
        region: String::new(),
        event_type: String::new(),
    };
    let hourly = s.aggregates(&query, &Page::first(0)).await.expect("hourly");
    assert_eq!(
        hourly.items,
        vec![
            row(T0, "s1", 2, 2, -10.0, 0.5, -10.5),
            row(T0, "s2", 1, 1, 2.0, 2.0, 0.0),
            row(T0 + HOUR, "s1", 1, 1, 4.25, 4.25, 0.0),
            row(T0 + 25 * HOUR, "s2", 1, 3, -1.0, 0.0, -1.0),
        ]
    );
    let paged = s.aggregates(&query, &Page::first(3)).await.expect("paged");
    assert_eq!(paged.items.len(), 3);
    let last = s
        .aggregates(
            &query,
            &Page {
                size: 3,
                token: paged.next_token,
            },
        )
        .await
        .expect("last page");
    assert_eq!(
        last.items,
        vec![row(T0 + 25 * HOUR, "s2", 1, 3, -1.0, 0.0, -1.0)]
    );

    let daily = crate::AggregateQuery {
        window: AggregateWindow::Day,
        group_by: AggregateGroupBy::EventType,
        event_type: "financial".into(),
        ..query.clone()
    };
    assert_eq!(
        s.aggregates(&daily, &Page::first(0))
            .await
            .expect("daily")
            .items,
        vec![
            row(T0, "financial", 3, 3, -8.0, 2.5, -10.5),
            row(T0 + 24 * HOUR, "financial", 1, 3, -1.0, 0.0, -1.0)
        ]
    );
    let by_region = crate::AggregateQuery {
        window: AggregateWindow::Day,
        group_by: AggregateGroupBy::Region,
        region: "north".into(),
        range: TimeRange {
            from: Some(ts(T0 + 10)),
            to: None,
        },
        ..query.clone()
    };
    assert_eq!(
        s.aggregates(&by_region, &Page::first(0))
            .await
            .expect("by region")
            .items,
        vec![row(T0, "north", 2, 3, -6.25, 4.25, -10.5)]
    );
    // Appending the same batch again adds nothing (rows keyed by partition and offset).
    s.append_scores(0, points.clone(), changes.clone())
        .await
        .expect("append again");
    let history = s
        .score_history("s1", TimeRange::default(), &Page::first(0))
        .await
        .expect("history");
    assert_eq!(
        history.items,
        vec![points[3].clone(), points[0].clone(), points[1].clone()]
    );
    let got = s
        .score_changes("s1", TimeRange::default(), &Page::first(0))
        .await
        .expect("changes");
    assert_eq!(got.items.len(), 3, "one copy of every change");
    let hourly_again = s.aggregates(&query, &Page::first(0)).await.expect("hourly");
    assert_eq!(hourly_again.items, hourly.items);

    // Keyset pages add up, for every listing; a token of one listing is foreign to another.
    let series = stores.series.clone();
    pages_add_up("score history", &history.items, |page| {
        let series = series.clone();
        async move {
            series
                .score_history("s1", TimeRange::default(), &page)
                .await
        }
    })
    .await;
    pages_add_up("score changes", &got.items, |page| {
        let series = series.clone();
        async move {
            series
                .score_changes("s1", TimeRange::default(), &page)
                .await
        }
    })
    .await;
    pages_add_up("aggregates", &hourly.items, |page| {
        let series = series.clone();
        let query = query.clone();
        async move { series.aggregates(&query, &page).await }
    })
    .await;
    let token = s
        .score_history("s1", TimeRange::default(), &Page::first(1))
        .await
        .expect("history")
        .next_token;
    let foreign = s
        .score_changes("s1", TimeRange::default(), &Page { size: 1, token })
        .await;
    assert!(
        matches!(foreign, Err(StorageError::Invalid(_))),
        "{foreign:?}"
    );
}
