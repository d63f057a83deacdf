// Credence dashboard: one page, four views (#/, #/subject/<id>, #/rules, #/analytics).
//
// Everything the page shows comes from the node's JSON API (/api/v1/...): the unary RPCs of
// the four services in the protobuf JSON mapping, SQL over the analytics views, process
// counters and the alert stream (Server-Sent Events read through fetch, so the request can
// carry the token). No dependency: the charts are inline SVG drawn below, and every value
// reaches the document as text (textContent, createTextNode, setAttribute), never as markup.

const POLL_MS = 2000;
const SUBJECT_POLL_MS = 3000;
const MAX_ALERTS = 50;
const SERIES_SAMPLES = 300; // 10 minutes at one sample every 2 s
const TOKEN_KEY = 'credence.token';
const SQL_KEY = 'credence.sql';
const SVG_NS = 'http://www.w3.org/2000/svg';

// ---- DOM helpers ---------------------------------------------------------------------------

/** An HTML element. `props`: class, text, testid, style (object), on<event>, other attributes. */
function h(tag, props, ...kids) {
  const node = document.createElement(tag);
  setProps(node, props);
  addKids(node, kids);
  return node;
}

/** An SVG element, same conventions as h(). */
function s(tag, props, ...kids) {
  const node = document.createElementNS(SVG_NS, tag);
  setProps(node, props);
  addKids(node, kids);
  return node;
}

function setProps(node, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'testid') node.setAttribute('data-testid', value);
    else if (key === 'style') for (const [p, v] of Object.entries(value)) node.style.setProperty(p, v);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

function addKids(node, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    node.append(kid instanceof Node ? kid : String(kid));
  }
}

const byId = (id) => document.getElementById(id);
const mount = (node, ...kids) => { node.replaceChildren(); addKids(node, kids); };
const empty = (text) => h('div', { class: 'empty', text });

function showError(node, err) {
  if (!node) return;
  if (!err) { node.hidden = true; node.textContent = ''; return; }
  node.textContent = errorText(err);
  node.hidden = false;
}

function errorText(err) {
  if (err instanceof ApiError) return err.code ? `${err.code}: ${err.message}` : err.message;
  return String(err && err.message ? err.message : err);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- formatting ----------------------------------------------------------------------------

const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const nf4 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 4 });

const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
const fmtCount = (x) => (isNum(x) ? nf0.format(x) : '–');
const fmtScore = (x) => (isNum(x) ? nf2.format(x) : '–');
const fmtRate = (x) => (isNum(x) ? (x >= 100 ? nf0.format(x) : nf1.format(x)) : '–');
const fmtFactor = (x) => (isNum(x) ? nf4.format(x) : '–');

function fmtDelta(x) {
  if (!isNum(x)) return '–';
  return (x > 0 ? '+' : x < 0 ? '−' : '±') + nf2.format(Math.abs(x));
}

const deltaClass = (x) => (x > 0 ? 'num pos' : x < 0 ? 'num neg' : 'num');

function fmtSeconds(sec) {
  if (!isNum(sec)) return '–';
  if (sec < 1) return `${nf0.format(sec * 1000)} ms`;
  if (sec < 60) return `${nf2.format(sec)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor((sec % 3600) / 60)} min`;
  return `${Math.floor(sec / 86400)} d ${Math.floor((sec % 86400) / 3600)} h`;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** An RFC 3339 time (or ms since the epoch) as "YYYY-MM-DD HH:MM:SS" in UTC. */
function fmtTime(value) {
  if (value === null || value === undefined || value === '') return '–';
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} `
    + `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
}

/** A TIMESTAMP as the analytics API gives it ("2026-12-02 02:17:09.123456789"), to the second. */
function fmtSqlTime(value) {
  if (value === null || value === undefined) return '–';
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)/.exec(String(value));
  return m ? `${m[1]} ${m[2]}` : String(value);
}

/** A protobuf JSON Duration ("7776000s", "1.5s") as days, hours, minutes, seconds. */
function fmtDuration(value) {
  if (value === null || value === undefined || value === '') return '–';
  const m = /^(-?\d+(?:\.\d+)?)s$/.exec(String(value));
  if (!m) return String(value);
  let sec = Number(m[1]);
  if (sec === 0) return '0';
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['min', 60]]) {
    if (sec >= size) { parts.push(`${Math.floor(sec / size)} ${unit}`); sec %= size; }
  }
  if (sec > 0 || parts.length === 0) parts.push(`${nf2.format(sec)} s`);
  return parts.join(' ');
}

/** RELATION_KIND_BUSINESS_PARTNER -> "business partner". */
function enumLabel(value, prefix) {
  if (typeof value !== 'string') return value === undefined || value === null ? '–' : String(value);
  const name = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  return name.toLowerCase().replaceAll('_', ' ');
}

function fmtJson(value) {
  if (value === null || value === undefined) return '';
  try { return JSON.stringify(value, null, 2); } catch { return String(value); }
}

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const api = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  tokenWaiter: null,
};

function apiUrl(path) { return new URL(`api/v1/${path}`, document.baseURI).href; }

