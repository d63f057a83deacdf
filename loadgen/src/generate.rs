//! Synthetic events, encoded straight into `PublishEventsRequest` bytes.
//!
//! A pool of templates is made once: each holds a subject and an event type, subtype,
//! source, location and payload (in a mix the example rules match), already encoded as the
//! protobuf fields of an `Event`. Making a batch then only writes, per event, a fresh id and
//! an increasing `occurred_at` in front of a template's bytes (protobuf fields may come in
//! any order), so one thread makes batches far faster than a server can take them.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use credence_proto::v1 as pb;
use prost::Message as _;
use prost_types::value::Kind;

/// Length of every generated event id: `lg-` + 8 hex digits + `-` + 12 digits.
pub const EVENT_ID_LEN: usize = 24;

/// A small, fast, seeded random number generator (SplitMix64). Deterministic across
/// platforms, which is all a load generator needs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A whole number in `lo..=hi`, as the f64 a payload holds.
    pub fn int(&mut self, lo: u64, hi: u64) -> f64 {
        (lo + self.below(hi - lo + 1)) as f64
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the generator needs to know.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Seed of the templates and of the order they are used in.
    pub seed: u64,
    /// Subjects `SUBJ-0000000 ..`; events spread uniformly over them.
    pub subjects: u64,
    /// Number of templates in the pool.
    pub templates: usize,
    /// 8 ASCII hex digits inside every event id, unique per run.
    pub run_id: [u8; 8],
    /// `occurred_at` of the first event, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Event time added per event (keeps `occurred_at` increasing).
    pub step_ns: i64,
    /// Latest `occurred_at` made: time stops there (the server refuses events from the
    /// future), so a run longer than planned repeats this time instead.
    pub end_ns: i64,
}

/// Event kinds and their weight in the mix (per mille), with the type they belong to.
pub const MIX: &[(&str, &str, u64)] = &[
    ("financial", "bill_paid", 160),
    ("financial", "late_payment", 70),
    ("financial", "loan_repaid", 25),
    ("financial", "loan_default", 8),
    ("financial", "tax_filed", 20),
    ("financial", "savings_milestone", 45),
    ("financial", "bankruptcy", 2),
    ("social", "volunteer_work", 80),
    ("social", "charity_donation", 80),
    ("social", "community_service", 40),
    ("social", "blood_donation", 20),
    ("social", "traffic_violation", 50),
    ("social", "public_disturbance", 10),
    ("social", "cleanup", 10),
    ("social", "mentoring", 10),
    ("online", "review", 150),
    ("online", "account_verified", 30),
    ("online", "spam_report", 30),
    ("online", "fraud_flag", 10),
    ("online", "misinformation_report", 20),
    ("online", "training", 30),
    ("online", "purchase", 100),
];

const REGIONS: &[(&str, &str)] = &[
    ("north", "n"),
    ("south", "s"),
    ("east", "e"),
    ("west", "w"),
    ("central", "c"),
];

/// Makes encoded batches of synthetic events.
#[derive(Debug)]
pub struct Generator {
    rng: Rng,
    templates: Vec<Vec<u8>>,
    run_id: [u8; 8],
    seq: u64,
    time_ns: i64,
    step_ns: i64,
    end_ns: i64,
}

impl Generator {
    /// A generator with its template pool made from `config`.
    pub fn new(config: &GenConfig) -> Self {
        let mut rng = Rng::new(config.seed);
        let total: u64 = MIX.iter().map(|m| m.2).sum();
        let templates = (0..config.templates.max(1))
            .map(|_| template(&mut rng, config.subjects.max(1), total).encode_to_vec())
            .collect();
        Self {
            rng,
            templates,
            run_id: config.run_id,
            seq: 0,
            time_ns: config.start_ns,
            step_ns: config.step_ns.max(1),
            end_ns: config.end_ns.max(config.start_ns),
        }
    }

    /// Events made so far.
    pub fn events_made(&self) -> u64 {
        self.seq
    }

