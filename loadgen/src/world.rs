//! A synthetic world: a population, its social graph, and the events of their lives.
//!
//! Everything follows from a seed: the same seed gives the same world, byte for byte
//! (`World::new`), and the same activity (`Activity`). Names are made of syllables and
//! national ids are scrambled indices, so no real person is described.
//!
//! - People live in households (families, one to five people) placed in regions and
//!   districts whose sizes are skewed (a big central region, districts by Zipf's law).
//! - The graph: everyone in a household is family; people of one occupation in one region
//!   are colleagues of a few others; friends form a small world (a ring of acquaintances,
//!   some rewired to anyone).
//! - Each person behaves in one of four ways (steadily good, deteriorating, recovering,
//!   erratic) and is more or less active; events come with a daily and weekly rhythm, in
//!   event time that the caller may run faster than the clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use credence_proto::v1 as pb;

use crate::generate::{MIX, Rng, payload, source_system};

/// Nanoseconds in a day.
const DAY_NS: i64 = 86_400_000_000_000;
/// Nanoseconds in an hour.
const HOUR_NS: i64 = 3_600_000_000_000;

/// Regions with their share of the population (per mille) and their district count.
const REGIONS: &[(&str, u64, u64)] = &[
    ("central", 350, 12),
    ("north", 200, 8),
    ("east", 180, 8),
    ("south", 150, 6),
    ("west", 120, 6),
];

/// Occupations with their weight; retirees and students are given by age.
const OCCUPATIONS: &[(&str, u64)] = &[
    ("engineer", 12),
    ("teacher", 10),
    ("nurse", 8),
    ("clerk", 14),
    ("driver", 9),
    ("retail", 14),
    ("farmer", 6),
    ("chef", 5),
    ("artist", 3),
    ("unemployed", 6),
];

/// Syllables of the made-up names.
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "sa", "tor", "vel", "na", "dor", "ei", "ra", "quin", "bel", "zu",
    "mar", "ti", "an", "os", "le", "ny",
];

/// How a person's conduct goes over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// Mostly good, all along.
    SteadilyGood,
    /// Good at first, worse as time goes on.
    Deteriorating,
    /// Bad at first, better as time goes on.
    Recovering,
    /// Good and bad weeks in turn.
    Erratic,
}

/// One person.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// The subject id (`CIT-0000042`).
    pub id: String,
    /// A fake national id: nine digits and a check digit, unique in the world.
    pub national_id: String,
    /// A made-up name.
    pub name: String,
    /// Year of birth.
    pub birth_year: i32,
    /// Region.
    pub region: &'static str,
    /// District (`central-03`).
    pub district: String,
    /// Occupation (`student` and `retired` by age).
    pub occupation: &'static str,
    /// Profile flags (`student`, `veteran`, `public_servant`).
    pub flags: Vec<&'static str>,
    /// How their conduct goes.
    pub behaviour: Behaviour,
    /// How active they are, relative to the average person (mean about 1).
    pub activity: f64,
    /// Their household's number.
    pub household: u32,
}

/// An undirected relation between two people, by their index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tie {
    /// One person.
    pub a: u32,
    /// The other.
    pub b: u32,
    /// What they are to each other.
    pub kind: pb::RelationKind,
    /// How strong (0..1].
    pub weight: f64,
}

/// A population and its graph.
#[derive(Clone, Debug)]
pub struct World {
    /// Everyone, in household order.
    pub people: Vec<Person>,
    /// The social graph.
    pub ties: Vec<Tie>,
    /// Cumulative activity, for drawing who acts next.
    cumulative_activity: Vec<f64>,
}