/** One call to the JSON API; a 401 shows the token box, waits for a token and tries again. */
async function request(method, path, body, signal) {
  for (;;) {
    const used = api.token;
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (used) headers.authorization = `Bearer ${used}`;
    let res;
    try {
      res = await fetch(apiUrl(path), {
        method, headers, signal, cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (signal && signal.aborted) throw err;
      const e = new ApiError(0, 'UNAVAILABLE', `cannot reach the node (${err.message})`);
      connection(false, e);
      throw e;
    }
    if (res.status === 401) {
      const e = await readError(res);
      if (api.token !== used) continue; // a new token arrived while this call was out
      await askToken(used ? `The token was refused: ${e.message}` : '');
      continue;
    }
    if (!res.ok) {
      const e = await readError(res);
      connection(res.status < 500 || res.status === 501, e);
      throw e;
    }
    connection(true);
    return res.json();
  }
}

async function readError(res) {
  let text = '';
  try { text = await res.text(); } catch { /* the body is gone; the status still says enough */ }
  try {
    const body = JSON.parse(text);
    if (body && typeof body === 'object') {
      return new ApiError(res.status, String(body.code || ''), String(body.message || res.statusText));
    }
  } catch { /* not JSON: show the text */ }
  return new ApiError(res.status, '', text.trim() || `HTTP ${res.status} ${res.statusText}`);
}

const rpc = (service, method, body) => request('POST', `credence.v1.${service}/${method}`, body || {});

/** SQL over the analytics views; rows come back as arrays in column order. */
const sql = (query, maxRows = 1000) => request('POST', 'analytics', { sql: query, max_rows: maxRows });

/** A SQL result as objects keyed by column name. */
function records(result) {
  const names = (result.columns || []).map((c) => c.name);
  return (result.rows || []).map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
}

const isNotFound = (err) => err instanceof ApiError && (err.status === 404 || err.code === 'NOT_FOUND');

/** Every page of a paged RPC, up to `maxPages`; `key` names the repeated field. */
async function allPages(service, method, body, key, maxPages = 5) {
  const items = [];
  let token = '';
  let complete = false;
  for (let page = 0; page < maxPages; page++) {
    const res = await rpc(service, method, { ...body, page_size: 1000, page_token: token });
    items.push(...(res[key] || []));
    token = res.next_page_token || '';
    if (!token) { complete = true; break; }
  }
  return { items, complete };
}

function askToken(reason) {
  if (!api.tokenWaiter) {
    api.tokenWaiter = new Promise((resolve) => {
      const box = byId('token-box');
      const input = byId('token-input');
      byId('token-why').textContent = reason || '';
      input.value = '';
      box.hidden = false;
      input.focus();
      const form = byId('token-form');
      const submit = (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        form.removeEventListener('submit', submit);
        api.token = token;
        sessionStorage.setItem(TOKEN_KEY, token);
        box.hidden = true;
        api.tokenWaiter = null;
        resolve();
      };
      form.addEventListener('submit', submit);
    });
  }
  return api.tokenWaiter;
}

function connection(ok, err) {
  const node = byId('conn');
  if (ok) {
    node.dataset.state = 'ok';
    node.textContent = 'connected';
    node.title = 'The node answers';
  } else {
    node.dataset.state = 'error';
    node.textContent = 'node unreachable';
    node.title = errorText(err);
  }
}

// ---- tiers and colours ---------------------------------------------------------------------

const tiers = {
  order: [], // names, lowest first
  mins: new Map(), // name -> min_score
  colors: new Map(),
};

function setTiers(list) {
  const names = list.map((t) => t.name);
  if (names.join('\u0000') === tiers.order.join('\u0000')
      && list.every((t) => tiers.mins.get(t.name) === t.min_score)) return;
  tiers.order = names;
  tiers.mins = new Map(list.map((t) => [t.name, t.min_score]));
  tiers.colors = new Map(names.map((n, i) => [n, tierColor(i, names.length)]));
}

/** Lowest tier red, highest green, a neutral slate in the middle (interpolated for any count). */
const TIER_ANCHORS = [[178, 59, 59], [217, 130, 43], [138, 148, 166], [106, 168, 111], [46, 125, 79]];

function tierColor(index, count) {
  if (count <= 1) return 'rgb(138, 148, 166)';
  const pos = (index / (count - 1)) * (TIER_ANCHORS.length - 1);
  const i = Math.min(TIER_ANCHORS.length - 2, Math.floor(pos));
  const f = pos - i;
  const rgb = TIER_ANCHORS[i].map((c, k) => Math.round(c + (TIER_ANCHORS[i + 1][k] - c) * f));
  return `rgb(${rgb.join(', ')})`;
}

const colorOfTier = (name) => tiers.colors.get(name) || '#8a93a3';

function tierOfScore(score) {
  let found = '';
  for (const name of tiers.order) if (score >= tiers.mins.get(name)) found = name;
  return found;
}

function tierBadge(name, testid) {
  return h('span', { class: 'tier-badge', text: name || '–', testid, style: { background: colorOfTier(name) } });
}

function subjectLink(id, testid) {
  return h('a', { href: `#/subject/${encodeURIComponent(id)}`, text: id, testid, 'data-subject': id, class: 'mono' });
}

// ---- charts (inline SVG) -------------------------------------------------------------------

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const err = raw / mag;
  return (err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1) * mag;
}

function niceTicks(min, max, count = 5) {
  if (!(max > min)) { const d = Math.abs(min) > 1 ? Math.abs(min) * 0.05 : 1; min -= d; max += d; }
  const step = niceStep(max - min, count);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { lo, hi, ticks };
}

function timeTicks(t0, t1, count = 5) {
  const ticks = [];
  for (let i = 0; i <= count; i++) ticks.push(t0 + ((t1 - t0) * i) / count);
  const span = t1 - t0;
  const label = (t) => {
    const d = new Date(t);
    const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    if (span < 15 * 60e3) return `${hm}:${pad2(d.getUTCSeconds())}`;
    if (span < 2 * 86400e3) return hm;
    if (span < 120 * 86400e3) return `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${hm}`;
    return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  };
  return ticks.map((t) => ({ t, label: label(t) }));
}

const scale = (d0, d1, r0, r1) => (v) => (d1 === d0 ? (r0 + r1) / 2 : r0 + ((v - d0) * (r1 - r0)) / (d1 - d0));

function svgRoot(width, height, label, testid) {
  return s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, testid });
}

function yAxis(svg, y, ticks, x0, x1, fmt) {
  for (const v of ticks) {
    const py = y(v);
    svg.append(s('line', { class: 'grid-line', x1: x0, x2: x1, y1: py, y2: py }));
    svg.append(s('text', { x: x0 - 6, y: py + 4, 'text-anchor': 'end', text: fmt(v) }));
  }
}

/**
 * Lines over time. series: [{name, color, points: [{x (ms), y, title?}]}]; refs: horizontal
 * reference lines [{y, label}] drawn when inside the range; dots: draw each point.
 */