    /// The next `n` events as an encoded `PublishEventsRequest`.
    pub fn next_batch(&mut self, n: usize) -> Bytes {
        let mut buf = BytesMut::with_capacity(n * 160);
        let mut id = [0u8; EVENT_ID_LEN];
        for _ in 0..n {
            let template = &self.templates[self.rng.below(self.templates.len() as u64) as usize];
            write_id(&mut id, self.run_id, self.seq);
            let seconds = self.time_ns.div_euclid(1_000_000_000);
            let nanos = self.time_ns.rem_euclid(1_000_000_000);
            let ts_len = 1
                + varint_len(seconds as u64)
                + if nanos == 0 {
                    0
                } else {
                    1 + varint_len(nanos as u64)
                };
            let event_len =
                1 + 1 + EVENT_ID_LEN + 1 + varint_len(ts_len as u64) + ts_len + template.len();
            // PublishEventsRequest.events (1), length-delimited
            buf.put_u8(0x0A);
            put_varint(&mut buf, event_len as u64);
            // Event.event_id (1)
            buf.put_u8(0x0A);
            buf.put_u8(EVENT_ID_LEN as u8);
            buf.put_slice(&id);
            // Event.occurred_at (6): Timestamp { seconds (1), nanos (2) }
            buf.put_u8(0x32);
            put_varint(&mut buf, ts_len as u64);
            buf.put_u8(0x08);
            put_varint(&mut buf, seconds as u64);
            if nanos != 0 {
                buf.put_u8(0x10);
                put_varint(&mut buf, nanos as u64);
            }
            // subject, type, subtype, source, location, payload
            buf.put_slice(template);
            self.seq += 1;
            self.time_ns = (self.time_ns + self.step_ns).min(self.end_ns);
        }
        buf.freeze()
    }
}