impl World {
    /// The world of `seed` with `subjects` people.
    pub fn new(seed: u64, subjects: u32) -> Self {
        let mut rng = Rng::new(seed ^ 0x005E_ED0F_0A11);
        let mut people = Vec::with_capacity(subjects as usize);
        let mut household = 0u32;
        while people.len() < subjects as usize {
            let size = 1 + weighted(&mut rng, &[(1, 28), (2, 32), (3, 18), (4, 15), (5, 7)]);
            let (region, districts) = region(&mut rng);
            // Zipf's law over the region's districts: district k has weight 1/k.
            let district = zipf(&mut rng, districts) + 1;
            let district = format!("{region}-{district:02}");
            let family = surname(&mut rng);
            for _ in 0..size {
                if people.len() == subjects as usize {
                    break;
                }
                let index = u32::try_from(people.len()).unwrap_or(u32::MAX);
                people.push(person(
                    &mut rng, seed, index, household, region, &district, &family,
                ));
            }
            household += 1;
        }
        let ties = ties(&mut rng, &people);
        let mut total = 0.0;
        let cumulative_activity = people
            .iter()
            .map(|p| {
                total += p.activity;
                total
            })
            .collect();
        Self {
            people,
            ties,
            cumulative_activity,
        }
    }

    /// Everyone as profiles for `UpsertProfiles`.
    pub fn profiles(&self) -> Vec<pb::Profile> {
        self.people
            .iter()
            .map(|p| pb::Profile {
                subject_id: p.id.clone(),
                display_name: p.name.clone(),
                birth_year: p.birth_year,
                region: p.region.into(),
                district: p.district.clone(),
                occupation: p.occupation.into(),
                flags: p.flags.iter().map(|f| (*f).to_owned()).collect(),
                attributes: [("national_id".to_owned(), p.national_id.clone())].into(),
                ..pb::Profile::default()
            })
            .collect()
    }

    /// The graph as relations for `PutRelations`.
    pub fn relations(&self) -> Vec<pb::Relation> {
        self.ties
            .iter()
            .map(|t| pb::Relation {
                subject_id: self.people[t.a as usize].id.clone(),
                other_subject_id: self.people[t.b as usize].id.clone(),
                kind: t.kind.into(),
                weight: t.weight,
                since: None,
            })
            .collect()
    }

    /// Someone, drawn in proportion to how active they are.
    fn someone(&self, rng: &mut Rng) -> &Person {
        let total = self.cumulative_activity.last().copied().unwrap_or(0.0);
        let at = rng.unit() * total;
        let index = self.cumulative_activity.partition_point(|&c| c <= at);
        &self.people[index.min(self.people.len() - 1)]
    }
}

/// The subject id of person number `n`.
pub fn citizen_id(n: u32) -> String {
    format!("CIT-{n:07}")
}

fn person(
    rng: &mut Rng,
    seed: u64,
    index: u32,
    household: u32,
    region: &'static str,
    district: &str,
    family: &str,
) -> Person {
    let birth_year = 1940 + i32::try_from(rng.below(34) + rng.below(34)).unwrap_or(0);
    let occupation = if birth_year > 2004 {
        "student"
    } else if birth_year < 1961 {
        "retired"
    } else {
        OCCUPATIONS[weighted(rng, OCCUPATIONS)].0
    };
    let mut flags = Vec::new();
    if occupation == "student" {
        flags.push("student");
    }
    if matches!(occupation, "teacher" | "nurse" | "clerk") && rng.chance(0.5) {
        flags.push("public_servant");
    }
    if birth_year < 1985 && rng.chance(0.03) {
        flags.push("veteran");
    }
    let behaviour = [
        Behaviour::SteadilyGood,
        Behaviour::Deteriorating,
        Behaviour::Recovering,
        Behaviour::Erratic,
    ][weighted(rng, &[(0, 55), (1, 15), (2, 15), (3, 15)])];
    // About log-normal: most people act about as often as the average, a few far more.
    let spread = (0..4).map(|_| rng.unit()).sum::<f64>() - 2.0;
    let activity = (spread * 0.9).exp();
    Person {
        id: citizen_id(index),
        national_id: national_id(seed, index),
        name: format!("{} {family}", given_name(rng)),
        birth_year,
        region,
        district: district.to_owned(),
        occupation,
        flags,
        behaviour,
        activity,
        household,
    }
}