function lineChart({ series, width = 640, height = 220, refs = [], dots = false, yMin, yFmt = fmtCount, label, testid, step = false }) {
  const points = series.flatMap((sr) => sr.points);
  if (points.length === 0) return null;
  const m = { l: 56, r: 16, t: 10, b: 24 };
  let x0 = Math.min(...points.map((p) => p.x));
  let x1 = Math.max(...points.map((p) => p.x));
  if (x1 === x0) { x0 -= 30e3; x1 += 30e3; }
  let lo = Math.min(...points.map((p) => p.y));
  let hi = Math.max(...points.map((p) => p.y));
  if (yMin !== undefined) {
    lo = Math.min(lo, yMin);
    if (!(hi > lo)) hi = lo + 4; // a flat line at the floor: whole ticks, none below it
  }
  // Reference lines close to the data are worth showing; far ones would flatten the line.
  const near = refs.filter((r) => r.y >= lo - (hi - lo + 1) * 0.5 && r.y <= hi + (hi - lo + 1) * 0.5);
  for (const r of near) { lo = Math.min(lo, r.y); hi = Math.max(hi, r.y); }
  const yt = niceTicks(lo, hi, 4);
  const x = scale(x0, x1, m.l, width - m.r);
  const y = scale(yt.lo, yt.hi, height - m.b, m.t);
  const svg = svgRoot(width, height, label, testid);
  yAxis(svg, y, yt.ticks, m.l, width - m.r, yFmt);
  for (const r of near) {
    const py = y(r.y);
    svg.append(s('line', { class: 'tier-line', x1: m.l, x2: width - m.r, y1: py, y2: py }));
    svg.append(s('text', { x: width - m.r - 2, y: py - 3, 'text-anchor': 'end', text: r.label }));
  }
  svg.append(s('line', { class: 'axis', x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
  for (const t of timeTicks(x0, x1, 4)) {
    svg.append(s('text', { x: x(t.t), y: height - 6, 'text-anchor': 'middle', text: t.label }));
  }
  for (const sr of series) {
    if (sr.points.length === 0) continue;
    let d = '';
    sr.points.forEach((p, i) => {
      if (i === 0) d += `M${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`;
      else if (step) d += `H${x(p.x).toFixed(1)}V${y(p.y).toFixed(1)}`;
      else d += `L${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`;
    });
    svg.append(s('path', { class: 'line', d, stroke: sr.color, 'stroke-dasharray': sr.dash || null }));
    if (dots) {
      for (const p of sr.points) {
        svg.append(s('circle', { class: 'dot', cx: x(p.x).toFixed(1), cy: y(p.y).toFixed(1), r: 3.5, fill: p.color || sr.color, testid: sr.dotTestid },
          p.title ? s('title', { text: p.title }) : null));
      }
    }
  }
  return svg;
}

/** Vertical bars. items: [{label, value, color, title}]. */
function barChart({ items, width = 640, height = 200, label, testid, labelEvery = 1, yFmt = fmtCount }) {
  if (items.length === 0) return null;
  const m = { l: 44, r: 8, t: 14, b: 22 };
  const yt = niceTicks(0, Math.max(1, ...items.map((i) => i.value)), 4);
  const y = scale(0, yt.hi, height - m.b, m.t);
  const band = (width - m.l - m.r) / items.length;
  const gap = Math.min(6, band * 0.2);
  const svg = svgRoot(width, height, label, testid);
  yAxis(svg, y, yt.ticks, m.l, width - m.r, yFmt);
  items.forEach((it, i) => {
    const bx = m.l + i * band + gap / 2;
    const by = y(it.value);
    svg.append(s('rect', { x: bx.toFixed(1), y: by.toFixed(1), width: Math.max(1, band - gap).toFixed(1),
      height: Math.max(0, height - m.b - by).toFixed(1), fill: it.color, rx: 2 },
    s('title', { text: it.title || `${it.label}: ${fmtCount(it.value)}` })));
    if (items.length <= 12 && it.value > 0) {
      svg.append(s('text', { x: (bx + (band - gap) / 2).toFixed(1), y: (by - 3).toFixed(1), 'text-anchor': 'middle', text: fmtCount(it.value) }));
    }
    if (i % labelEvery === 0) {
      svg.append(s('text', { x: (m.l + i * band + band / 2).toFixed(1), y: height - 6, 'text-anchor': 'middle', text: it.label }));
    }
  });
  svg.append(s('line', { class: 'axis', x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
  return svg;
}

/** Stacked areas over time. samples: [{t, values: {key: n}}], keys lowest first. */
function stackedArea({ samples, keys, width = 640, height = 200, label, testid }) {
  if (samples.length < 2 || keys.length === 0) return null;
  const m = { l: 44, r: 12, t: 10, b: 24 };
  const totals = samples.map((sm) => keys.reduce((sum, k) => sum + (sm.values[k] || 0), 0));
  const yt = niceTicks(0, Math.max(1, ...totals), 4);
  const t0 = samples[0].t;
  const t1 = samples[samples.length - 1].t;
  const x = scale(t0, t1, m.l, width - m.r);
  const y = scale(0, yt.hi, height - m.b, m.t);
  const svg = svgRoot(width, height, label, testid);
  yAxis(svg, y, yt.ticks, m.l, width - m.r, fmtCount);
  const base = samples.map(() => 0);
  for (const key of keys) {
    const top = samples.map((sm, i) => base[i] + (sm.values[key] || 0));
    let d = '';
    samples.forEach((sm, i) => { d += `${i ? 'L' : 'M'}${x(sm.t).toFixed(1)},${y(top[i]).toFixed(1)}`; });
    for (let i = samples.length - 1; i >= 0; i--) d += `L${x(samples[i].t).toFixed(1)},${y(base[i]).toFixed(1)}`;
    svg.append(s('path', { d: `${d}Z`, fill: colorOfTier(key), 'fill-opacity': 0.85, stroke: '#fff', 'stroke-width': 0.5 },
      s('title', { text: `${key}: ${fmtCount(samples[samples.length - 1].values[key] || 0)} now` })));
    top.forEach((v, i) => { base[i] = v; });
  }
  svg.append(s('line', { class: 'axis', x1: m.l, x2: width - m.r, y1: height - m.b, y2: height - m.b }));
  for (const t of timeTicks(t0, t1, 4)) {
    svg.append(s('text', { x: x(t.t), y: height - 6, 'text-anchor': 'middle', text: t.label }));
  }
  return svg;
}

function legend(items) {
  return items.map(([name, color]) => h('span', null, h('span', { class: 'swatch', style: { background: color } }), name));
}

/** Horizontal HTML bars: rows of [label node, fraction 0..1, value text, testids]. */
function hbars(rows) {
  return h('div', { class: 'bars' }, rows.map((r) => h('div', { class: 'bar-row', testid: r.testid },
    h('span', { class: 'label', title: r.title || null }, r.label),
    h('div', { class: 'bar-track' }, h('div', { class: 'bar-fill', style: { width: `${(Math.max(0, Math.min(1, r.fraction)) * 100).toFixed(1)}%`, background: r.color || null } })),
    h('span', { class: 'num', testid: r.valueTestid, 'data-value': r.value, text: r.valueText }))));
}

// ---- shared samples: stats and tiers, every 2 s while the page is open -----------------------

const live = {
  stats: null,
  prev: null, // {uptime, at, received, scored}
  rates: { received: null, scored: null },
  rateSeries: [], // {t, received, scored}
  distribution: null,
  tierSeries: [], // {t, values}
  config: null,
  statsError: null,
  tiersError: null,
};

const receivedOf = (st) => {
  const r = st.events_received || {};
  return (r.accepted || 0) + (r.duplicate || 0) + (r.rejected || 0);
};

async function sampleStats() {
  try {
    const st = await request('GET', 'stats');
    const now = Date.now();
    const cur = { uptime: st.uptime_seconds, at: now, received: receivedOf(st), scored: st.events_scored || 0 };
    const prev = live.prev;
    if (prev && cur.uptime > prev.uptime && cur.received >= prev.received && cur.scored >= prev.scored) {
      const dt = cur.uptime - prev.uptime;
      live.rates = { received: (cur.received - prev.received) / dt, scored: (cur.scored - prev.scored) / dt };
      live.rateSeries.push({ t: now, received: live.rates.received, scored: live.rates.scored });
      if (live.rateSeries.length > SERIES_SAMPLES) live.rateSeries.shift();
    } else if (prev) {
      live.rates = { received: null, scored: null }; // the node restarted: counters began again
      live.rateSeries = [];
    }
    live.prev = cur;
    live.stats = st;
    live.statsError = null;
  } catch (err) {
    live.statsError = err;
  }
}

async function sampleTiers() {
  try {
    const dist = await rpc('QueryService', 'GetTierDistribution', {});
    const list = (dist.tiers || []).map((t) => ({ name: t.tier, min_score: t.min_score }));
    setTiers(list);
    live.distribution = dist;
    live.tierSeries.push({ t: Date.now(), values: Object.fromEntries((dist.tiers || []).map((t) => [t.tier, t.subjects || 0])) });
    if (live.tierSeries.length > SERIES_SAMPLES) live.tierSeries.shift();
    live.tiersError = null;
  } catch (err) {
    live.tiersError = err;
  }
}

async function loadConfig() {
  const res = await rpc('ScoringService', 'GetConfig', {});
  live.config = res.config || null;
  if (live.config && Array.isArray(live.config.tiers)) setTiers(live.config.tiers);
  return live.config;
}

// ---- overview ------------------------------------------------------------------------------

const overview = {
  visible: false,
  errors: new Map(),
  sqlTick: 0,
};

function setOverviewError(part, err) {
  if (err) overview.errors.set(part, err); else overview.errors.delete(part);
  const node = byId('overview-error');
  if (overview.errors.size === 0) { showError(node, null); return; }
  node.textContent = [...overview.errors].map(([p, e]) => `${p}: ${errorText(e)}`).join('\n');
  node.hidden = false;
}

function renderStats() {
  setOverviewError('stats', live.statsError);
  const st = live.stats;
  if (!st) return;
  const r = st.events_received || {};
  const received = receivedOf(st);
  setNumber(byId('k-received'), received, fmtCount);
  setNumber(byId('k-scored'), st.events_scored, fmtCount);
  setNumber(byId('k-received-rate'), live.rates.received, fmtRate);
  setNumber(byId('k-scored-rate'), live.rates.scored, fmtRate);
  byId('k-received-split').textContent = `${fmtCount(r.accepted || 0)} accepted · ${fmtCount(r.duplicate || 0)} duplicate · ${fmtCount(r.rejected || 0)} rejected`;
  byId('k-dead').textContent = `${fmtCount(st.dead_letters || 0)} dead letters`;
  const lat = st.ingest_to_snapshot || {};
  setNumber(byId('k-p50'), lat.count ? lat.p50_seconds : null, fmtSeconds);
  setNumber(byId('k-p99'), lat.count ? lat.p99_seconds : null, fmtSeconds);
  byId('k-latency-count').textContent = `over ${fmtCount(lat.count || 0)} events`;
  byId('k-uptime').textContent = `node up ${fmtSeconds(st.uptime_seconds)}`;

  const lag = Array.isArray(st.lag) ? st.lag : [];
  const maxLag = Math.max(1, ...lag.map((l) => l.events || 0));
  mount(byId('lag'), lag.length === 0 ? empty('no partitions') : hbars(lag.map((l) => ({
    label: `partition ${l.partition}`, fraction: (l.events || 0) / maxLag, value: l.events || 0,
    valueText: `${fmtCount(l.events || 0)}`, testid: `lag-row-${l.partition}`, valueTestid: `lag-${l.partition}`,
    color: (l.events || 0) > 0 ? '#a86400' : null, title: 'events accepted and not yet scored',
  }))));

  const colors = [['received', '#2f5d9e'], ['scored', '#2e7d4f']];
  mount(byId('rate-legend'), legend(colors.map(([n, c]) => [`${n} /s`, c])));
  // Scored first, received dashed over it: when the two agree both stay visible.
  const chart = lineChart({
    series: colors.slice().reverse().map(([name, color]) => ({ name, color, dash: name === 'received' ? '6 4' : null,
      points: live.rateSeries.map((p) => ({ x: p.t, y: p[name] })) })),
    height: 180, yMin: 0, yFmt: fmtRate, label: 'Events received and scored per second',
  });
  mount(byId('rate-chart'), chart || empty('measuring (two samples needed)…'));
}

function setNumber(node, value, fmt) {
  node.textContent = fmt(value);
  if (isNum(value)) node.dataset.value = String(value); else delete node.dataset.value;
}

function renderTiers() {
  setOverviewError('tiers', live.tiersError);
  const dist = live.distribution;
  if (!dist) return;
  const list = dist.tiers || [];
  setNumber(byId('k-subjects'), dist.total_subjects || 0, fmtCount);
  mount(byId('tier-chart'), barChart({
    items: list.map((t) => ({ label: t.tier, value: t.subjects || 0, color: colorOfTier(t.tier), title: `${t.tier} (from ${fmtScore(t.min_score)}): ${fmtCount(t.subjects || 0)} subjects` })),
    width: 360, height: 180, label: 'Subjects per tier',
  }) || empty('no tiers'));
  mount(byId('tier-list'), list.map((t) => h('li', { testid: `tier-row-${t.tier}` },
    tierBadge(t.tier), ' ',
    h('span', { testid: `tier-count-${t.tier}`, 'data-value': t.subjects || 0, text: fmtCount(t.subjects || 0) }),
    h('span', { class: 'muted small', text: ` ≥ ${fmtScore(t.min_score)}` }))));
  const keys = list.map((t) => t.tier);
  mount(byId('tier-time-chart'), stackedArea({ samples: live.tierSeries, keys, height: 200, label: 'Subjects per tier over time' })
    || empty('collecting samples…'), h('div', { class: 'legend' }, legend(keys.map((k) => [k, colorOfTier(k)]))));
}

async function overviewSql() {
  const cfg = live.config || {};
  const lo = isNum(cfg.min_score) ? cfg.min_score : 0;
  const hi = isNum(cfg.max_score) && cfg.max_score > lo ? cfg.max_score : lo + 2000;
  const width = niceStep(hi - lo, 20);
  const buckets = Math.max(1, Math.ceil((hi - lo) / width));
  const cutoff = new Date(Date.now() - 10 * 60e3).toISOString().replace('T', ' ').replace('Z', '');
  const jobs = [
    sql(`SELECT least(greatest(floor((score - (${lo})) / (${width})), 0), ${buckets - 1})::BIGINT AS bucket,
                count(*) AS subjects
           FROM snapshots GROUP BY ALL ORDER BY bucket`)
      .then((res) => { renderHistogram(records(res), lo, width, buckets); setOverviewError('histogram', null); },
        (err) => setOverviewError('histogram', err)),
    sql(`SELECT coalesce(nullif(region, ''), '(none)') AS region, count(*) AS subjects,
                avg(score) AS avg_score, min(score) AS min_score, max(score) AS max_score
           FROM snapshots GROUP BY 1 ORDER BY 1`)
      .then((res) => { renderRegions(records(res), lo, hi); setOverviewError('regions', null); },
        (err) => setOverviewError('regions', err)),
    sql(`WITH moved AS (
           SELECT c.subject_id, sum(c.delta) AS delta, count(*) AS changes
             FROM score_changes c
             JOIN events e ON e.event_id = c.event_id AND e.subject_id = c.subject_id AND e.applied
            WHERE e.received_at >= TIMESTAMP '${cutoff}'
            GROUP BY c.subject_id)
         SELECT m.subject_id, m.delta, m.changes, s.score, s.tier
           FROM moved m LEFT JOIN snapshots s ON s.subject_id = m.subject_id
          ORDER BY abs(m.delta) DESC, m.subject_id LIMIT 10`)
      .then((res) => { renderMovers(records(res)); setOverviewError('movers', null); },
        (err) => setOverviewError('movers', err)),
  ];
  await Promise.all(jobs);
}

function renderHistogram(rows, lo, width, buckets) {
  const counts = new Array(buckets).fill(0);
  for (const r of rows) if (isNum(r.bucket) && r.bucket >= 0 && r.bucket < buckets) counts[r.bucket] += r.subjects;
  const items = counts.map((n, i) => {
    const from = lo + i * width;
    return { label: nf0.format(from), value: n, color: colorOfTier(tierOfScore(from)),
      title: `${fmtScore(from)} to ${fmtScore(from + width)}: ${fmtCount(n)} subjects` };
  });
  mount(byId('histogram'), barChart({ items, height: 200, labelEvery: Math.ceil(buckets / 10), label: 'Subjects per score bucket' }) || empty('no subjects yet'));
}

function renderRegions(rows, lo, hi) {
  if (rows.length === 0) { mount(byId('regions'), empty('no subjects yet')); return; }
  mount(byId('regions'),
    hbars(rows.map((r) => ({
      label: r.region, fraction: (r.avg_score - lo) / (hi - lo), value: r.avg_score, valueText: fmtScore(r.avg_score),
      color: colorOfTier(tierOfScore(r.avg_score)), testid: `region-row-${r.region}`, valueTestid: `region-avg-${r.region}`,
      title: `${r.region}: ${fmtCount(r.subjects)} subjects, average ${fmtScore(r.avg_score)} (${fmtScore(r.min_score)} to ${fmtScore(r.max_score)})`,
    }))),
    h('table', { class: 'small-table' },
      h('thead', null, h('tr', null, h('th', { text: 'region' }), h('th', { class: 'num', text: 'subjects' }),
        h('th', { class: 'num', text: 'avg' }), h('th', { class: 'num', text: 'min' }), h('th', { class: 'num', text: 'max' }))),
      h('tbody', null, rows.map((r) => h('tr', null,
        h('td', { text: r.region }),
        h('td', { class: 'num', testid: `region-count-${r.region}`, 'data-value': r.subjects, text: fmtCount(r.subjects) }),
        h('td', { class: 'num', text: fmtScore(r.avg_score) }),
        h('td', { class: 'num', text: fmtScore(r.min_score) }),
        h('td', { class: 'num', text: fmtScore(r.max_score) }))))));
}

function renderMovers(rows) {
  if (rows.length === 0) { mount(byId('movers'), empty('no score changes in the last 10 minutes')); return; }
  mount(byId('movers'), h('table', null,
    h('thead', null, h('tr', null, h('th', { text: 'subject' }), h('th', { class: 'num', text: 'Δ score' }),
      h('th', { class: 'num', text: 'changes' }), h('th', { class: 'num', text: 'now' }), h('th', { text: 'tier' }))),
    h('tbody', null, rows.map((r) => h('tr', { testid: 'mover-row', 'data-subject': r.subject_id },
      h('td', null, subjectLink(r.subject_id, 'mover-link')),
      h('td', { class: deltaClass(r.delta), text: fmtDelta(r.delta), 'data-value': r.delta }),
      h('td', { class: 'num', text: fmtCount(r.changes) }),
      h('td', { class: 'num', text: fmtScore(r.score) }),
      h('td', null, r.tier ? tierBadge(r.tier) : '–'))))));
}

// ---- alerts: one stream for the life of the page --------------------------------------------

const alerts = { list: [], fresh: new Set(), state: 'connecting', seq: 0 };

function setAlertsState(state, title) {
  alerts.state = state;
  const node = byId('alerts-state');
  node.textContent = state;
  node.className = `pill ${state === 'live' ? 'live' : state === 'connecting' ? '' : 'down'}`;
  node.title = title || '';
}

async function streamAlerts() {
  let backoff = 1000;
  for (;;) {
    try {
      const used = api.token;
      const headers = { accept: 'text/event-stream' };
      if (used) headers.authorization = `Bearer ${used}`;
      const res = await fetch(apiUrl('alerts'), { headers, cache: 'no-store' });
      if (res.status === 401) {
        const e = await readError(res);
        if (api.token === used) await askToken(used ? `The token was refused: ${e.message}` : '');
        continue;
      }
      if (!res.ok || !res.body) throw await readError(res);
      setAlertsState('live');
      backoff = 1000;
      let ended = 'the stream ended';
      await readEvents(res.body, (data, type) => {
        let msg;
        try { msg = JSON.parse(data); } catch { return; }
        if (type === 'error') ended = errorText(new ApiError(0, String(msg.code || ''), String(msg.message || data)));
        else if (msg && msg.alert) addAlert(msg.alert);
      });
      setAlertsState('reconnecting', ended);
    } catch (err) {
      setAlertsState('reconnecting', errorText(err));
    }
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 15000);
  }
}

/** Server-Sent Events framing: `data:` lines up to a blank line make one event, of the type
 * its `event:` line names ("message" when none). */
async function readEvents(body, onData) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let data = [];
  let type = 'message';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1));
      const field = (name) => line.slice(line[name.length + 1] === ' ' ? name.length + 2 : name.length + 1);
      if (line === '') {
        if (data.length) onData(data.join('\n'), type);
        data = [];
        type = 'message';
      } else if (line.startsWith('data:')) {
        data.push(field('data'));
      } else if (line.startsWith('event:')) {
        type = field('event');
      } // comments (": keep-alive") and the other fields are ignored
    }
  }
}

