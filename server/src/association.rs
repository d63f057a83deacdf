//! Association: how a subject's neighbourhood scores, as the weighted mean of neighbours'
//! deviations from the baseline. A neighbour's weight is the product of the relation
//! weights along its path, times `attenuation` for every hop beyond the first. Neighbours
//! that have never been scored do not count (they have no score to deviate).

use credence_storage::{Neighbor, RelationKind, Result, Stores};
use rustc_hash::FxHashMap;

/// Most neighbours an association reads.
const MAX_NEIGHBOURS: usize = 10_000;

/// How far and how an association looks.
#[derive(Clone, Copy, Debug)]
pub struct Reach<'a> {
    /// Hops, 1..=3.
    pub depth: u32,
    /// Relation kinds followed (empty: all).
    pub kinds: &'a [RelationKind],
    /// Weight factor per hop beyond the first.
    pub attenuation: f64,
    /// The config's baseline score.
    pub baseline: f64,
}

/// A neighbour's part in an association value.
#[derive(Clone, Debug, PartialEq)]
pub struct Contributor {
    /// The neighbour.
    pub subject_id: String,
    /// Hops from the subject.
    pub depth: u32,
    /// The neighbour's current score.
    pub score: f64,
    /// Its score minus the baseline.
    pub deviation: f64,
    /// Its weight: the path's weights times the attenuation per hop beyond the first.
    pub weight: f64,
    /// Its share of the association value: weight times deviation over the total weight.
    pub contribution: f64,
}

/// The association of one subject: `None` when no scored neighbour is within reach.
pub async fn compute(
    stores: &Stores,
    subject_id: &str,
    reach: Reach<'_>,
) -> Result<(Option<f64>, Vec<Contributor>)> {
    let (neighbours, _) = stores
        .graph
        .neighbors(subject_id, reach.depth, reach.kinds, MAX_NEIGHBOURS)
        .await?;
    let scores = scores_of(stores, [neighbours.as_slice()]).await?;
    Ok(associate(&neighbours, &scores, reach))
}

/// The association values of several subjects (a micro-batch's), in the order given: one
/// graph call and one snapshot read for all of them, each value exactly what [`compute`]
/// gives for its subject alone.
pub async fn compute_each(
    stores: &Stores,
    subject_ids: &[String],
    reach: Reach<'_>,
) -> Result<Vec<Option<f64>>> {
    let neighbourhoods = stores
        .graph
        .neighbors_of_each(subject_ids, reach.depth, reach.kinds, MAX_NEIGHBOURS)
        .await?;
    let scores = scores_of(stores, neighbourhoods.iter().map(|(n, _)| n.as_slice())).await?;
    Ok(neighbourhoods
        .iter()
        .map(|(neighbours, _)| associate(neighbours, &scores, reach).0)
        .collect())
}

/// The current scores of every neighbour listed, by subject id; never-scored subjects are
/// left out.
async fn scores_of<'n>(
    stores: &Stores,
    neighbourhoods: impl IntoIterator<Item = &'n [Neighbor]>,
) -> Result<FxHashMap<String, f64>> {
    let mut ids: Vec<String> = neighbourhoods
        .into_iter()
        .flatten()
        .map(|n| n.subject_id.clone())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(FxHashMap::default());
    }
    let snapshots = stores.snapshots.get_snapshots(&ids).await?;
    Ok(ids
        .into_iter()
        .zip(snapshots)
        .filter_map(|(id, snapshot)| snapshot.map(|s| (id, s.state.score)))
        .collect())
}

/// The association of a subject from its neighbours and their scores.
fn associate(
    neighbours: &[Neighbor],
    scores: &FxHashMap<String, f64>,
    reach: Reach<'_>,
) -> (Option<f64>, Vec<Contributor>) {
    let mut contributors = Vec::new();
    let (mut weighted, mut total) = (0.0, 0.0);
    for n in neighbours {
        let Some(&score) = scores.get(&n.subject_id) else {
            continue;
        };
        let hops_beyond_first = i32::try_from(n.depth.saturating_sub(1)).unwrap_or(0);
        let weight = n.path_weight * reach.attenuation.powi(hops_beyond_first);
        let deviation = score - reach.baseline;
        weighted += weight * deviation;
        total += weight;
        contributors.push(Contributor {
            subject_id: n.subject_id.clone(),
            depth: n.depth,
            score,
            deviation,
            weight,
            contribution: 0.0,
        });
    }
    if total <= 0.0 {
        return (None, contributors);
    }
    for c in &mut contributors {
        c.contribution = c.weight * c.deviation / total;
    }
    contributors.sort_by(|a, b| {
        b.contribution
            .abs()
            .total_cmp(&a.contribution.abs())
            .then_with(|| a.subject_id.cmp(&b.subject_id))
    });
    (Some(weighted / total), contributors)
}