/// Nine digits, a bijective scramble of the index (unique in a world of up to a billion),
/// and a check digit.
fn national_id(seed: u64, index: u32) -> String {
    const SPACE: u64 = 1_000_000_000;
    // An odd multiplier not divisible by 5 is invertible modulo 10^9.
    let scrambled = (u64::from(index) * 738_219_617 + seed % SPACE) % SPACE;
    let digits = format!("{scrambled:09}");
    let check = digits
        .bytes()
        .enumerate()
        .map(|(i, d)| u64::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum::<u64>()
        % 10;
    format!("{digits}{check}")
}

fn syllables(rng: &mut Rng, n: u64) -> String {
    let mut name: String = (0..n).map(|_| *rng.pick(SYLLABLES)).collect();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

fn given_name(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2);
    syllables(rng, n)
}

fn surname(rng: &mut Rng) -> String {
    let n = 2 + rng.below(3);
    syllables(rng, n)
}

fn region(rng: &mut Rng) -> (&'static str, u64) {
    let weights: Vec<(usize, u64)> = REGIONS.iter().enumerate().map(|(i, r)| (i, r.1)).collect();
    let (name, _, districts) = REGIONS[weighted(rng, &weights)];
    (name, districts)
}

/// An index in `0..n` with weight 1/(index + 1).
fn zipf(rng: &mut Rng, n: u64) -> u64 {
    #[allow(clippy::cast_precision_loss, reason = "small numbers")]
    let total: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
    let mut at = rng.unit() * total;
    for k in 1..=n {
        #[allow(clippy::cast_precision_loss, reason = "small numbers")]
        let w = 1.0 / k as f64;
        if at < w {
            return k - 1;
        }
        at -= w;
    }
    n - 1
}

/// The index of an item drawn in proportion to its weight.
fn weighted<T>(rng: &mut Rng, items: &[(T, u64)]) -> usize {
    let total: u64 = items.iter().map(|i| i.1).sum();
    let mut at = rng.below(total.max(1));
    for (i, item) in items.iter().enumerate() {
        if at < item.1 {
            return i;
        }
        at -= item.1;
    }
    items.len() - 1
}

/// Family within households, colleagues by occupation and region, friends in a small world.
fn ties(rng: &mut Rng, people: &[Person]) -> Vec<Tie> {
    let mut seen = BTreeSet::new();
    let mut ties = Vec::new();
    let n = u32::try_from(people.len()).unwrap_or(u32::MAX);
    let mut tie = |a: u32, b: u32, kind: pb::RelationKind, weight: f64| {
        if a != b && seen.insert((a.min(b), a.max(b), kind as i32)) {
            ties.push(Tie {
                a: a.min(b),
                b: a.max(b),
                kind,
                weight,
            });
        }
    };
    // Family: everyone in a household (people are in household order).
    let mut start = 0u32;
    for i in 1..=n {
        let ends = i == n || people[i as usize].household != people[start as usize].household;
        if ends {
            for a in start..i {
                for b in a + 1..i {
                    tie(a, b, pb::RelationKind::Family, 1.0);
                }
            }
            start = i;
        }
    }
    // Colleagues: two others of the same occupation in the same region.
    let mut groups: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for (i, p) in people.iter().enumerate() {
        if !matches!(p.occupation, "retired" | "unemployed" | "student") {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            groups.entry((p.occupation, p.region)).or_default().push(i);
        }
    }
    for members in groups.values() {
        if members.len() < 2 {
            continue;
        }
        for &a in members {
            for _ in 0..2 {
                let b = *rng.pick(members);
                let weight = 0.3 + (rng.unit() * 40.0).round() / 100.0;
                tie(a, b, pb::RelationKind::Colleague, weight);
            }
        }
    }
    // Friends: each knows the next two on a ring; one in ten of those is rewired to anyone
    // (Watts and Strogatz's small world).
    if n > 2 {
        for a in 0..n {
            for step in 1..=2 {
                let b = if rng.chance(0.1) {
                    u32::try_from(rng.below(u64::from(n))).unwrap_or(0)
                } else {
                    (a + step) % n
                };
                let weight = 0.2 + (rng.unit() * 60.0).round() / 100.0;
                tie(a, b, pb::RelationKind::Friend, weight);
            }
        }
    }
    ties
}

/// How the activity is made.
#[derive(Clone, Debug)]
pub struct ActivityConfig {
    /// Seed of the activity (independent of the world's).
    pub seed: u64,
    /// Event time of the start, nanoseconds since the Unix epoch.
    pub origin_ns: i64,
    /// Events per person per day of event time, on average over the week.
    pub events_per_person_day: f64,
    /// Share of events sent again with the same id (duplicates the node must refuse).
    pub duplicate_rate: f64,
    /// Share of events sent malformed (no event type: the node must reject them).
    pub malformed_rate: f64,
    /// Tag in every event id, so two runs against one node never share an id.
    pub run_id: String,
}

/// What an event sent is meant to be, so a report can check the node's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// A valid, new event.
    Valid,
    /// An event sent before, again.
    Duplicate,
    /// An event the node must reject.
    Malformed,
}