function addAlert(alert) {
  alert._seq = ++alerts.seq;
  alerts.list.unshift(alert);
  alerts.fresh.add(alert._seq);
  if (alerts.list.length > MAX_ALERTS) alerts.list.length = MAX_ALERTS;
  if (overview.visible) renderAlerts();
}

function renderAlerts() {
  const node = byId('alerts');
  if (alerts.list.length === 0) { mount(node, empty('no alerts since this page opened')); return; }
  mount(node, h('ul', { class: 'alert-list' }, alerts.list.map((a) => {
    const thresholds = (a.thresholds_crossed || []).map(fmtScore).join(', ');
    const li = h('li', { testid: 'alert-row', 'data-subject': a.subject_id, class: alerts.fresh.has(a._seq) ? 'fresh' : null },
      h('span', { class: 'muted small', text: fmtTime(a.at), title: `event ${a.event_id}` }),
      h('span', null, subjectLink(a.subject_id, 'alert-link'), ' ',
        h('span', { class: 'muted', text: `${fmtScore(a.old_score)} → ` }), h('b', { text: fmtScore(a.new_score) }),
        thresholds ? h('span', { class: 'muted small', text: `  crossed ${thresholds}` }) : null),
      h('span', null, tierBadge(a.old_tier), ' → ', tierBadge(a.new_tier, 'alert-new-tier')));
    return li;
  })));
  alerts.fresh.clear();
}