/// Writes `lg-<run>-<seq as 12 digits>` into `out`.
fn write_id(out: &mut [u8; EVENT_ID_LEN], run: [u8; 8], seq: u64) {
    out[..3].copy_from_slice(b"lg-");
    out[3..11].copy_from_slice(&run);
    out[11] = b'-';
    let mut n = seq;
    for slot in out[12..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn varint_len(v: u64) -> usize {
    // 7 bits per byte; 0 still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// One template: an event without id and time.
fn template(rng: &mut Rng, subjects: u64, total_weight: u64) -> pb::Event {
    let mut pick = rng.below(total_weight);
    let &(event_type, subtype, _) = MIX
        .iter()
        .find(|m| {
            if pick < m.2 {
                true
            } else {
                pick -= m.2;
                false
            }
        })
        .unwrap_or(&MIX[0]);
    let payload = payload(rng, subtype);
    let (region, prefix) = *rng.pick(REGIONS);
    let district = format!("{prefix}-{:02}", rng.int(1, 12));
    let source = source_system(event_type);
    pb::Event {
        subject_id: subject_id(rng.below(subjects)),
        event_type: event_type.into(),
        event_subtype: subtype.into(),
        source_system: source.into(),
        location: Some(pb::Location {
            region: region.into(),
            district,
            lat: 0.0,
            lon: 0.0,
        }),
        payload: Some(payload),
        ..pb::Event::default()
    }
}

/// The simulated system events of a type come from.
pub fn source_system(event_type: &str) -> &'static str {
    match event_type {
        "financial" => "bank-sim",
        "social" => "civic-sim",
        _ => "web-sim",
    }
}

/// A payload for an event of `subtype`, in a mix that reaches every condition and
/// multiplier of the example rules (`scorer/rules/example.yaml`).
pub fn payload(rng: &mut Rng, subtype: &str) -> prost_types::Struct {
    let mut p = BTreeMap::new();
    let num = |v: f64| Kind::NumberValue(v);
    match subtype {
        "bill_paid" => {
            let late = if rng.chance(0.9) { 0.0 } else { rng.int(1, 5) };
            p.insert("days_late", num(late));
            p.insert("amount", num(rng.int(20, 600)));
        }
        "late_payment" => {
            let days = if rng.chance(0.7) {
                rng.int(1, 30)
            } else {
                rng.int(31, 150)
            };
            p.insert("days_late", num(days));
            p.insert("amount", num(rng.int(20, 2000)));
        }
        "loan_repaid" => {
            p.insert("amount", num(rng.int(1000, 50_000)));
            p.insert("early", Kind::BoolValue(rng.chance(0.3)));
        }
        "loan_default" => {
            p.insert("amount", num(rng.int(500, 40_000)));
        }
        "tax_filed" => {
            p.insert("on_time", Kind::BoolValue(rng.chance(0.85)));
        }
        "savings_milestone" => {
            p.insert("amount", num(rng.int(100, 10_000)));
        }
        "volunteer_work" => {
            p.insert("hours", num(rng.int(1, 12)));
        }
        "charity_donation" => {
            p.insert("amount", num(rng.int(5, 1000)));
            p.insert("anonymous", Kind::BoolValue(rng.chance(0.2)));
        }
        "traffic_violation" => {
            let severity = *rng.pick(&["minor", "minor", "moderate", "serious", "major"]);
            p.insert("severity", Kind::StringValue(severity.into()));
        }
        "review" => {
            p.insert("verified_purchase", Kind::BoolValue(rng.chance(0.6)));
            p.insert("helpful_votes", num(rng.int(0, 30)));
        }
        "spam_report" => {
            p.insert("confirmed", Kind::BoolValue(rng.chance(0.5)));
        }
        "fraud_flag" => {
            p.insert("confidence", num((rng.unit() * 100.0).round() / 100.0));
        }
        "misinformation_report" => {
            p.insert("reach", num(rng.int(10, 100_000)));
        }
        "training" => {
            let course = *rng.pick(&[
                "security basics",
                "advanced security",
                "first aid",
                "cooking",
            ]);
            p.insert("course", Kind::StringValue(course.into()));
        }
        "purchase" => {
            let category = *rng.pick(&["loot_box", "groceries", "electronics", "books"]);
            p.insert("category", Kind::StringValue(category.into()));
            p.insert("amount", num(rng.int(1, 500)));
        }
        _ => {}
    }
    prost_types::Struct {
        fields: p
            .into_iter()
            .map(|(k, v)| (k.to_owned(), prost_types::Value { kind: Some(v) }))
            .collect(),
    }
}

/// The id of subject number `n`.
pub fn subject_id(n: u64) -> String {
    format!("SUBJ-{n:07}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::collections::HashSet;

    use super::*;

    fn config(seed: u64) -> GenConfig {
        GenConfig {
            seed,
            subjects: 500,
            templates: 2_000,
            run_id: *b"0badc0de",
            start_ns: 1_767_225_600_000_000_000,
            step_ns: 1_500_000_001,
            end_ns: i64::MAX,
        }
    }

    fn decode(bytes: &Bytes) -> pb::PublishEventsRequest {
        pb::PublishEventsRequest::decode(bytes.clone()).unwrap()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let mut first = Generator::new(&config(7));
        let mut same = Generator::new(&config(7));
        let mut other = Generator::new(&config(8));
        for _ in 0..5 {
            let batch = first.next_batch(300);
            assert_eq!(batch, same.next_batch(300));
            assert_ne!(batch, other.next_batch(300));
        }
        assert_eq!(first.events_made(), 1500);
    }

    #[test]
    fn batches_decode_with_unique_ids_increasing_times_and_the_mix() {
        let mut g = Generator::new(&config(1));
        let mut ids = HashSet::new();
        let mut subtypes = HashSet::new();
        let mut last = (i64::MIN, i32::MIN);
        for _ in 0..20 {
            let request = decode(&g.next_batch(1000));
            assert_eq!(request.events.len(), 1000);
            for e in request.events {
                assert_eq!(e.event_id.len(), EVENT_ID_LEN);
                assert!(e.event_id.starts_with("lg-0badc0de-"), "{}", e.event_id);
                assert!(
                    ids.insert(e.event_id.clone()),
                    "duplicate id {}",
                    e.event_id
                );
                let t = e.occurred_at.unwrap();
                assert!((0..1_000_000_000).contains(&t.nanos));
                assert!((t.seconds, t.nanos) > last, "occurred_at must increase");
                last = (t.seconds, t.nanos);
                assert!(e.subject_id.starts_with("SUBJ-"));
                assert!(["financial", "social", "online"].contains(&e.event_type.as_str()));
                assert!(e.location.is_some() && e.payload.is_some());
                subtypes.insert(e.event_subtype);
            }
        }
        assert_eq!(ids.len(), 20_000);
        assert_eq!(subtypes.len(), MIX.len(), "every kind of the mix shows up");
        // the first id, spelled out
        let first = decode(&Generator::new(&config(1)).next_batch(1));
        assert_eq!(first.events[0].event_id, "lg-0badc0de-000000000000");
        let t = first.events[0].occurred_at.unwrap();
        assert_eq!((t.seconds, t.nanos), (1_767_225_600, 0));
    }

    #[test]
    fn time_stops_at_the_end() {
        let mut c = config(1);
        c.end_ns = c.start_ns + 3 * c.step_ns;
        let request = decode(&Generator::new(&c).next_batch(6));
        let seconds: Vec<_> = request
            .events
            .iter()
            .map(|e| e.occurred_at.unwrap().seconds)
            .collect();
        let end = c.end_ns / 1_000_000_000;
        assert_eq!(seconds[3..], [end, end, end]);
        assert!(seconds[2] < end);
    }

    #[test]
    fn hand_encoding_matches_prost() {
        let mut g = Generator::new(&config(3));
        let bytes = g.next_batch(50);
        let request = decode(&bytes);
        assert_eq!(request.encode_to_vec().len(), bytes.len());
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_len(v), "{v}");
            assert_eq!(
                prost::encoding::decode_varint(&mut buf.freeze()).unwrap(),
                v
            );
        }
    }
}