/// Events of the world as event time goes by.
#[derive(Debug)]
pub struct Activity {
    config: ActivityConfig,
    rng: Rng,
    clock_ns: i64,
    carry: f64,
    seq: u64,
    recent: VecDeque<pb::Event>,
}

impl Activity {
    /// Activity starting at `config.origin_ns`.
    pub fn new(config: ActivityConfig) -> Self {
        Self {
            rng: Rng::new(config.seed ^ 0xAC71_F17E),
            clock_ns: config.origin_ns,
            carry: 0.0,
            seq: 0,
            recent: VecDeque::new(),
            config,
        }
    }

    /// The event time reached.
    pub fn clock_ns(&self) -> i64 {
        self.clock_ns
    }

    /// The events of `world` from the clock up to `to_ns` (nothing if that is not later),
    /// in event-time order, each with what it is meant to be.
    pub fn advance(&mut self, world: &World, to_ns: i64) -> Vec<(pb::Event, Intent)> {
        let mut events = Vec::new();
        if world.people.is_empty() {
            return events;
        }
        // An hour at a time at most, so the daily rhythm shows within a long step.
        while self.clock_ns < to_ns {
            let from = self.clock_ns;
            let until = to_ns.min(from + HOUR_NS);
            self.clock_ns = until;
            for at in self.times(world.people.len(), from, until) {
                events.push(self.one(world, at));
            }
        }
        events
    }

    /// When the events of `[from, until)` happen, in order.
    fn times(&mut self, people: usize, from: i64, until: i64) -> Vec<i64> {
        #[allow(
            clippy::cast_precision_loss,
            reason = "counts and spans far below 2^52"
        )]
        let expected = people as f64
            * self.config.events_per_person_day
            * rhythm(from + (until - from) / 2)
            * ((until - from) as f64 / DAY_NS as f64)
            + self.carry;
        let count = expected.floor();
        self.carry = expected - count;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "non-negative, bounded by an hour's events"
        )]
        let count = count as u64;
        let span = u64::try_from(until - from).unwrap_or(1);
        let mut times: Vec<i64> = (0..count)
            .map(|_| from + i64::try_from(self.rng.below(span)).unwrap_or(0))
            .collect();
        times.sort_unstable();
        times
    }

    fn one(&mut self, world: &World, at: i64) -> (pb::Event, Intent) {
        if !self.recent.is_empty() && self.rng.chance(self.config.duplicate_rate) {
            let again = self.rng.pick(self.recent.make_contiguous()).clone();
            return (again, Intent::Duplicate);
        }
        let person = world.someone(&mut self.rng);
        let good = good_share(
            person.behaviour,
            at - self.config.origin_ns,
            person.household,
        );
        let is_good = self.rng.chance(good);
        let (event_type, subtype) = kind(&mut self.rng, is_good);
        self.seq += 1;
        let mut event = pb::Event {
            event_id: format!("w-{}-{:010}", self.config.run_id, self.seq),
            subject_id: person.id.clone(),
            event_type: event_type.into(),
            event_subtype: subtype.into(),
            source_system: source_system(event_type).into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: at.div_euclid(1_000_000_000),
                nanos: i32::try_from(at.rem_euclid(1_000_000_000)).unwrap_or(0),
            }),
            location: Some(pb::Location {
                region: person.region.into(),
                district: person.district.clone(),
                lat: 0.0,
                lon: 0.0,
            }),
            payload: Some(payload(&mut self.rng, subtype)),
            ..pb::Event::default()
        };
        if self.rng.chance(self.config.malformed_rate) {
            event.event_type.clear();
            return (event, Intent::Malformed);
        }
        // Duplicates are drawn from a sample of recent events: keeping every one would
        // clone each event once more (two fifths of the generator's time, measured).
        if self.config.duplicate_rate > 0.0 && self.seq % 16 == 1 {
            if self.recent.len() == 64 {
                self.recent.pop_front();
            }
            self.recent.push_back(event.clone());
        }
        (event, Intent::Valid)
    }
}