// ---- subject -------------------------------------------------------------------------------

const subject = { id: '', keys: new Map() };

function subjectSkeleton(id) {
  const card = (title, bodyId, cls) => h('section', { class: `card ${cls || ''}` }, h('h2', null, title), h('div', { id: bodyId }));
  return [
    h('div', { class: 'subject-head' },
      h('h1', { id: 'subject-name', testid: 'subject-name', text: id }),
      h('span', { class: 'sid', testid: 'subject-id', text: id })),
    h('section', { class: 'card', id: 'subject-missing', testid: 'subject-missing', hidden: true }),
    h('div', { class: 'grid', id: 'subject-grid' },
      card('Score', 'subject-score-card'),
      card(['Score history ', h('span', { class: 'muted small', id: 'subject-history-note' })], 'subject-history', 'wide'),
      card('Profile', 'subject-profile'),
      card(['Neighbours ', h('span', { class: 'muted small', text: 'within 2 hops' })], 'subject-neighbors', 'wide'),
      card(['Score changes ', h('span', { class: 'muted small', id: 'subject-changes-note' })], 'subject-changes', 'wide-full')),
    h('p', { class: 'error', id: 'subject-error', testid: 'subject-error', hidden: true }),
  ];
}

/** Renders a section only when its data changed, so the page does not flicker while polling. */
function changed(key, data) {
  const sig = JSON.stringify(data);
  if (subject.keys.get(key) === sig) return false;
  subject.keys.set(key, sig);
  return true;
}

async function subjectTick(isStale) {
  const id = subject.id;
  const soft = (p) => p.then((v) => ({ ok: v }), (err) => (isNotFound(err) ? { missing: err } : { err }));
  // A subject with neither profile nor score has nothing else either: ask no more (each
  // NOT_FOUND is an HTTP 404, which the browser logs).
  const profile = await soft(rpc('QueryService', 'GetProfile', { subject_id: id }));
  if (isStale() || subject.id !== id) return;
  if (profile.missing) {
    showError(byId('subject-error'), null);
    byId('subject-name').textContent = id;
    if (changed('unknown', true)) {
      byId('subject-grid').hidden = true;
      const box = byId('subject-missing');
      mount(box, h('p', { class: 'empty', text: `no subject "${id}": no profile and no score` }),
        h('p', { class: 'muted small', text: 'The page looks again every few seconds: events for this id will show up here.' }));
      box.hidden = false;
    }
    return;
  }
  if (subject.keys.has('unknown')) {
    subject.keys = new Map();
    byId('subject-missing').hidden = true;
    byId('subject-grid').hidden = false;
  }
  // Score, history and explanation exist once the subject has been scored.
  const scored = Boolean(profile.ok && profile.ok.snapshot);
  const ifScored = (call) => (scored ? soft(call()) : Promise.resolve({ missing: true }));
  const [score, history, explain, neighbors] = await Promise.all([
    ifScored(() => rpc('ScoringService', 'GetScore', { subject_id: id })),
    ifScored(() => allPages('QueryService', 'GetScoreHistory', { subject_id: id }, 'points')),
    ifScored(() => allPages('ScoringService', 'ExplainScore', { subject_id: id }, 'changes')),
    soft(rpc('GraphService', 'GetNeighbors', { subject_id: id, depth: 2, limit: 200 })),
  ]);
  let scores = { ok: { snapshots: [] } };
  const ids = neighbors.ok ? (neighbors.ok.neighbors || []).map((n) => n.subject_id) : [];
  if (ids.length) scores = await soft(rpc('ScoringService', 'BatchGetScores', { subject_ids: ids }));
  if (isStale() || subject.id !== id) return;

  const errors = [profile, score, history, explain, neighbors, scores].filter((r) => r.err).map((r) => errorText(r.err));
  const errNode = byId('subject-error');
  if (errors.length) { errNode.textContent = [...new Set(errors)].join('\n'); errNode.hidden = false; } else showError(errNode, null);

  if (changed('score', [score, profile.ok && profile.ok.snapshot])) renderSubjectScore(score, profile);
  if (changed('profile', profile)) renderProfile(profile, score);
  if (changed('history', history)) renderHistory(history);
  if (changed('changes', explain)) renderChanges(explain);
  if (changed('neighbors', [neighbors, scores])) renderNeighbors(neighbors, scores);
}

function renderSubjectScore(score, profile) {
  const node = byId('subject-score-card');
  if (score.missing) {
    mount(node, empty(profile.missing ? 'unknown subject' : 'not scored yet'));
    return;
  }
  if (!score.ok) return;
  const snap = score.ok.snapshot || {};
  mount(node,
    h('div', { class: 'big-score', testid: 'subject-score', 'data-value': snap.score, text: fmtScore(snap.score) }),
    h('div', null, tierBadge(snap.tier, 'subject-tier')),
    h('dl', { class: 'facts' },
      h('dt', { text: 'applied events' }), h('dd', { testid: 'subject-applied', text: fmtCount(snap.applied_events) }),
      h('dt', { text: 'last event' }), h('dd', null, h('span', { text: fmtTime(snap.last_event_time) }), ' ', h('code', { text: snap.last_event_id || '' })),
      h('dt', { text: 'config version' }), h('dd', { text: String(snap.config_version ?? '–') }),
      h('dt', { text: 'snapshot written' }), h('dd', { text: fmtTime(snap.updated_at) })));
}

