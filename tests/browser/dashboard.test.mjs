// The dashboard in a real browser (issue 13): publishes synthetic data through the node's JSON
// API, then checks that the page shows exactly those numbers, live, in Chromium.
//
//   deps="$(deploy/local/browser.sh)"
//   BROWSER_DEPS="$deps" CREDENCE_DASHBOARD_URL=http://127.0.0.1:8080/ node tests/browser/dashboard.test.mjs
//
// Environment:
//   CREDENCE_DASHBOARD_URL  the page (required); the API is under api/v1/ beside it
//   BROWSER_DEPS            directory whose node_modules has playwright-core (what
//                           deploy/local/browser.sh prints); without it, the usual resolution
//                           from this file (and NODE_PATH)
//   CHROMIUM                the browser binary (default /usr/bin/chromium)
//   CREDENCE_TOKEN          a token with write rights when the node has tokens on: the test
//                           then also enters it in the page's token box
//   SCREENSHOT              write a PNG of the overview (1280x900) there; on failure a PNG of
//                           the page as it was is written beside it (<name>-failure.png)
//   TIMEOUT_SECONDS         the whole run (default 120); WAIT_SECONDS: each wait (default 20)
//
// The node should be fresh (the harness starts one on an empty data directory): the check of
// received events compares process counters with what this script published since it started.
// Prints one line per check; exits 0 when all passed, 1 (with the reason) otherwise.

import { createRequire } from 'node:module';
import path from 'node:path';

const TIMEOUT_MS = Number(process.env.TIMEOUT_SECONDS || 120) * 1000;
const WAIT_MS = Number(process.env.WAIT_SECONDS || 20) * 1000;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKEN = process.env.CREDENCE_TOKEN || '';
const SCREENSHOT = process.env.SCREENSHOT || '';
const PAGE_URL = process.env.CREDENCE_DASHBOARD_URL || '';

let passed = 0;
let browser = null;
let page = null;

function check(name) {
  passed += 1;
  console.log(`ok ${passed} - ${name}`);
}

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

const hardStop = setTimeout(() => {
  console.error(`FAIL: the test did not finish within ${TIMEOUT_MS / 1000} s (after ${passed} checks passed)`);
  console.log(`dashboard: ${passed} passed, 1 failed`);
  process.exit(1); // playwright-core kills the browser it launched on exit
}, TIMEOUT_MS);

function loadPlaywright() {
  const deps = process.env.BROWSER_DEPS;
  const from = deps ? path.join(path.resolve(deps), 'package.json') : import.meta.url;
  try {
    return createRequire(from)('playwright-core');
  } catch (err) {
    fail(`cannot load playwright-core from ${deps || 'this directory or NODE_PATH'} (${err.message}); `
      + 'run deploy/local/browser.sh and pass the directory it prints as BROWSER_DEPS');
  }
  return null;
}

// ---- the JSON API, from node ---------------------------------------------------------------

const base = (() => {
  if (!PAGE_URL) return null;
  const u = new URL(PAGE_URL);
  u.hash = '';
  u.search = '';
  if (!u.pathname.endsWith('/')) u.pathname = u.pathname.replace(/[^/]*$/, '');
  return u;
})();