/// How busy people are at `at` (UTC), relative to the week's average: quiet nights,
/// busy days, quieter weekends.
pub fn rhythm(at_ns: i64) -> f64 {
    let day = at_ns.div_euclid(DAY_NS);
    let hour = at_ns.rem_euclid(DAY_NS) / HOUR_NS;
    // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    let weekday = (day + 3).rem_euclid(7);
    let daily = match hour {
        0..=5 => 0.2,
        6..=8 => 0.9,
        9..=17 => 1.45,
        18..=21 => 1.2,
        _ => 0.6,
    };
    let weekly = match weekday {
        0..=4 => 1.08,
        5 => 0.9,
        _ => 0.7,
    };
    daily * weekly
}

/// The chance that a person's next act is a good one, `since_ns` after the start.
fn good_share(behaviour: Behaviour, since_ns: i64, household: u32) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "event-time spans far below 2^52 days"
    )]
    let days = since_ns as f64 / DAY_NS as f64;
    // A trend takes a month of event time.
    let phase = (days / 30.0).clamp(0.0, 1.0);
    match behaviour {
        Behaviour::SteadilyGood => 0.9,
        Behaviour::Deteriorating => 0.85 - 0.6 * phase,
        Behaviour::Recovering => 0.25 + 0.65 * phase,
        Behaviour::Erratic => {
            let offset = f64::from(household % 7);
            0.55 + 0.35 * ((days + offset) * std::f64::consts::TAU / 7.0).sin()
        }
    }
}

/// Subtypes whose events the example rules reward.
const GOOD: &[&str] = &[
    "bill_paid",
    "loan_repaid",
    "tax_filed",
    "savings_milestone",
    "volunteer_work",
    "charity_donation",
    "community_service",
    "blood_donation",
    "cleanup",
    "mentoring",
    "review",
    "account_verified",
    "training",
    "purchase",
];