function renderProfile(profile, score) {
  const node = byId('subject-profile');
  const name = byId('subject-name');
  if (profile.err) return;
  const p = profile.ok && profile.ok.profile;
  if (!p) {
    name.textContent = subject.id;
    mount(node, empty(profile.missing && score.missing ? `no subject "${subject.id}"` : 'no profile'));
    return;
  }
  name.textContent = p.display_name || p.subject_id;
  const chips = (list) => (list.length ? h('span', { class: 'chips' }, list.map((c) => h('span', { class: 'chip', text: c }))) : '–');
  const consent = Object.entries(p.consent || {}).map(([k, v]) => `${k}: ${v ? 'yes' : 'no'}`);
  const attrs = Object.entries(p.attributes || {}).map(([k, v]) => `${k}: ${v}`);
  mount(node, h('dl', { class: 'facts' },
    h('dt', { text: 'name' }), h('dd', { testid: 'profile-name', text: p.display_name || '–' }),
    h('dt', { text: 'region' }), h('dd', { testid: 'profile-region', text: [p.region, p.district].filter(Boolean).join(' / ') || '–' }),
    h('dt', { text: 'occupation' }), h('dd', { text: p.occupation || '–' }),
    h('dt', { text: 'born' }), h('dd', { text: p.birth_year ? String(p.birth_year) : '–' }),
    h('dt', { text: 'flags' }), h('dd', null, chips(p.flags || [])),
    h('dt', { text: 'consent' }), h('dd', null, chips(consent)),
    h('dt', { text: 'attributes' }), h('dd', null, chips(attrs)),
    h('dt', { text: 'updated' }), h('dd', { text: fmtTime(p.updated_at) })));
}

function renderHistory(history) {
  const node = byId('subject-history');
  if (!history.ok) { if (history.missing) mount(node, empty('no history')); return; }
  const points = history.ok.items;
  byId('subject-history-note').textContent = `${fmtCount(points.length)} points${history.ok.complete ? '' : ' (first pages only)'}`;
  const chart = lineChart({
    series: [{ name: 'score', color: '#2f5d9e', dotTestid: 'history-point', points: points.map((p) => ({
      x: Date.parse(p.at), y: p.score, color: colorOfTier(p.tier),
      title: `${fmtTime(p.at)}  ${p.event_id}\nscore ${fmtScore(p.score)} (${fmtDelta(p.delta)}), tier ${p.tier}`,
    })) }],
    refs: tiers.order.map((n) => ({ y: tiers.mins.get(n), label: n })),
    dots: points.length <= 400, step: true, height: 240, yFmt: fmtScore, label: 'Score over event time', testid: 'history-chart',
  });
  mount(node, chart || empty('no scored events yet'));
}

function renderChanges(explain) {
  const node = byId('subject-changes');
  if (!explain.ok) { if (explain.missing) mount(node, empty('no changes')); return; }
  const changes = explain.ok.items.slice().reverse();
  byId('subject-changes-note').textContent = `${fmtCount(changes.length)}, newest first${explain.ok.complete ? '' : ' (first pages only)'}`;
  if (changes.length === 0) { mount(node, empty('no rule has changed this score')); return; }
  mount(node, h('div', { class: 'table-wrap scroll' }, h('table', { testid: 'changes-table' },
    h('thead', null, h('tr', null, ['event time', 'event', 'rule', 'version', 'Δ', 'factor', 'old → new', 'config', 'reason', 'inputs']
      .map((t) => h('th', { text: t, class: ['Δ', 'factor'].includes(t) ? 'num' : null })))),
    h('tbody', null, changes.map((c) => h('tr', { testid: 'change-row', 'data-rule-id': c.rule_id, 'data-rule-version': c.rule_version, 'data-event-id': c.event_id },
      h('td', { text: fmtTime(c.at) }),
      h('td', null, h('code', { text: c.event_id })),
      h('td', null, h('a', { href: '#/rules', testid: 'change-rule', text: c.rule_id, class: 'mono' })),
      h('td', { testid: 'change-rule-version', text: String(c.rule_version) }),
      h('td', { class: deltaClass(c.delta), testid: 'change-delta', 'data-value': c.delta, text: fmtDelta(c.delta) }),
      h('td', { class: 'num', testid: 'change-factor', text: fmtFactor(c.factor) }),
      h('td', { class: 'num', text: `${fmtScore(c.old_score)} → ${fmtScore(c.new_score)}` }),
      h('td', { text: String(c.config_version) }),
      h('td', { testid: 'change-reason', text: c.reason }),
      h('td', { testid: 'change-inputs' }, inputsText(c.inputs))))))));
}