async function api(name, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (TOKEN) headers.authorization = `Bearer ${TOKEN}`;
  const res = await fetch(new URL(`api/v1/${name}`, base), {
    method: body === undefined ? 'GET' : 'POST', headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  if (!res.ok) fail(`${name}: HTTP ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

const rpc = (service, method, body) => api(`credence.v1.${service}/${method}`, body || {});
const sql = async (query) => {
  const res = await api('analytics', { sql: query, max_rows: 10000 });
  const names = res.columns.map((c) => c.name);
  return res.rows.map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
};

/** Polls `probe` (returns [ok, detail]) until ok, at most WAIT_MS; fails with the last detail. */
async function waitFor(what, probe, ms = WAIT_MS) {
  const end = Date.now() + ms;
  let detail = '';
  for (;;) {
    try {
      const [ok, d] = await probe();
      if (ok) return;
      detail = d;
    } catch (err) {
      if (err instanceof Failure) throw err;
      detail = err.message;
    }
    if (Date.now() > end) fail(`${what}: not so after ${ms / 1000} s (${detail})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const nf2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

// ---- the page ------------------------------------------------------------------------------

const tid = (id) => `[data-testid="${id}"]`;

/** The data-value (number) and text of the first element with that test id, or null. */
async function valueOf(testid, root = page) {
  const loc = root.locator(tid(testid)).first();
  if ((await loc.count()) === 0) return null;
  return loc.evaluate((el) => ({ value: el.dataset.value === undefined ? null : Number(el.dataset.value), text: el.textContent.trim() }));
}

async function attrs(selector, attr) {
  return page.locator(selector).evaluateAll((els, a) => els.map((el) => el.getAttribute(a)), attr);
}

const sorted = (list) => [...list].sort();
const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));

// ---- the data ------------------------------------------------------------------------------

const run = `bt${Date.now().toString(36)}`;
const REGIONS = ['north', 'south', 'east'];
const OCCUPATIONS = ['engineer', 'teacher', 'nurse', 'clerk'];
const sid = (i) => `${run}-s${i}`;

// What each subject went through (event type, subtype, payload); the example rules score all
// but social/mentoring (a draft rule), which is still received and archived.
const PLAN = [
  [['financial', 'late_payment', { days_late: 45 }], ['financial', 'bankruptcy', {}]],
  [['financial', 'loan_default', { amount: 20000 }], ['online', 'fraud_flag', { confidence: 0.9 }], ['social', 'traffic_violation', { severity: 'major' }]],
  [['financial', 'loan_repaid', { early: true }], ['financial', 'tax_filed', { on_time: true }], ['social', 'blood_donation', {}], ['social', 'volunteer_work', { hours: 8 }]],
  [['financial', 'bill_paid', { days_late: 0 }], ['financial', 'bill_paid', { days_late: 0 }], ['financial', 'bill_paid', { days_late: -2 }], ['social', 'charity_donation', { amount: 600 }]],
  [['social', 'community_service', {}], ['online', 'account_verified', {}], ['online', 'training', { course: 'security basics' }]],
  [['financial', 'late_payment', { days_late: 10 }], ['online', 'spam_report', { confirmed: true }], ['online', 'misinformation_report', { reach: 20000 }]],
  [['financial', 'savings_milestone', { amount: 2000 }], ['online', 'review', { verified_purchase: true, helpful_votes: 10 }], ['social', 'mentoring', { minutes: 45 }]],
  [['social', 'volunteer_work', { hours: 2 }], ['social', 'charity_donation', { amount: 50, anonymous: true }]],
  [['financial', 'bankruptcy', {}], ['financial', 'loan_default', { amount: 500 }]],
];

function profiles() {
  return PLAN.map((_, i) => ({
    subject_id: sid(i),
    display_name: `Test Subject ${String.fromCharCode(65 + i)}`,
    birth_year: 1970 + 3 * i,
    region: REGIONS[i % REGIONS.length],
    district: `${REGIONS[i % REGIONS.length]}-${1 + (i % 2)}`,
    occupation: OCCUPATIONS[i % OCCUPATIONS.length],
    flags: i % 3 === 0 ? ['student'] : [],
    consent: { analytics: true },
    attributes: { batch: run },
  }));
}

function events() {
  const t0 = Date.now() - 3 * 86400e3;
  const list = [];
  PLAN.forEach((steps, i) => steps.forEach(([type, subtype, payload], k) => {
    list.push({
      event_id: `${run}-e${i}-${k}`,
      subject_id: sid(i),
      event_type: type,
      event_subtype: subtype,
      source_system: 'browser-test',
      occurred_at: new Date(t0 + (k * 2 + i / 10) * 3600e3).toISOString(),
      location: { region: REGIONS[i % REGIONS.length], district: `${REGIONS[i % REGIONS.length]}-1` },
      payload,
    });
  }));
  return list;
}

const RELATIONS = [
  [0, 1, 'RELATION_KIND_FRIEND', 0.8], [0, 2, 'RELATION_KIND_FAMILY', 1], [1, 3, 'RELATION_KIND_COLLEAGUE', 0.5],
  [2, 4, 'RELATION_KIND_NEIGHBOUR', 0.6], [5, 6, 'RELATION_KIND_CLASSMATE', 0.7], [6, 7, 'RELATION_KIND_BUSINESS_PARTNER', 0.9],
];

// ---- the checks ----------------------------------------------------------------------------

async function main() {
  if (!PAGE_URL) fail('CREDENCE_DASHBOARD_URL is not set (the dashboard page, e.g. http://127.0.0.1:8080/)');
  const { chromium } = loadPlaywright();

  const problems = []; // console errors and uncaught exceptions of the page
  const allowed = { status401: Boolean(TOKEN), analytics400: false, profile404: false };
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: WAIT_MS,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(WAIT_MS);
  page = await context.newPage();
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const url = (msg.location() && msg.location().url) || '';
    // The browser itself reports every non-2xx answer; two of them are the test's doing.
    if (text.startsWith('Failed to load resource')) {
      if (allowed.status401 && text.includes('status of 401')) return;
      if (allowed.analytics400 && text.includes('status of 400') && url.endsWith('/api/v1/analytics')) return;
      if (allowed.profile404 && text.includes('status of 404') && url.endsWith('/api/v1/credence.v1.QueryService/GetProfile')) return;
    }
    problems.push(`console: ${text}${url ? ` (${url})` : ''}`);
  });

  // 1. The page loads and shows the node's counters (through the token box when tokens are on).
  await page.goto(new URL('#/', base).href, { waitUntil: 'load' });
  if (TOKEN) {
    await page.locator(tid('token-box')).waitFor({ state: 'visible' });
    await page.locator(tid('token-input')).fill(TOKEN);
    await page.locator(tid('token-submit')).click();
    await page.locator(tid('token-box')).waitFor({ state: 'hidden' });
    check('the node asked for a token; the page took it from its token box');
  }
  await waitFor('the overview shows the received-events counter', async () => {
    const v = await valueOf('events-received-total');
    return [v && v.value !== null, JSON.stringify(v)];
  });
  allowed.status401 = false;
  await waitFor('the alert stream is connected', async () => {
    const v = await valueOf('alerts-state');
    return [v && v.text === 'live', `alerts ${JSON.stringify(v)}`];
  });
  check('the overview loads, shows the counters and is connected to the alert stream');

  // 2. Publish: profiles in three regions, relations, events the example rules score.
  const before = await api('stats');
  const receivedBefore = before.events_received.accepted + before.events_received.duplicate + before.events_received.rejected;
  const up = await rpc('IngestionService', 'UpsertProfiles', { profiles: profiles() });
  if (up.rejected !== 0 || up.created + up.updated !== PLAN.length) fail(`UpsertProfiles: ${JSON.stringify(up)}`);
  const rel = await rpc('GraphService', 'PutRelations', {
    relations: RELATIONS.map(([a, b, kind, weight]) => ({ subject_id: sid(a), other_subject_id: sid(b), kind, weight })),
  });
  if (rel.upserted !== RELATIONS.length) fail(`PutRelations: ${JSON.stringify(rel)}`);
  const evs = events();
  const pub = await rpc('IngestionService', 'PublishEvents', { events: evs });
  if (pub.accepted !== evs.length) fail(`PublishEvents accepted ${pub.accepted} of ${evs.length}: ${JSON.stringify(pub.results.filter((r) => r.outcome !== 'EVENT_OUTCOME_ACCEPTED'))}`);
  check(`published ${PLAN.length} profiles in ${REGIONS.length} regions, ${RELATIONS.length} relations, ${evs.length} events`);

  // 3. Counters: what was published, received and scored.
  await waitFor(`the page counts ${receivedBefore + evs.length} events received`, async () => {
    const v = await valueOf('events-received-total');
    return [v && v.value === receivedBefore + evs.length && v.text === nf0.format(receivedBefore + evs.length), `page shows ${JSON.stringify(v)}`];
  });
  check(`events received on the page: ${receivedBefore + evs.length} (${evs.length} published)`);
  await waitFor(`the node scores all ${evs.length} events`, async () => {
    const st = await api('stats');
    return [st.events_scored >= before.events_scored + evs.length, `events_scored ${st.events_scored}, wanted ${before.events_scored + evs.length}`];
  });
  await waitFor('the page shows the scored-events counter of the node', async () => {
    const st = await api('stats');
    const v = await valueOf('events-scored-total');
    return [v && v.value === st.events_scored, `page ${JSON.stringify(v)}, node ${st.events_scored}`];
  });
  check(`events scored on the page: ${before.events_scored + evs.length}`);

  // 4. Tier counts equal GetTierDistribution's.
  let dist = null;
  await waitFor('tier counts on the page equal GetTierDistribution', async () => {
    dist = await rpc('QueryService', 'GetTierDistribution', {});
    const wrong = [];
    for (const t of dist.tiers) {
      const v = await valueOf(`tier-count-${t.tier}`);
      if (!v || v.value !== t.subjects || v.text !== nf0.format(t.subjects)) wrong.push(`${t.tier}: page ${JSON.stringify(v)}, node ${t.subjects}`);
    }
    const total = await valueOf('subjects-total');
    if (!total || total.value !== dist.total_subjects) wrong.push(`total: page ${JSON.stringify(total)}, node ${dist.total_subjects}`);
    return [wrong.length === 0, wrong.join('; ')];
  });
  const nonEmpty = dist.tiers.filter((t) => t.subjects > 0).map((t) => `${t.tier}=${t.subjects}`);
  if (nonEmpty.length < 3) fail(`the test data should fill at least 3 tiers, got ${nonEmpty.join(', ')}`);
  check(`tier counts equal GetTierDistribution (${nonEmpty.join(', ')})`);

  // 5. Scores by region (SQL over snapshots) equal the node's answer to the same question.
  const regions = await sql(`SELECT region, count(*) AS n FROM snapshots WHERE region IN ('north', 'south', 'east') GROUP BY region`);
  await waitFor('subjects per region on the page equal the snapshots', async () => {
    const wrong = [];
    for (const r of regions) {
      const v = await valueOf(`region-count-${r.region}`);
      if (!v || v.value !== r.n) wrong.push(`${r.region}: page ${JSON.stringify(v)}, node ${r.n}`);
    }
    return [regions.length === REGIONS.length && wrong.length === 0, wrong.join('; ') || `regions ${JSON.stringify(regions)}`];
  });
  check(`subjects per region: ${regions.map((r) => `${r.region}=${r.n}`).join(', ')}`);

  // 6. Alerts arrive over the stream: the tier changes of the published subjects.
  const ours = new Set(PLAN.map((_, i) => sid(i)));
  await waitFor('an alert of a published subject arrives', async () => {
    const subjects = await attrs(tid('alert-row'), 'data-subject');
    return [subjects.some((x) => ours.has(x)), `alerts for ${JSON.stringify(subjects.slice(0, 5))}`];
  });
  const alertCount = (await attrs(tid('alert-row'), 'data-subject')).filter((x) => ours.has(x)).length;
  check(`live alerts of the published subjects: ${alertCount}`);

  // 7. Biggest movers list the subjects; follow one to its explanation.
  const target = sid(0);
  const moverLink = page.locator(`${tid('mover-link')}[data-subject="${target}"]`);
  await moverLink.waitFor({ state: 'visible' });
  check('the biggest movers list the published subjects');
  await moverLink.click();
  await waitFor('the subject view opens', async () => {
    const hash = await page.evaluate(() => location.hash);
    return [hash === `#/subject/${target}`, `hash ${hash}`];
  });
  await page.evaluate(() => { window.__noReload = 1; });

  const score = (await rpc('ScoringService', 'GetScore', { subject_id: target })).snapshot;
  await waitFor(`the subject's score equals GetScore (${score.score})`, async () => {
    const v = await valueOf('subject-score');
    const tier = await valueOf('subject-tier');
    return [v && v.value === score.score && v.text === nf2.format(score.score) && tier && tier.text === score.tier,
      `page ${JSON.stringify(v)} ${JSON.stringify(tier)}, node ${score.score} ${score.tier}`];
  });
  check(`subject ${target}: score ${nf2.format(score.score)}, tier ${score.tier}, as GetScore says`);

  const explain = await rpc('ScoringService', 'ExplainScore', { subject_id: target, page_size: 1000 });
  const wantRules = explain.changes.map((c) => `${c.rule_id}@${c.rule_version}`);
  if (!wantRules.some((r) => r.startsWith('bankruptcy@')) || !wantRules.some((r) => r.startsWith('late_payment@'))) {
    fail(`ExplainScore should name bankruptcy and late_payment: ${JSON.stringify(wantRules)}`);
  }
  await waitFor('every score change is listed with its rule', async () => {
    const ids = await attrs(tid('change-row'), 'data-rule-id');
    const versions = await attrs(tid('change-row'), 'data-rule-version');
    const got = ids.map((id, i) => `${id}@${versions[i]}`);
    return [same(got, wantRules), `page ${JSON.stringify(got)}, node ${JSON.stringify(wantRules)}`];
  });
  const reasons = await page.locator(tid('change-reason')).allTextContents();
  const wantReasons = explain.changes.map((c) => c.reason);
  if (!same(reasons, wantReasons)) fail(`change reasons: page ${JSON.stringify(reasons)}, node ${JSON.stringify(wantReasons)}`);
  const deltas = (await attrs(`${tid('change-row')} ${tid('change-delta')}`, 'data-value')).map(Number);
  if (!same(deltas.map(String), explain.changes.map((c) => String(c.delta)))) fail(`change deltas: page ${deltas}, node ${explain.changes.map((c) => c.delta)}`);
  check(`its ${explain.changes.length} score changes with rule, version, delta and reason: ${wantRules.join(', ')}`);

  const history = await rpc('QueryService', 'GetScoreHistory', { subject_id: target, page_size: 1000 });
  await waitFor('the history chart has one point per scored event', async () => {
    const n = await page.locator(tid('history-point')).count();
    return [n === history.points.length, `page ${n} points, node ${history.points.length}`];
  });
  check(`score history chart: ${history.points.length} points`);

  const neighbors = (await rpc('GraphService', 'GetNeighbors', { subject_id: target, depth: 2 })).neighbors;
  const friend = sid(1);
  const friendScore = (await rpc('ScoringService', 'GetScore', { subject_id: friend })).snapshot;
  await waitFor('the neighbours are listed with their scores', async () => {
    const got = await attrs(tid('neighbor-row'), 'data-subject');
    const row = page.locator(`${tid('neighbor-row')}[data-subject="${friend}"] ${tid('neighbor-score')}`);
    const v = (await row.count()) ? Number(await row.getAttribute('data-value')) : null;
    return [same(got, neighbors.map((n) => n.subject_id)) && v === friendScore.score,
      `page ${JSON.stringify(got)} (${friend}: ${v}), node ${JSON.stringify(neighbors.map((n) => n.subject_id))} (${friendScore.score})`];
  });
  await page.locator(`${tid('neighbor-link')}[data-subject="${friend}"]`).click();
  await waitFor('the neighbour link opens its subject view', async () => {
    const v = await valueOf('subject-score');
    const hash = await page.evaluate(() => location.hash);
    return [hash === `#/subject/${friend}` && v && v.value === friendScore.score, `hash ${hash}, score ${JSON.stringify(v)}`];
  });
  check(`${neighbors.length} neighbours with their scores; the link to ${friend} shows its score ${nf2.format(friendScore.score)}`);

  // The search box: an id nobody has says so (GetProfile's NOT_FOUND, the page's only 404).
  allowed.profile404 = true;
  const nobody = `${run}-nobody`;
  await page.locator(tid('subject-search')).fill(nobody);
  await page.locator(tid('subject-search')).press('Enter');
  await waitFor('an unknown subject id is reported as such', async () => {
    const hash = await page.evaluate(() => location.hash);
    const text = await page.locator(tid('view-subject')).textContent();
    return [hash === `#/subject/${nobody}` && text.includes(`no subject "${nobody}"`), `hash ${hash}, view "${text.slice(0, 120)}"`];
  });
  check('the search box opens a subject; an unknown id says there is no such subject');

  // 8. Rules: versions and the changes each made; a new version appears without a reload.
  await page.locator(tid('tab-rules')).click();
  const rule = (await rpc('ScoringService', 'GetRule', { rule_id: 'volunteer_work' })).rule;
  await page.locator(tid(`rule-version-volunteer_work-${rule.version}`)).waitFor({ state: 'visible' });
  allowed.profile404 = false; // the subject view has stopped polling by now
  const made = await sql(`SELECT rule_id, rule_version, count(*) AS n FROM score_changes
                           WHERE rule_id IN ('bankruptcy', 'volunteer_work') GROUP BY ALL`);
  await waitFor('the changes each rule version made equal the score_changes', async () => {
    const wrong = [];
    for (const m of made) {
      const v = await valueOf(`rule-changes-${m.rule_id}-${m.rule_version}`);
      if (!v || v.value !== m.n) wrong.push(`${m.rule_id}@${m.rule_version}: page ${JSON.stringify(v)}, node ${m.n}`);
    }
    return [made.length > 0 && wrong.length === 0, wrong.join('; ') || 'no changes by those rules'];
  });
  check(`rules view: ${made.map((m) => `${m.rule_id}@${m.rule_version} made ${m.n}`).join(', ')}`);

  const changedRule = { ...rule, points: rule.points + 5, description: `Changed by the browser test ${run}.` };
  delete changedRule.version;
  delete changedRule.updated_at;
  const put = (await rpc('ScoringService', 'PutRule', { rule: changedRule })).rule;
  if (put.version !== rule.version + 1) fail(`PutRule gave version ${put.version}, wanted ${rule.version + 1}`);
  const row = page.locator(tid(`rule-version-volunteer_work-${put.version}`));
  await row.waitFor({ state: 'visible' });
  const status = (await row.locator(tid('rule-status')).textContent()).trim();
  if (status !== 'active') fail(`the new version's status reads "${status}", wanted active`);
  if (await page.evaluate(() => window.__noReload) !== 1) fail('the page was reloaded');
  check(`PutRule volunteer_work v${put.version}: the new version appeared live, without a reload`);

  const cfg = (await rpc('ScoringService', 'GetConfig', {})).config;
  const baseline = await valueOf('config-baseline');
  if (!baseline || baseline.text !== nf2.format(cfg.baseline)) fail(`config baseline: page ${JSON.stringify(baseline)}, node ${cfg.baseline}`);
  for (const t of cfg.tiers) await page.locator(tid(`config-tier-${t.name}`)).waitFor({ state: 'visible' });
  check(`config v${cfg.version} in force: baseline ${cfg.baseline}, tiers ${cfg.tiers.map((t) => t.name).join(' ')}`);

  // 9. Analytics: a query typed in the SQL box; then a bad one shows the node's message.
  await page.locator(tid('tab-analytics')).click();
  const box = page.locator(tid('analytics-sql'));
  await box.fill(`SELECT count(*) AS events FROM events WHERE event_id LIKE '${run}-%'`);
  await page.locator(tid('analytics-run')).click();
  await waitFor('the SQL result shows the number of published events', async () => {
    const heads = await page.locator(`${tid('analytics-result')} thead th`).allTextContents();
    const cells = await page.locator(`${tid('analytics-result')} tbody td`).allTextContents();
    return [heads.length === 1 && heads[0].startsWith('events') && cells.length === 1 && cells[0] === String(evs.length),
      `columns ${JSON.stringify(heads)}, cells ${JSON.stringify(cells)}`];
  });
  await box.fill(`SELECT subject_id, count(*) AS n FROM events WHERE event_id LIKE '${run}-%' GROUP BY ALL ORDER BY subject_id`);
  await page.locator(tid('analytics-run')).click();
  const want = PLAN.map((steps, i) => [sid(i), String(steps.length)]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  await waitFor('the SQL result has one row per subject', async () => {
    const rows = await page.locator(`${tid('analytics-result')} tbody tr`).evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    return [JSON.stringify(rows) === JSON.stringify(want), `rows ${JSON.stringify(rows)}`];
  });
  check(`analytics: count(*) of the published events is ${evs.length}, and ${PLAN.length} rows per subject`);

  allowed.analytics400 = true;
  await box.fill('SELECT * FROM no_such_view');
  await page.locator(tid('analytics-run')).click();
  await waitFor('a bad query shows the error message', async () => {
    const err = page.locator(tid('analytics-error'));
    const text = (await err.isVisible()) ? (await err.textContent()).trim() : '';
    const tables = await page.locator(tid('analytics-result')).count();
    return [text.includes('no_such_view') && tables === 0, `error "${text}", result tables ${tables}`];
  });
  allowed.analytics400 = false;
  check(`analytics: a bad query shows "${(await page.locator(tid('analytics-error')).textContent()).trim().slice(0, 80)}"`);

  // 10. The overview again (the screenshot), and a clean console throughout.
  await page.locator(tid('tab-overview')).click();
  await page.locator(`${tid('histogram')} svg`).waitFor({ state: 'visible' });
  await page.locator(`${tid('tier-time-chart')} svg`).waitFor({ state: 'visible' });
  if (SCREENSHOT) {
    await page.waitForTimeout(2500); // one more sample, so the rate and tier charts move
    await page.screenshot({ path: SCREENSHOT });
    check(`screenshot of the overview: ${SCREENSHOT}`);
  }
  if (problems.length) fail(`the page logged errors:\n  ${problems.join('\n  ')}`);
  check('no console errors and no uncaught exceptions on the page');
}

try {
  await main();
  console.log(`dashboard: ${passed} passed, 0 failed`);
  process.exitCode = 0;
} catch (err) {
  console.error(`FAIL: ${err instanceof Failure ? err.message : (err && err.stack) || err}`);
  if (page) {
    try {
      const shown = await page.locator('.error:not([hidden])').allTextContents();
      if (shown.length) console.error(`errors shown on the page: ${shown.join(' | ')}`);
      console.error(`page at ${page.url()}`);
      if (SCREENSHOT) {
        const file = SCREENSHOT.replace(/(\.png)?$/i, '-failure.png');
        await page.screenshot({ path: file, fullPage: true });
        console.error(`screenshot of the failure: ${file}`);
      }
    } catch { /* the page is gone; the message above says why */ }
  }
  console.log(`dashboard: ${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(hardStop);
}
