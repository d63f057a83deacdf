//! Reads what a node knows: tiers, the lowest-scored subjects, one subject's explanation
//! and history, and an analytics query in SQL.
//!
//! ```sh
//! make dev                                             # a node on 127.0.0.1:50051
//! cargo run -p credence --example producer             # some data
//! cargo run -p credence --example query                # or: -- http://HOST:PORT
//! ```

use credence::{Client, ExplainQuery, HistoryQuery, SubjectQuery};
use futures::TryStreamExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let client = Client::connect(&url).await?;

    let tiers = client.get_tier_distribution(None).await?;
    println!("{} subjects", tiers.total_subjects);
    for t in &tiers.tiers {
        println!("  tier {} (from {}): {}", t.tier, t.min_score, t.subjects);
    }

    // Every subject below the baseline, following the cursors.
    let baseline = client.get_config(None).await?.baseline;
    let low: Vec<_> = client
        .list_subjects_stream(SubjectQuery {
            max_score: Some(baseline - 0.5),
            page_size: 100,
            ..SubjectQuery::default()
        })
        .try_collect()
        .await?;
    println!("{} subjects below the baseline ({baseline})", low.len());
    let Some(first) = low.first() else {
        println!("no data yet: run `cargo run -p credence --example producer` first");
        return Ok(());
    };

    let explanation = client
        .explain_score(&ExplainQuery {
            page_size: 5,
            ..ExplainQuery::new(&first.subject_id)
        })
        .await?;
    if let Some(s) = &explanation.snapshot {
        println!("{}: score {:.1}, tier {}", s.subject_id, s.score, s.tier);
    }
    for c in &explanation.changes {
        println!(
            "  {} {} v{}: {:+.1} ({})",
            c.at, c.rule_id, c.rule_version, c.delta, c.reason
        );
    }
    let history = client
        .get_score_history(&HistoryQuery {
            page_size: 3,
            ..HistoryQuery::new(&first.subject_id)
        })
        .await?;
    for p in history.items {
        println!("  {} -> {:.1} ({})", p.at, p.score, p.tier);
    }

    let sql = "select event_type, event_subtype, count(*) as events \
               from events group by 1, 2 order by 3 desc";
    let result = client.run_analytics(sql, Some(20), None).await?;
    for batch in result.record_batches()? {
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        println!("{}", names.join(" | "));
        for row in 0..batch.num_rows() {
            let cells = batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::array_value_to_string(c, row))
                .collect::<Result<Vec<_>, _>>()?;
            println!("{}", cells.join(" | "));
        }
    }
    Ok(())
}