function inputsText(inputs) {
  const entries = Object.entries(inputs || {});
  if (entries.length === 0) return h('span', { class: 'muted', text: '–' });
  return h('code', { text: entries.map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n') });
}

function renderNeighbors(neighbors, scores) {
  const node = byId('subject-neighbors');
  if (!neighbors.ok) { if (neighbors.missing) mount(node, empty('no neighbours')); return; }
  const list = neighbors.ok.neighbors || [];
  if (list.length === 0) { mount(node, empty('no relations')); return; }
  const snaps = new Map(((scores.ok && scores.ok.snapshots) || []).map((sn) => [sn.subject_id, sn]));
  mount(node, h('div', { class: 'table-wrap scroll' }, h('table', { testid: 'neighbors-table' },
    h('thead', null, h('tr', null, ['subject', 'hops', 'relation', 'path weight', 'score', 'tier', 'via']
      .map((t) => h('th', { text: t, class: ['path weight', 'score'].includes(t) ? 'num' : null })))),
    h('tbody', null, list.map((n) => {
      const sn = snaps.get(n.subject_id);
      return h('tr', { testid: 'neighbor-row', 'data-subject': n.subject_id },
        h('td', null, subjectLink(n.subject_id, 'neighbor-link')),
        h('td', { text: String(n.depth) }),
        h('td', { text: enumLabel(n.kind, 'RELATION_KIND_') }),
        h('td', { class: 'num', text: fmtFactor(n.path_weight) }),
        h('td', { class: 'num', testid: 'neighbor-score', 'data-value': sn ? sn.score : null, text: sn ? fmtScore(sn.score) : 'not scored' }),
        h('td', null, sn ? tierBadge(sn.tier) : '–'),
        h('td', { class: 'muted small', text: (n.path || []).slice(0, -1).join(' → ') || 'direct' }));
    })),
  ), neighbors.ok.truncated ? h('p', { class: 'muted small', text: 'more neighbours than shown' }) : null));
}

async function subjectListTick(isStale) {
  const res = await rpc('QueryService', 'ListSubjects', { page_size: 100 }).then((v) => ({ ok: v }), (err) => ({ err }));
  if (isStale()) return;
  const body = byId('subject-body');
  if (!changed('list', res)) return;
  if (res.err) { mount(body, h('p', { class: 'error', text: errorText(res.err) })); return; }
  const list = res.ok.subjects || [];
  mount(body, h('section', { class: 'card wide-full' },
    h('h2', null, 'Subjects ', h('span', { class: 'muted small', text: 'type an id in the search box, or pick one (first 100 by id)' })),
    list.length === 0 ? empty('no scored subjects yet') : h('div', { class: 'table-wrap' }, h('table', { testid: 'subject-list' },
      h('thead', null, h('tr', null, ['subject', 'name', 'region', 'score', 'tier', 'last event'].map((t) => h('th', { text: t, class: t === 'score' ? 'num' : null })))),
      h('tbody', null, list.map((sm) => h('tr', null,
        h('td', null, subjectLink(sm.subject_id, 'subject-list-link')),
        h('td', { text: sm.display_name || '–' }),
        h('td', { text: sm.region || '–' }),
        h('td', { class: 'num', text: fmtScore(sm.score) }),
        h('td', null, tierBadge(sm.tier)),
        h('td', { text: fmtTime(sm.last_event_time) }))))))));
}

// ---- rules ---------------------------------------------------------------------------------

const rules = { rows: [], sig: '', configSig: '', open: new Set() };

const RULES_SQL = `WITH made AS (
    SELECT rule_id, rule_version, count(*) AS changes, sum(delta) AS delta_sum
      FROM score_changes GROUP BY ALL)
  SELECT r.rule_id, r.version, r.name, r.status, r.event_type, r.points, r.body::VARCHAR AS body,
         r.stored_at, coalesce(m.changes, 0) AS changes, coalesce(m.delta_sum, 0) AS delta_sum
    FROM rules r LEFT JOIN made m ON m.rule_id = r.rule_id AND m.rule_version = r.version
   ORDER BY r.rule_id, r.version DESC`;

async function rulesTick(isStale) {
  const [res, cfg] = await Promise.all([
    sql(RULES_SQL, 100000).then((v) => ({ ok: v }), (err) => ({ err })),
    loadConfig().then((v) => ({ ok: v }), (err) => ({ err })),
  ]);
  if (isStale()) return;
  const errs = [res.err, cfg.err].filter(Boolean);
  showError(byId('rules-error'), errs.length ? errs.map(errorText).join('\n') : null);
  if (cfg.ok) {
    const sig = JSON.stringify(cfg.ok);
    if (sig !== rules.configSig) { rules.configSig = sig; renderConfig(cfg.ok); }
  }
  if (res.ok) {
    const sig = JSON.stringify(res.ok.rows);
    if (sig !== rules.sig) { rules.sig = sig; rules.rows = records(res.ok); renderRules(); }
  }
}

function parseBody(text) {
  if (!text) return {};
  try { return JSON.parse(text) || {}; } catch { return {}; }
}

function renderRules() {
  const node = byId('rules');
  const filter = byId('rules-filter').value.trim().toLowerCase();
  const latestOnly = byId('rules-latest').checked;
  const groups = new Map();
  for (const r of rules.rows) {
    if (!groups.has(r.rule_id)) groups.set(r.rule_id, []);
    groups.get(r.rule_id).push(r);
  }
  const versions = rules.rows.length;
  byId('rules-summary').textContent = `${fmtCount(groups.size)} rules, ${fmtCount(versions)} versions`;
  const body = [];
  for (const [id, list] of groups) {
    const latest = list[0];
    const body0 = parseBody(latest.body);
    const hay = [id, latest.name, latest.event_type, body0.event_subtype, latest.status].join(' ').toLowerCase();
    if (filter && !hay.includes(filter)) continue;
    (latestOnly ? list.slice(0, 1) : list).forEach((r, i) => {
      const b = parseBody(r.body);
      const key = `${r.rule_id}@${r.version}`;
      const details = h('details', { open: rules.open.has(key) ? true : null, ontoggle: (ev) => {
        if (ev.target.open) rules.open.add(key); else rules.open.delete(key);
      } }, h('summary', { text: 'definition' }), h('pre', { class: 'mono', text: fmtJson(b) }));
      body.push(h('tr', { testid: `rule-version-${r.rule_id}-${r.version}`, 'data-rule-id': r.rule_id, 'data-version': r.version,
        class: [i === 0 ? 'rule-first' : '', i === 0 ? 'latest' : ''].join(' ').trim() || null },
      h('td', null, i === 0 ? h('code', { text: r.rule_id }) : null),
      h('td', { class: 'version', testid: 'rule-version', text: String(r.version) }),
      h('td', { class: 'wrap', text: r.name }),
      h('td', null, h('span', { class: `status status-${r.status}`, testid: 'rule-status', text: r.status })),
      h('td', null, h('code', { text: [r.event_type, b.event_subtype].filter(Boolean).join(' / ') })),
      h('td', { class: deltaClass(r.points), text: fmtDelta(r.points) }),
      h('td', { class: 'num', testid: `rule-changes-${r.rule_id}-${r.version}`, 'data-value': r.changes, text: fmtCount(r.changes) }),
      h('td', { class: deltaClass(r.delta_sum), text: r.changes ? fmtDelta(r.delta_sum) : '–' }),
      h('td', { class: 'muted small', text: fmtSqlTime(r.stored_at) }),
      h('td', null, details)));
    });
  }
  if (rules.rows.length === 0) { mount(node, empty('no rules')); return; }
  mount(node, h('div', { class: 'table-wrap' }, h('table', { class: 'rules-table', testid: 'rules-table' },
    h('thead', null, h('tr', null, ['rule', 'version', 'name', 'status', 'event type', 'points', 'changes made', 'Δ sum', 'stored (UTC)', '']
      .map((t) => h('th', { text: t, class: ['points', 'changes made', 'Δ sum'].includes(t) ? 'num' : null })))),
    h('tbody', null, body.length ? body : h('tr', null, h('td', { colspan: 10, class: 'empty', text: 'no rule matches the filter' }))))));
}

function renderConfig(cfg) {
  const list = cfg.tiers || [];
  const lo = cfg.min_score;
  const hi = cfg.max_score;
  const band = h('div', { class: 'tier-band', testid: 'config-tier-band' }, list.map((t, i) => {
    const next = i + 1 < list.length ? list[i + 1].min_score : hi;
    const share = hi > lo ? Math.max(0, (Math.min(next, hi) - Math.max(t.min_score, lo)) / (hi - lo)) : 1 / list.length;
    return h('span', { text: t.name, title: `${t.name}: ${fmtScore(t.min_score)} to ${fmtScore(next)}`,
      style: { 'flex-grow': String(share), 'flex-basis': '0', background: colorOfTier(t.name) } });
  }));
  const fact = (label, value, testid) => [h('dt', { text: label }), h('dd', { testid, text: value })];
  mount(byId('config'), h('div', { class: 'config-grid' },
    h('dl', { class: 'facts' },
      fact('version', String(cfg.version ?? '–'), 'config-version'),
      fact('written', fmtTime(cfg.updated_at)),
      fact('baseline', fmtScore(cfg.baseline), 'config-baseline'),
      fact('bounds', `${fmtScore(lo)} to ${fmtScore(hi)}`, 'config-bounds'),
      fact('decay half-life', cfg.decay && cfg.decay.half_life ? fmtDuration(cfg.decay.half_life) : 'no decay', 'config-decay'),
      fact('alert thresholds', (cfg.alert_thresholds || []).map(fmtScore).join(', ') || 'none', 'config-thresholds'),
      fact('auto-create subjects', cfg.auto_create_subjects ? 'yes' : 'no'),
      fact('dedup horizon', fmtDuration(cfg.dedup_horizon)),
      fact('dedup window', `${fmtCount(cfg.dedup_window_events)} events`),
      fact('max rule window', fmtDuration(cfg.max_rule_window))),
    h('div', null, band, h('table', { testid: 'config-tiers' },
      h('thead', null, h('tr', null, h('th', { text: 'tier' }), h('th', { class: 'num', text: 'from score' }))),
      h('tbody', null, list.map((t) => h('tr', { testid: `config-tier-${t.name}` },
        h('td', null, tierBadge(t.name)), h('td', { class: 'num', text: fmtScore(t.min_score) }))))))));
}

// ---- analytics -----------------------------------------------------------------------------

const EXAMPLES = [
  ['Events by type', `SELECT event_type, event_subtype, count(*) AS events,
       count(*) FILTER (WHERE applied) AS applied
  FROM events GROUP BY ALL ORDER BY events DESC`],
  ['Subjects per tier', `SELECT tier, count(*) AS subjects, round(avg(score), 2) AS avg_score
  FROM snapshots GROUP BY tier ORDER BY min(score)`],
  ['Rules by changes', `SELECT rule_id, rule_version, count(*) AS changes, round(sum(delta), 2) AS total_delta
  FROM score_changes GROUP BY ALL ORDER BY changes DESC LIMIT 20`],
  ['Lowest scores', `SELECT s.subject_id, p.display_name, s.region, s.score, s.tier
  FROM snapshots s LEFT JOIN profiles p USING (subject_id)
 ORDER BY s.score LIMIT 20`],
  ['Events per minute', `SELECT date_trunc('minute', received_at) AS minute, count(*) AS events
  FROM events GROUP BY ALL ORDER BY minute DESC LIMIT 60`],
  ['Dead letters', 'SELECT * FROM dead_letters ORDER BY parked_at DESC LIMIT 50'],
];

const VIEWS = [
  ['profiles', 'subject_id, display_name, birth_year, region, district, occupation, flags, consent, attributes, updated_at'],
  ['snapshots', 'subject_id, region, bus_partition, score, tier, last_time, last_event_id, applied_events, config_version, updated_at'],
  ['events', 'event_id, subject_id, event_type, event_subtype, source_system, occurred_at, region, district, lat, lon, payload, evidence_uri, received_at, bus_partition, bus_offset, applied'],
  ['score_points', 'subject_id, event_id, event_type, region, occurred_at, score, tier, delta, changes, bus_partition, bus_offset'],
  ['score_changes', 'change_index, event_id, subject_id, rule_id, rule_version, config_version, old_score, new_score, delta, factor, occurred_at, reason, inputs, bus_partition, bus_offset'],
  ['rules', 'rule_id, version, name, status, event_type, points, body, stored_at'],
  ['configs', 'version, body, stored_at'],
  ['relations', 'subject_id, other_subject_id, kind, weight, since'],
  ['list_entries', 'subject_id, kind, reason, expires_at, created_at'],
  ['audit', 'seq, recorded_at, actor, action, target, detail'],
  ['dead_letters', 'bus_partition, bus_offset, reason, payload_bytes, payload_base64, parked_at'],
  ['committed_offsets', 'bus_partition, next_offset, epoch'],
];

function setupAnalytics() {
  const area = byId('sql');
  area.value = localStorage.getItem(SQL_KEY) || EXAMPLES[0][1];
  mount(byId('sql-examples'), EXAMPLES.map(([name, text]) => h('button', {
    type: 'button', class: 'ghost', text: name, onclick: () => { area.value = text; area.focus(); },
  })));
  mount(byId('views-help'), VIEWS.map(([name, cols]) => [h('dt', { text: name }), h('dd', { text: cols })]));
  byId('sql-form').addEventListener('submit', (ev) => { ev.preventDefault(); runSql(); });
  area.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); runSql(); }
  });
}