/// An event kind of the mix, among the good ones or the others.
fn kind(rng: &mut Rng, good: bool) -> (&'static str, &'static str) {
    let pool: Vec<(usize, u64)> = MIX
        .iter()
        .enumerate()
        .filter(|(_, m)| GOOD.contains(&m.1) == good)
        .map(|(i, m)| (i, m.2))
        .collect();
    let (event_type, subtype, _) = MIX[pool[weighted(rng, &pool)].0];
    (event_type, subtype)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashSet;

    use prost::Message as _;

    use super::*;

    fn bytes(world: &World, activity: &mut Activity) -> Vec<u8> {
        let mut out = Vec::new();
        for p in world.profiles() {
            p.encode(&mut out).unwrap();
        }
        for r in world.relations() {
            r.encode(&mut out).unwrap();
        }
        for (e, _) in activity.advance(world, activity.clock_ns() + 3 * DAY_NS) {
            e.encode(&mut out).unwrap();
        }
        out
    }

    fn config(seed: u64) -> ActivityConfig {
        ActivityConfig {
            seed,
            origin_ns: 1_780_000_000 * 1_000_000_000,
            events_per_person_day: 2.0,
            duplicate_rate: 0.01,
            malformed_rate: 0.01,
            run_id: "00c0ffee".into(),
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_world_byte_for_byte() {
        let a = bytes(&World::new(7, 2_000), &mut Activity::new(config(7)));
        let b = bytes(&World::new(7, 2_000), &mut Activity::new(config(7)));
        let c = bytes(&World::new(8, 2_000), &mut Activity::new(config(8)));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_population_is_skewed_unique_and_connected() {
        let world = World::new(1, 5_000);
        assert_eq!(world.people.len(), 5_000);
        let ids: HashSet<_> = world.people.iter().map(|p| &p.national_id).collect();
        assert_eq!(ids.len(), 5_000, "national ids are unique");
        let central = world
            .people
            .iter()
            .filter(|p| p.region == "central")
            .count();
        let west = world.people.iter().filter(|p| p.region == "west").count();
        assert!(central > 2 * west, "central {central}, west {west}");
        let first = world
            .people
            .iter()
            .filter(|p| p.district == "central-01")
            .count();
        let last = world
            .people
            .iter()
            .filter(|p| p.district == "central-12")
            .count();
        assert!(first > 3 * last, "district skew: {first} vs {last}");
        for kind in [
            pb::RelationKind::Family,
            pb::RelationKind::Colleague,
            pb::RelationKind::Friend,
        ] {
            assert!(
                world.ties.iter().filter(|t| t.kind == kind).count() > 1_000,
                "{kind:?}"
            );
        }
        assert!(world.ties.iter().all(|t| t.a < t.b));
        let behaviours: HashSet<_> = world.people.iter().map(|p| p.behaviour).collect();
        assert_eq!(behaviours.len(), 4);
        assert!(world.people.iter().any(|p| p.flags.contains(&"student")));
    }

    #[test]
    fn activity_follows_the_rhythm_and_covers_the_mix() {
        let world = World::new(3, 3_000);
        let mut activity = Activity::new(config(3));
        let week = activity.advance(&world, activity.clock_ns() + 7 * DAY_NS);
        let subtypes: HashSet<_> = week.iter().map(|(e, _)| e.event_subtype.as_str()).collect();
        assert_eq!(subtypes.len(), MIX.len(), "every kind of the mix");
        // About two events per person and day.
        let valid = week.iter().filter(|(_, i)| *i == Intent::Valid).count();
        assert!((30_000..50_000).contains(&valid), "{valid}");
        let dups = week.iter().filter(|(_, i)| *i == Intent::Duplicate).count();
        let bad = week.iter().filter(|(_, i)| *i == Intent::Malformed).count();
        assert!(
            dups > 100 && bad > 100,
            "{dups} duplicates, {bad} malformed"
        );
        let times: Vec<i64> = week
            .iter()
            .filter(|(_, i)| *i != Intent::Duplicate)
            .map(|(e, _)| {
                let t = e.occurred_at.unwrap();
                t.seconds * 1_000_000_000 + i64::from(t.nanos)
            })
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "in event-time order"
        );
        // Days are busier than nights.
        let hour = |t: &i64| t.rem_euclid(DAY_NS) / HOUR_NS;
        let night = times.iter().filter(|t| hour(t) < 6).count();
        let day = times.iter().filter(|t| (9..15).contains(&hour(t))).count();
        assert!(day > 4 * night, "day {day}, night {night}");
    }

    #[test]
    fn deteriorating_people_act_worse_as_time_goes_on() {
        assert!(good_share(Behaviour::Deteriorating, 0, 0) > 0.8);
        assert!(good_share(Behaviour::Deteriorating, 40 * DAY_NS, 0) < 0.3);
        assert!(good_share(Behaviour::Recovering, 0, 0) < 0.3);
        assert!(good_share(Behaviour::Recovering, 40 * DAY_NS, 0) > 0.85);
    }
}