let sqlRun = 0;

async function runSql() {
  const text = byId('sql').value.trim();
  if (!text) return;
  localStorage.setItem(SQL_KEY, text);
  const max = Math.max(1, Math.min(100000, Number(byId('sql-max').value) || 1000));
  const run = ++sqlRun;
  const button = byId('sql-run');
  const status = byId('sql-status');
  button.disabled = true;
  status.textContent = 'running…';
  const started = performance.now();
  try {
    const res = await sql(text, max);
    if (run !== sqlRun) return;
    showError(byId('sql-error'), null);
    const ms = performance.now() - started;
    const count = res.row_count ?? (res.rows || []).length;
    status.textContent = `${fmtCount(count)} rows in ${fmtSeconds(ms / 1000)}${count >= max ? ' (row limit reached)' : ''}`;
    mount(byId('sql-result-wrap'), resultTable(res));
  } catch (err) {
    if (run !== sqlRun) return;
    status.textContent = 'failed';
    showError(byId('sql-error'), err);
    mount(byId('sql-result-wrap'));
  } finally {
    if (run === sqlRun) button.disabled = false;
  }
}

const NUMERIC_TYPE = /^(U?Int|Float|Decimal)/;

function resultTable(res) {
  const cols = res.columns || [];
  const rows = res.rows || [];
  return h('table', { class: 'analytics-table', testid: 'analytics-result', 'data-rows': rows.length },
    h('thead', null, h('tr', null, cols.map((c) => h('th', { class: NUMERIC_TYPE.test(c.type) ? 'num' : null },
      c.name, h('span', { class: 'type', text: c.type }))))),
    h('tbody', null, rows.length === 0
      ? h('tr', null, h('td', { colspan: Math.max(1, cols.length), class: 'empty', text: 'no rows' }))
      : rows.map((row) => h('tr', null, row.map((v) => {
        if (v === null || v === undefined) return h('td', { class: 'null', text: 'NULL' });
        if (typeof v === 'number') return h('td', { class: 'num', text: String(v) });
        if (typeof v === 'object') return h('td', { text: JSON.stringify(v) });
        return h('td', { text: String(v) });
      })))));
}

// ---- routing -------------------------------------------------------------------------------

/** Runs `tick` now and every `ms` after it finishes, until the returned stop is called. */
function every(ms, tick) {
  let stopped = false;
  let timer = null;
  const isStale = () => stopped;
  const run = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try { await tick(isStale); } catch (err) { if (!stopped) byId('foot-status').textContent = errorText(err); }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}

let current = { key: '', stop: () => {} };

function parseRoute() {
  const path = location.hash.replace(/^#/, '');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'subject') {
    let id = parts.slice(1).join('/');
    try { id = decodeURIComponent(id); } catch { /* keep it as typed */ }
    return { view: 'subject', id };
  }
  if (parts[0] === 'rules') return { view: 'rules' };
  if (parts[0] === 'analytics') return { view: 'analytics' };
  return { view: 'overview' };
}

function route() {
  const r = parseRoute();
  const key = `${r.view}:${r.id || ''}`;
  if (key === current.key) return;
  current.stop();
  for (const v of ['overview', 'subject', 'rules', 'analytics']) byId(`view-${v}`).hidden = v !== r.view;
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.view === r.view);
  overview.visible = r.view === 'overview';
  byId('search-input').value = r.id || '';
  let stop = () => {};
  if (r.view === 'overview') {
    document.title = 'Credence · overview';
    renderStats(); renderTiers(); renderAlerts();
    stop = every(POLL_MS, async (isStale) => {
      if (!live.config || overview.sqlTick % 15 === 0) await loadConfig().catch((err) => setOverviewError('config', err));
      overview.sqlTick++;
      if (!isStale()) await overviewSql();
    });
  } else if (r.view === 'subject') {
    subject.id = r.id;
    subject.keys = new Map();
    document.title = r.id ? `Credence · ${r.id}` : 'Credence · subjects';
    if (r.id) {
      mount(byId('subject-body'), subjectSkeleton(r.id));
      stop = every(SUBJECT_POLL_MS, subjectTick);
    } else {
      mount(byId('subject-body'), empty('loading…'));
      stop = every(SUBJECT_POLL_MS, subjectListTick);
    }
  } else if (r.view === 'rules') {
    document.title = 'Credence · rules';
    rules.sig = '';
    rules.configSig = '';
    stop = every(POLL_MS, rulesTick);
  } else {
    document.title = 'Credence · analytics';
  }
  current = { key, stop };
  window.scrollTo(0, 0);
}

function start() {
  byId('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = byId('search-input').value.trim();
    if (id) location.hash = `#/subject/${encodeURIComponent(id)}`;
  });
  byId('rules-filter').addEventListener('input', renderRules);
  byId('rules-latest').addEventListener('change', renderRules);
  setupAnalytics();
  window.addEventListener('hashchange', route);
  route();
  // Counters and the tier distribution are sampled whatever the view, so rates and the tier
  // series have no holes when the overview is shown again.
  every(POLL_MS, async () => {
    await Promise.all([sampleStats(), sampleTiers()]);
    if (overview.visible) { renderStats(); renderTiers(); }
  });
  streamAlerts();
}

start();
