// NextVision console: a single page over the daemon's documented HTTP API.
//
// No framework, no build step. Server text is only ever set as textContent (never as
// HTML). The bearer token lives in sessionStorage and travels only in the
// Authorization header of fetch() calls: never in a URL, so images are fetched as blobs
// and the live view reads the MJPEG stream through fetch() instead of <img src>.
'use strict';

const TOKEN_KEY = 'nextvision.token';
const POLL_MS = 2000;
const TILE_FRAME_MS = 500;
const STAGE_KINDS = ['motion-detector', 'tracker', 'blob-detector', 'brightness', 'counter'];
const EVENT_KINDS = ['zone_enter', 'zone_exit', 'zone_dwell', 'line_crossed', 'object_appeared', 'object_lost', 'camera_motion'];
// Rows the event list shows (the newest; older ones leave as new ones come).
const EVENT_ROWS = 100;

// Everything a view started (timers, fetches, object URLs), undone when it is left.
let scope = newScope();

function newScope() {
  return { alive: true, controllers: new Set(), urls: new Set(), timers: new Set() };
}

function endScope() {
  scope.alive = false;
  scope.controllers.forEach((c) => c.abort());
  scope.timers.forEach((t) => clearTimeout(t));
  scope.urls.forEach((u) => URL.revokeObjectURL(u));
  scope = newScope();
}

function later(fn, ms) {
  const s = scope;
  const t = setTimeout(() => { s.timers.delete(t); if (s.alive) fn(); }, ms);
  s.timers.add(t);
  return t;
}

// An object URL for `blob` that lives until `revoke` or the end of the view.
function blobUrl(s, blob) {
  const u = URL.createObjectURL(blob);
  s.urls.add(u);
  return u;
}

function revoke(s, u) {
  if (!u) return;
  URL.revokeObjectURL(u);
  s.urls.delete(u);
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  const t = token();
  if (t) headers.set('Authorization', 'Bearer ' + t);
  let body;
  if (opts.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(opts.json);
  }
  // Leaving the view aborts its requests; a stream's stays registered while it is read.
  const s = scope;
  const controller = new AbortController();
  s.controllers.add(controller);
  let resp;
  try {
    resp = await fetch(path, {
      method: opts.method || 'GET', headers, body, cache: 'no-store', signal: controller.signal,
    });
  } finally {
    if (!opts.stream) s.controllers.delete(controller);
  }
  if (resp.status === 401) {
    showLogin('The daemon wants its API token.');
    throw new ApiError(401, 'unauthorized', 'missing or wrong token');
  }
  if (!resp.ok && resp.status !== 304) {
    let e = {};
    try { e = await resp.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, e.code || 'error', e.message || resp.statusText, e.details);
  }
  return resp;
}

async function apiJson(path, opts) { return (await api(path, opts)).json(); }

// h('div', {class: 'x', onclick: f}, child, 'text', ...)
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.textContent = ''; }, 5000);
}

function main() { return document.getElementById('main'); }

function setMain(...nodes) {
  main().replaceChildren(...nodes);
}

// ---- numbers from the feed JSON ----

function sum(v) {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object') return Object.values(v).reduce((a, x) => a + sum(x), 0);
  return 0;
}

function metric(m, key) { return m ? m[key] : undefined; }

function fmtMicros(us) {
  if (us === undefined || us === null) return '–';
  if (us < 1000) return us + ' µs';
  if (us < 1e6) return (us / 1000).toFixed(1) + ' ms';
  return (us / 1e6).toFixed(2) + ' s';
}

function fmtSecs(s) {
  if (s === undefined || s === null) return '–';
  s = Math.floor(s);
  const d = Math.floor(s / 86400), hh = Math.floor(s / 3600) % 24, mm = Math.floor(s / 60) % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s % 60}s`;
  return `${s}s`;
}

// Frames per second from the processed counter between two polls.
const rates = new Map();
function fps(feed) {
  const n = sum(metric(feed.metrics, 'frames_processed'));
  const now = performance.now();
  const prev = rates.get(feed.id);
  rates.set(feed.id, { n, now, fps: prev ? prev.fps : null });
  if (prev && now > prev.now && n >= prev.n) {
    const r = ((n - prev.n) * 1000) / (now - prev.now);
    rates.get(feed.id).fps = r;
  }
  const r = rates.get(feed.id).fps;
  return r === null ? '–' : r.toFixed(1);
}

function latencyMicros(feed) {
  const hist = metric(feed.metrics, 'receive_to_output_seconds');
  return hist && hist.count ? hist.p50_micros : null;
}

function drops(feed) { return sum(metric(feed.metrics, 'frames_dropped')); }

function lastError(feed) {
  if (feed.state && feed.state.name === 'failed') return `${feed.state.kind}: ${feed.state.cause}`;
  const e = feed.last_error;
  return e ? `${e.kind}: ${e.message}${e.count > 1 ? ` (×${e.count})` : ''}` : '';
}

// ---- images without tokens in URLs ----

// The width to ask for: what `img` shows in device pixels, rounded up to 160 so tiles of
// slightly different sizes share the daemon's encoded image.
function shownWidth(img) {
  const px = Math.ceil((img.clientWidth || 320) * (window.devicePixelRatio || 1) / 160) * 160;
  return Math.min(px, 3840);
}

// Shows the feed's newest snapshot in `img`, again every `ms` while the view lives; only
// as wide as it is shown (the daemon draws and encodes a smaller image: less work).
function refreshSnapshots(feedName, img, none, ms) {
  const s = scope;
  let url = null;
  let etag = null;
  const step = async () => {
    if (!s.alive) return;
    if (document.hidden) { later(step, ms); return; }
    let wait = ms;
    try {
      // The daemon answers 304 while the newest frame is the one shown.
      const resp = await api(`/api/v1/feeds/${encodeURIComponent(feedName)}/snapshot.jpg?width=${shownWidth(img)}`,
        { headers: etag ? { 'If-None-Match': etag } : {} });
      if (resp.status === 304) { later(step, ms); return; }
      etag = resp.headers.get('etag');
      const blob = await resp.blob();
      if (!s.alive) return;
      const next = blobUrl(s, blob);
      img.src = next;
      img.dataset.frameSeq = resp.headers.get('x-frame-seq') || '';
      revoke(s, url);
      url = next;
      none.hidden = true;
    } catch (e) {
      if (e.name === 'AbortError') return;
      none.hidden = false;
      none.textContent = e.code === 'no_snapshot' ? 'No frame yet (the feed needs snapshot_fps)' : e.message;
      // A feed without frames is asked again less often.
      wait = Math.max(ms, 2000);
    }
    later(step, wait);
  };
  step();
}

// Reads the MJPEG stream with fetch() (so the token stays in a header) and shows each
// part as it arrives.
async function playStream(feedName, img, none, info) {
  const s = scope;
  let resp;
  try {
    resp = await api(`/api/v1/feeds/${encodeURIComponent(feedName)}/stream.mjpeg?width=${shownWidth(img)}`, { stream: true });
  } catch (e) {
    if (e.name === 'AbortError' || e.status === 401) return;
    none.hidden = false;
    if (e.code === 'no_snapshot') {
      // No frame yet (a feed just added, or one without snapshot_fps): ask again.
      none.textContent = 'No frame yet (the feed needs snapshot_fps)';
      later(() => playStream(feedName, img, none, info), 2000);
    } else {
      // Streams are capped (503): show refreshed snapshots instead.
      none.textContent = `Live stream unavailable (${e.message}); showing snapshots`;
      refreshSnapshots(feedName, img, none, 1000);
    }
    return;
  }
  const reader = resp.body.getReader();
  let buf = new Uint8Array(0);
  let url = null;
  const find = (hay, needle, from) => {
    outer: for (let i = from; i + needle.length <= hay.length; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  };
  const crlf2 = new TextEncoder().encode('\r\n\r\n');
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !s.alive) break;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      for (;;) {
        const end = find(buf, crlf2, 0);
        if (end < 0) break;
        const head = new TextDecoder().decode(buf.subarray(0, end));
        const m = /content-length:\s*(\d+)/i.exec(head);
        if (!m) { buf = buf.subarray(end + 4); continue; }
        const len = Number(m[1]);
        if (buf.length < end + 4 + len) break;
        const seq = /x-frame-seq:\s*(\d+)/i.exec(head);
        const jpeg = buf.slice(end + 4, end + 4 + len);
        buf = buf.subarray(end + 4 + len);
        const next = blobUrl(s, new Blob([jpeg], { type: 'image/jpeg' }));
        img.src = next;
        revoke(s, url);
        url = next;
        none.hidden = true;
        info.textContent = `live · frame ${seq ? seq[1] : '?'}`;
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') info.textContent = `stream ended: ${e.message}`;
  } finally {
    revoke(s, url);
    // Closes the connection (and frees the daemon's stream slot) when the view is left.
    reader.cancel().catch(() => {});
  }
}

// ---- actions ----

async function act(feed, what) {
  try {
    if (what === 'remove') {
      if (!confirm(`Remove feed ${feed.name}?`)) return;
      await api(`/api/v1/feeds/${encodeURIComponent(feed.name)}`, { method: 'DELETE' });
      toast(`Removed ${feed.name}`);
      if (location.hash.startsWith('#/feed/')) { location.hash = '#/'; return; }
    } else {
      await api(`/api/v1/feeds/${encodeURIComponent(feed.name)}/${what}`, { method: 'POST' });
      toast(`${what === 'pause' ? 'Paused' : 'Resumed'} ${feed.name}`);
    }
  } catch (e) {
    if (e.status !== 401) toast(`${what} ${feed.name}: ${e.message}`);
  }
  if (scope.refresh) scope.refresh();
}

function controls(feed) {
  const paused = feed.paused;
  return h('div', { class: 'actions' },
    feed.alive ? h('button', {
      type: 'button', 'data-action': paused ? 'resume' : 'pause',
      'aria-label': `${paused ? 'Resume' : 'Pause'} ${feed.name}`,
      onclick: () => act(feed, paused ? 'resume' : 'pause'),
    }, paused ? 'Resume' : 'Pause') : null,
    h('button', {
      type: 'button', class: 'danger', 'data-action': 'remove',
      'aria-label': `Remove ${feed.name}`, onclick: () => act(feed, 'remove'),
    }, 'Remove'));
}

function stateName(feed) { return feed.paused ? 'paused' : (feed.state ? feed.state.name : 'unknown'); }

function stats(feed) {
  const item = (label, value, key) => h('div', {}, h('dt', {}, label), h('dd', { 'data-stat': key }, value));
  return h('dl', { class: 'stats' },
    item('fps', fps(feed), 'fps'),
    item('dropped', drops(feed), 'drops'),
    item('latency p50', fmtMicros(latencyMicros(feed)), 'latency'));
}

// ---- views ----

function tile(feed) {
  const img = h('img', { alt: `Live view of ${feed.name}` });
  const none = h('div', { class: 'none' }, 'Waiting for a frame…');
  const el = h('li', { class: 'tile', 'data-feed': feed.name },
    h('a', { class: 'view', href: `#/feed/${encodeURIComponent(feed.name)}`, 'aria-label': `Open ${feed.name}` }, img, none),
    h('div', { class: 'head' }, h('h2', {}, feed.name), h('span', { class: 'badge', 'data-state': '' })),
    h('div', { 'data-slot': 'stats' }),
    h('div', { class: 'error', 'data-slot': 'error' }),
    h('div', { 'data-slot': 'controls' }));
  refreshSnapshots(feed.name, img, none, TILE_FRAME_MS);
  return el;
}

function updateTile(el, feed) {
  const badge = el.querySelector('[data-state]');
  const st = stateName(feed);
  badge.textContent = st;
  badge.className = `badge ${st}`;
  badge.dataset.state = st;
  el.querySelector('[data-slot=stats]').replaceChildren(stats(feed));
  el.querySelector('[data-slot=error]').textContent = lastError(feed);
  const key = `${feed.alive}/${feed.paused}`;
  const slot = el.querySelector('[data-slot=controls]');
  if (slot.dataset.key !== key) {
    slot.dataset.key = key;
    slot.replaceChildren(controls(feed));
  }
}

function addForm(onDone) {
  const problems = h('ul', { class: 'problems', role: 'alert' });
  const kinds = STAGE_KINDS.map((k) => h('label', {}, h('input', { type: 'checkbox', name: 'stage', value: k }), k));
  const form = h('form', { class: 'add panel', 'aria-label': 'Add a feed' },
    h('label', {}, 'Name', h('input', { name: 'name', required: true, autocomplete: 'off', placeholder: 'lobby' })),
    h('label', {}, 'Source', h('input', { name: 'source', required: true, autocomplete: 'off', placeholder: 'rtsp://… or /path/clip.mp4 or synthetic:320x240@15' })),
    h('label', {}, 'Sinks (comma separated)', h('input', { name: 'sinks', autocomplete: 'off' })),
    h('label', {}, 'Snapshots per second', h('input', { name: 'snapshot_fps', type: 'number', step: 'any', min: '0', value: '2' })),
    h('fieldset', {}, h('legend', {}, 'Stages, in order'), kinds),
    problems,
    h('div', { class: 'buttons' },
      h('button', { type: 'submit' }, 'Add feed'),
      h('button', { type: 'button', onclick: onDone }, 'Cancel')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get('name').trim(), source: f.get('source').trim() };
    body.stages = f.getAll('stage').map((kind) => ({ kind }));
    const sinks = f.get('sinks').split(',').map((s) => s.trim()).filter(Boolean);
    if (sinks.length) body.sinks = sinks;
    const fpsText = f.get('snapshot_fps');
    if (fpsText !== '') body.snapshot_fps = Number(fpsText);
    problems.replaceChildren();
    try {
      await api('/api/v1/feeds', { method: 'POST', json: body });
      toast(`Added ${body.name}`);
      onDone();
    } catch (e) {
      const list = Array.isArray(e.details) && e.details.length ? e.details : [e.message];
      problems.replaceChildren(...list.map((p) => h('li', {}, String(p))));
    }
  });
  return form;
}

async function gridView() {
  const list = h('ul', { class: 'grid', 'aria-label': 'Feeds' });
  const formSlot = h('div');
  const addButton = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Add feed');
  addButton.addEventListener('click', () => {
    if (formSlot.firstChild) {
      formSlot.replaceChildren();
      addButton.setAttribute('aria-expanded', 'false');
      return;
    }
    const form = addForm(() => {
      formSlot.replaceChildren();
      addButton.setAttribute('aria-expanded', 'false');
      addButton.focus();
      poll();
    });
    formSlot.replaceChildren(form);
    addButton.setAttribute('aria-expanded', 'true');
    form.querySelector('input').focus();
  });
  const empty = h('p', { class: 'muted', hidden: true }, 'No feeds. Add one above.');
  setMain(h('div', { class: 'bar' }, h('h1', {}, 'Feeds'), addButton), formSlot, list, empty);
  const tiles = new Map();
  const s = scope;
  const poll = async () => {
    if (!s.alive) return;
    try {
      const feeds = await apiJson('/api/v1/feeds');
      const seen = new Set();
      for (const feed of feeds) {
        seen.add(feed.name);
        let el = tiles.get(feed.name);
        if (!el) {
          el = tile(feed);
          tiles.set(feed.name, el);
          list.append(el);
        }
        updateTile(el, feed);
      }
      for (const [name, el] of tiles) {
        if (!seen.has(name)) { el.remove(); tiles.delete(name); }
      }
      empty.hidden = feeds.length > 0;
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      toast(`Feeds: ${e.message}`);
    }
    clearTimeout(s.pollTimer);
    s.pollTimer = later(poll, POLL_MS);
  };
  s.refresh = poll;
  poll();
}

function table(headers, rows) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c)))))));
}

async function feedView(name) {
  const img = h('img', { alt: `Live annotated view of ${name}` });
  const none = h('div', { class: 'none' }, 'Waiting for a frame…');
  const info = h('p', { class: 'muted', 'aria-live': 'off' });
  const details = h('div');
  const s = scope;
  setMain(
    h('div', { class: 'bar' }, h('h1', {}, name),
      h('a', { href: `#/events?feed=${encodeURIComponent(name)}` }, 'Events'), h('a', { href: '#/' }, 'All feeds')),
    h('div', { class: 'cols' },
      h('div', {},
        h('section', { 'aria-label': 'Live view' }, h('div', { class: 'view' }, img, none), info),
        zoneEditor(name, () => s.refresh && s.refresh())),
      details));
  playStream(name, img, none, info);
  const poll = async () => {
    if (!s.alive) return;
    try {
      const [feed, overlay] = await Promise.all([
        apiJson(`/api/v1/feeds/${encodeURIComponent(name)}`),
        apiJson(`/api/v1/feeds/${encodeURIComponent(name)}/overlay`).catch(() => null),
      ]);
      if (!s.alive) return;
      const zones = overlay ? overlay.zones : [];
      const lines = overlay ? overlay.lines : [];
      details.replaceChildren(
        h('section', { class: 'panel', 'aria-label': 'State' },
          h('div', { class: 'head' }, h('span', {}, feed.source),
            h('span', { class: `badge ${stateName(feed)}`, 'data-state': stateName(feed) }, stateName(feed))),
          stats(feed),
          h('p', { class: 'muted' }, `up ${fmtSecs(feed.uptime_secs)}`),
          h('div', { class: 'error' }, lastError(feed)),
          controls(feed)),
        h('section', { class: 'panel', 'aria-label': 'Stages' }, h('h3', {}, 'Stages'),
          table(['stage', 'frames', 'errors', 'latency p50'], feed.stages.map((st) => [
            st.id,
            sum(metric(st.metrics, 'frames_processed')),
            sum(metric(st.metrics, 'errors')),
            fmtMicros((metric(st.metrics, 'latency_seconds') || {}).p50_micros),
          ]))),
        h('section', { class: 'panel', 'aria-label': 'Zones and lines' }, h('h3', {}, 'Zones and lines'),
          zones.length + lines.length === 0 ? h('p', { class: 'muted' }, 'None configured.')
            : table(['name', 'kind', 'count'], [
              ...zones.map((z) => [z.name, 'zone', z.occupancy === null ? '–' : `${z.occupancy} inside`]),
              ...lines.map((l) => [l.name, 'line', l.crossings === null ? '–'
                : `${l.crossings.left_to_right} L→R · ${l.crossings.right_to_left} R→L`]),
            ])));
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      details.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
      if (e.status === 404) return;
    }
    clearTimeout(s.pollTimer);
    s.pollTimer = later(poll, POLL_MS);
  };
  s.refresh = poll;
  poll();
}

async function systemView() {
  const body = h('div', {}, h('p', {}, 'Loading…'));
  setMain(h('h1', {}, 'System'), body);
  const s = scope;
  const poll = async () => {
    if (!s.alive) return;
    try {
      const [d, sinks] = await Promise.all([apiJson('/api/v1/diagnostics'), apiJson('/api/v1/sinks')]);
      if (!s.alive) return;
      // build.info is nested by label: {version: {commit: {features: 1}}}.
      const labels = [];
      for (let v = (d.build || {}).info; v && typeof v === 'object';) {
        const k = Object.keys(v)[0];
        if (k === undefined) break;
        labels.push(k);
        v = v[k];
      }
      const [version, commit, features] = labels;
      const detached = Array.isArray(d.detached_threads) ? d.detached_threads : [];
      const proc = d.process || {};
      const kv = (pairs) => table(['', ''], pairs);
      body.replaceChildren(
        h('section', { class: 'panel', 'aria-label': 'Runtime' }, h('h3', {}, 'Runtime'), kv([
          ['version', version ? `${version} (${commit || '?'}; features: ${features || 'none'})` : '–'],
          ['uptime', fmtSecs(d.uptime_secs)],
          ['feeds', `${d.feed_count} of ${d.max_feeds}`],
          ['output messages lost', d.output_messages_lost],
          ['detached threads', detached.length ? detached.join(', ') : 'none'],
          ...Object.entries(proc).filter(([k]) => k !== 'start_time_seconds').map(([k, v]) => [
            k.replace(/_/g, ' '),
            k.endsWith('_bytes') ? `${(v / 1048576).toFixed(1)} MiB` : (typeof v === 'object' ? JSON.stringify(v) : v),
          ]),
        ])),
        h('section', { class: 'panel', 'aria-label': 'Sinks' }, h('h3', {}, 'Sinks'),
          sinks.length === 0 ? h('p', { class: 'muted' }, 'No sink in use.')
            : table(['sink', 'delivered', 'dropped', 'failed', 'held', 'connected'], sinks.map((k) => [
              k.name, k.delivered, k.dropped_by_buffer, k.failed, k.buffered, k.connected ? 'yes' : 'no',
            ]))));
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      body.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
    }
    clearTimeout(s.pollTimer);
    s.pollTimer = later(poll, POLL_MS);
  };
  poll();
}

// ---- events ----

function fmtWall(us) { return us ? new Date(us / 1000).toLocaleString() : 'time unknown'; }

const ARROWS = { left_to_right: 'L→R', right_to_left: 'R→L' };

// Event pictures, fetched with the token two at a time, only for rows on screen when
// their turn comes (full frames; a busy daemon fires dozens of events a second, and rows
// pushed off screen by newer ones are skipped until scrolled back to). A live event's
// picture is drawn just after the event: it is asked for a second later, and once more
// after a 404, before "no picture" is shown.
function thumbLoader() {
  const s = scope;
  const queue = [];
  let running = 0;
  const onScreen = (el) => {
    const r = el.getBoundingClientRect();
    return r.bottom > -200 && r.top < innerHeight + 200;
  };
  const load = async (job) => {
    const { id, img } = job;
    if (!s.alive || !img.isConnected) return;
    if (!onScreen(img)) { seen.observe(img); return; }
    try {
      const resp = await api(`/api/v1/events/${encodeURIComponent(id)}/snapshot.jpg`);
      const u = blobUrl(s, await resp.blob());
      if (!img.isConnected) { revoke(s, u); return; }
      img.src = u;
      img.dataset.url = u;
      const link = h('a', { href: u, target: '_blank', rel: 'noopener', 'aria-label': 'Open the full frame' });
      img.replaceWith(link);
      link.append(img);
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      if (e.status === 404 && job.tries > 0) {
        job.tries -= 1;
        later(() => { queue.push(job); pump(); }, 1000);
        return;
      }
      img.replaceWith(h('span', { class: 'none' }, 'no picture kept'));
    }
  };
  const pump = () => {
    while (running < 2 && queue.length) {
      running += 1;
      load(queue.shift()).finally(() => { running -= 1; pump(); });
    }
  };
  const seen = new IntersectionObserver((entries) => {
    for (const en of entries) {
      if (!en.isIntersecting) continue;
      seen.unobserve(en.target);
      const job = en.target.job;
      if (job.delay) later(() => { job.delay = false; queue.push(job); pump(); }, 1000);
      else queue.push(job);
    }
    pump();
  }, { rootMargin: '200px' });
  s.controllers.add({ abort: () => seen.disconnect() });
  const loader = (id, img, live) => { img.job = { id, img, tries: live ? 1 : 0, delay: live }; seen.observe(img); };
  // A row leaving the list: the observer would otherwise keep it alive.
  loader.forget = (img) => { if (img) seen.unobserve(img); };
  return loader;
}

function eventRow(e, loadThumb, live) {
  const img = h('img', { alt: `Frame of ${e.kind} on ${e.feed || 'feed ' + e.feed_id}` });
  const place = e.line ? `${e.line} ${ARROWS[e.direction] || ''}`.trim() : e.zone;
  const object = e.track_id === null || e.track_id === undefined ? null
    : `track #${e.track_id} c${e.class_id}${e.confidence === null ? '' : ' ' + e.confidence.toFixed(2)}`;
  const extra = e.dwell_millis ? `${(e.dwell_millis / 1000).toFixed(1)} s inside` : e.motion;
  loadThumb(e.event_id, img, live);
  return h('li', { class: 'event', 'data-kind': e.kind, 'data-event-id': e.event_id, 'data-live': live ? '1' : null },
    h('div', { class: 'thumb' }, img),
    h('div', {},
      h('div', { class: 'head' }, h('strong', {}, e.kind.replace(/_/g, ' ')), h('span', { class: 'muted' }, fmtWall(e.wall_micros))),
      h('div', {}, [e.feed || `feed ${e.feed_id}`, place, object, extra].filter(Boolean).join(' · '))));
}

// Server-Sent Events read from a fetch() body (EventSource cannot send the token header).
async function readSse(resp, onMessage) {
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || !scope.alive) return;
      buf += dec.decode(value, { stream: true });
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const m = { id: null, event: 'message', data: '' };
        for (const line of buf.slice(0, end).split('\n')) {
          const i = line.indexOf(':');
          if (i <= 0) continue;
          const [k, v] = [line.slice(0, i), line.slice(i + 1).trim()];
          if (k === 'data') m.data += v;
          else if (k === 'id' || k === 'event') m[k] = v;
        }
        buf = buf.slice(end + 2);
        if (m.data) onMessage(m);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function eventsView(params) {
  const s = scope;
  const filters = {};
  for (const k of ['feed', 'kind', 'zone']) filters[k] = params.get(k) || '';
  const opt = (v, text) => h('option', { value: v, selected: v === filters.kind }, text);
  const feedSel = h('select', { name: 'feed', id: 'ev-feed' }, h('option', { value: '' }, 'all feeds'));
  const form = h('form', { class: 'filters', 'aria-label': 'Event filters' },
    h('label', { for: 'ev-feed' }, 'Feed'), feedSel,
    h('label', { for: 'ev-kind' }, 'Kind'),
    h('select', { name: 'kind', id: 'ev-kind' }, opt('', 'all kinds'), EVENT_KINDS.map((k) => opt(k, k.replace(/_/g, ' ')))),
    h('label', { for: 'ev-zone' }, 'Zone or line'),
    h('input', { name: 'zone', id: 'ev-zone', autocomplete: 'off', value: filters.zone }),
    h('button', { type: 'submit' }, 'Filter'));
  const apply = (ev) => {
    if (ev) ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = `#/events?${q}`;
  };
  form.addEventListener('submit', apply);
  form.addEventListener('change', (ev) => { if (ev.target.tagName === 'SELECT') apply(); });
  const status = h('span', { class: 'badge', 'data-slot': 'live' }, 'connecting');
  const list = h('ul', { class: 'events', 'aria-label': 'Events', 'aria-live': 'off' });
  const empty = h('p', { class: 'muted' }, 'No event yet.');
  setMain(h('div', { class: 'bar' }, h('h1', {}, 'Events'), status), form, empty, list);
  apiJson('/api/v1/feeds').then((feeds) => {
    const names = feeds.map((f) => f.name);
    if (filters.feed && !names.includes(filters.feed)) names.push(filters.feed);
    feedSel.append(...names.map((n) => h('option', { value: n, selected: n === filters.feed }, n)));
  }).catch(() => {});
  const load = thumbLoader();
  const query = (extra) => {
    const q = new URLSearchParams(extra);
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    return q;
  };
  const trim = () => {
    while (list.children.length > EVENT_ROWS) {
      const img = list.lastChild.querySelector('img');
      load.forget(img);
      revoke(s, img?.dataset.url);
      list.lastChild.remove();
    }
    empty.hidden = list.children.length > 0;
  };
  const setStatus = (text) => { status.textContent = text; status.className = `badge ${text === 'live' ? 'running' : 'paused'}`; };
  // Lists the newest events, then follows the stream from the newest one listed.
  const start = async () => {
    if (!s.alive) return;
    let after;
    try {
      const r = await apiJson(`/api/v1/events/recent?${query({ limit: EVENT_ROWS })}`);
      if (!s.alive) return;
      pending = [];
      list.querySelectorAll('img').forEach((img) => { load.forget(img); revoke(s, img.dataset.url); });
      list.replaceChildren(...r.events.map((e) => eventRow(e, load, false)));
      trim();
      after = r.last_seq;
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      setStatus('offline');
      toast(`Events: ${e.message}`);
      later(start, 3000);
      return;
    }
    follow(after);
  };
  let pending = [];
  const flush = () => {
    const rows = pending.slice(-EVENT_ROWS).reverse().map((e) => eventRow(e, load, true));
    pending = [];
    list.prepend(...rows);
    trim();
  };
  const follow = async (after) => {
    let dropped = false;
    try {
      const resp = await api(`/api/v1/events/stream?${query({ after })}`, { stream: true });
      setStatus('live');
      await readSse(resp, (m) => {
        if (m.event === 'dropped') { dropped = true; return; }
        pending.push(JSON.parse(m.data));
        if (m.id) after = Number(m.id);
        // Shown twice a second at most, and only the newest rows: a busy daemon fires
        // dozens of events a second, more than anyone reads or a page should redraw.
        if (pending.length === 1) later(flush, 500);
      });
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
    }
    if (!s.alive) return;
    setStatus('reconnecting');
    // Dropped as too slow: events were missed, so list again; otherwise resume.
    later(dropped ? start : () => follow(after), 2000);
  };
  start();
}

// ---- zone and line editor ----

// Draws on a still snapshot, in the frame's pixel space whatever size it is shown at;
// every shape's points can also be typed (keyboard use). Applied through PUT zones,
// which validates the whole set: its problems are listed next to the form.
function zoneEditor(feedName, onApplied) {
  const s = scope;
  const path = `/api/v1/feeds/${encodeURIComponent(feedName)}`;
  const body = h('div');
  const openButton = h('button', { type: 'button', 'data-action': 'edit-zones' }, 'Edit zones and lines');
  const panel = h('section', { class: 'panel', 'aria-label': 'Zone and line editor' }, h('h3', {}, 'Zone and line editor'), body);
  body.append(openButton);
  let W = 0, H = 0, config = null, shapes = [], drawing = null, drag = null;
  const img = h('img', { alt: `Still frame of ${feedName} to draw on` });
  const canvas = h('canvas', { 'aria-hidden': 'true' });
  const hint = h('p', { class: 'muted', 'aria-live': 'polite', 'data-slot': 'hint' });
  const rows = h('ul', { class: 'shapes', 'aria-label': 'Zones and lines' });
  const problems = h('ul', { class: 'problems', role: 'alert' });
  const ctx = canvas.getContext('2d');
  const norm = ([x, y]) => [Math.round((x / W) * 1e4) / 1e4, Math.round((y / H) * 1e4) / 1e4];
  const ptsText = (pts) => pts.map(([x, y]) => `${Math.round(x)},${Math.round(y)}`).join(' ');
  const unique = (base) => {
    let n = 1;
    while (shapes.some((sh) => sh.name === `${base}-${n}`)) n += 1;
    return `${base}-${n}`;
  };

  const redraw = () => {
    ctx.clearRect(0, 0, W, H);
    const px = W / (canvas.getBoundingClientRect().width || W);
    ctx.lineWidth = 2.5 * px;
    ctx.font = `${Math.round(13 * px)}px sans-serif`;
    for (const sh of drawing ? [...shapes, drawing] : shapes) {
      const color = sh.kind === 'zone' ? '#00beff' : '#ff3cc8';
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.setLineDash(sh === drawing ? [6 * px, 4 * px] : []);
      ctx.beginPath();
      sh.pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (sh.kind === 'zone' && sh !== drawing) ctx.closePath();
      ctx.stroke();
      for (const [x, y] of sh.pts) ctx.fillRect(x - 4 * px, y - 4 * px, 8 * px, 8 * px);
      if (sh.pts.length && sh.name) ctx.fillText(sh.name, sh.pts[0][0] + 6 * px, sh.pts[0][1] - 6 * px);
    }
  };

  const shapeRow = (sh) => {
    const id = `pts-${shapes.indexOf(sh)}`;
    const nameIn = h('input', { value: sh.name, 'aria-label': `Name of ${sh.kind} ${sh.name}`, 'data-field': 'name' });
    const ptsIn = h('input', { id, value: ptsText(sh.pts), 'data-field': 'points', autocomplete: 'off' });
    nameIn.addEventListener('change', () => { sh.name = nameIn.value.trim(); redraw(); });
    ptsIn.addEventListener('change', () => {
      const pts = ptsIn.value.trim().split(/\s+/).map((p) => p.split(',').map(Number));
      const ok = pts.every((p) => p.length === 2 && p.every(Number.isFinite))
        && (sh.kind === 'line' ? pts.length === 2 : pts.length >= 3);
      // Marked here, listed at Apply (a list changing under the pointer moves buttons).
      sh.bad = ok ? null : `${sh.name}: points must be ${sh.kind === 'line' ? 'two' : 'three or more'} x,y pairs in pixels`;
      ptsIn.setAttribute('aria-invalid', String(!ok));
      if (!ok) return;
      sh.pts = pts;
      redraw();
    });
    return h('li', { 'data-shape': sh.kind },
      h('span', { class: 'badge' }, sh.kind), nameIn,
      h('label', { for: id }, 'Points (x,y pixels)'), ptsIn,
      h('button', {
        type: 'button', class: 'danger', 'aria-label': `Delete ${sh.kind} ${sh.name}`,
        // The row goes: the focus moves to the drawing buttons rather than the page.
        onclick: () => { shapes.splice(shapes.indexOf(sh), 1); update(); body.querySelector('[data-action=draw-line]').focus(); },
      }, 'Delete'));
  };

  const update = () => {
    rows.replaceChildren(...shapes.map(shapeRow));
    redraw();
  };

  const begin = (kind) => {
    drawing = { kind, name: unique(kind), pts: [] };
    hint.textContent = kind === 'line'
      ? 'Click the line\u2019s start, then its end (crossings count left to right as seen from start to end).'
      : 'Click the zone\u2019s corners; Finish zone (or click the first corner) closes it.';
    redraw();
  };

  const finish = () => {
    if (!drawing) return;
    if (drawing.kind === 'zone' && drawing.pts.length < 3) { hint.textContent = 'A zone needs three corners or more.'; return; }
    shapes.push(drawing);
    hint.textContent = `${drawing.name} added; Apply to use it.`;
    drawing = null;
    update();
  };

  const toFrame = (ev) => {
    const r = canvas.getBoundingClientRect();
    const clamp = (v, max) => Math.min(max, Math.max(0, Math.round(v)));
    return [clamp(((ev.clientX - r.left) * W) / r.width, W), clamp(((ev.clientY - r.top) * H) / r.height, H)];
  };
  const near = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]) <= (12 * W) / (canvas.getBoundingClientRect().width || W);

  canvas.addEventListener('pointerdown', (ev) => {
    const p = toFrame(ev);
    if (drawing) {
      if (drawing.kind === 'zone' && drawing.pts.length >= 3 && near(p, drawing.pts[0])) { finish(); return; }
      drawing.pts.push(p);
      if (drawing.kind === 'line' && drawing.pts.length === 2) finish();
      else redraw();
      return;
    }
    // Not drawing: a corner or end near the pointer is dragged.
    for (const sh of shapes) {
      const i = sh.pts.findIndex((q) => near(p, q));
      if (i >= 0) { drag = { sh, i }; canvas.setPointerCapture(ev.pointerId); return; }
    }
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!drag) return;
    drag.sh.pts[drag.i] = toFrame(ev);
    redraw();
  });
  canvas.addEventListener('pointerup', () => { if (drag) { drag = null; update(); } });

  const applyEdit = async () => {
    if (drawing) finish();
    const bad = shapes.filter((sh) => sh.bad).map((sh) => h('li', {}, sh.bad));
    if (bad.length) { problems.replaceChildren(...bad); return; }
    const edit = {
      zones: shapes.filter((sh) => sh.kind === 'zone').map((z) => ({ name: z.name, points: z.pts.map(norm) })),
      lines: shapes.filter((sh) => sh.kind === 'line').map((l) => ({ name: l.name, from: norm(l.pts[0]), to: norm(l.pts[1]) })),
      anchor: config.anchor,
    };
    if (config.dwell_threshold_secs !== null) edit.dwell_threshold_secs = config.dwell_threshold_secs;
    problems.replaceChildren();
    try {
      const r = await apiJson(`${path}/zones`, { method: 'PUT', json: edit });
      hint.textContent = r.applied ? 'Applied.' : 'Accepted; it applies at the feed\u2019s next frame.';
      toast(`Zones of ${feedName} applied`);
      onApplied();
    } catch (e) {
      if (e.status === 401) return;
      const list = Array.isArray(e.details) && e.details.length ? e.details : [e.message];
      problems.replaceChildren(...list.map((p) => h('li', {}, String(p))));
    }
  };

  const open = async () => {
    body.replaceChildren(h('p', { class: 'muted' }, 'Loading a frame…'));
    try {
      const [zones, resp] = await Promise.all([apiJson(`${path}/zones`), api(`${path}/snapshot.jpg`)]);
      const url = blobUrl(s, await resp.blob());
      img.src = url;
      await img.decode();
      if (!s.alive) return;
      [W, H, config] = [img.naturalWidth, img.naturalHeight, zones];
    } catch (e) {
      if (e.name === 'AbortError' || e.status === 401) return;
      body.replaceChildren(h('p', { class: 'error', role: 'alert' },
        e.code === 'no_zones_stage' ? 'This feed has no zones stage to edit.' : e.message), openButton);
      return;
    }
    canvas.width = W;
    canvas.height = H;
    shapes = [
      ...config.zones.map((z) => ({ kind: 'zone', name: z.name, pts: z.points.map(([x, y]) => [x * W, y * H]) })),
      ...config.lines.map((l) => ({ kind: 'line', name: l.name, pts: [l.from, l.to].map(([x, y]) => [x * W, y * H]) })),
    ];
    const button = (text, action, fn) => h('button', { type: 'button', 'data-action': action, onclick: fn }, text);
    const addDefault = (kind) => {
      const [x0, x1, y0, y1] = [W * 0.3, W * 0.7, H * 0.3, H * 0.7];
      shapes.push({ kind, name: unique(kind), pts: kind === 'line' ? [[W / 2, H * 0.1], [W / 2, H * 0.9]] : [[x0, y0], [x1, y0], [x1, y1], [x0, y1]] });
      update();
      rows.lastChild.querySelector('[data-field=points]').focus();
    };
    body.replaceChildren(
      h('div', { class: 'edit-stage', 'data-frame-size': `${W}x${H}` }, img, canvas),
      hint,
      h('div', { class: 'actions' },
        button('Draw line', 'draw-line', () => begin('line')),
        button('Draw zone', 'draw-zone', () => begin('zone')),
        button('Finish zone', 'finish-zone', finish),
        button('Add line', 'add-line', () => addDefault('line')),
        button('Add zone', 'add-zone', () => addDefault('zone'))),
      rows, problems,
      h('div', { class: 'actions' },
        button('Apply', 'apply-zones', applyEdit),
        button('Close', 'close-editor', () => { drawing = null; body.replaceChildren(openButton); openButton.focus(); })));
    hint.textContent = `Frame ${W}×${H} pixels. Draw on it, or add a shape and type its points.`;
    update();
  };
  openButton.addEventListener('click', open);
  return panel;
}

function showLogin(why) {
  endScope();
  document.getElementById('logout').hidden = true;
  const input = h('input', { type: 'password', name: 'token', required: true, autocomplete: 'current-password', id: 'token' });
  const problem = h('p', { class: 'error', role: 'alert' }, token() ? 'That token was refused.' : '');
  const form = h('form', { 'aria-label': 'Log in' },
    h('label', { for: 'token' }, 'API token'), input, problem,
    h('button', { type: 'submit' }, 'Log in'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value);
    render();
  });
  setMain(h('section', { class: 'login panel' }, h('h1', {}, 'Log in'), h('p', { class: 'muted' }, why), form));
  input.focus();
}

function render() {
  endScope();
  document.getElementById('logout').hidden = !token();
  const hash = location.hash || '#/';
  const nav = hash.startsWith('#/system') ? 'system' : (hash.startsWith('#/events') ? 'events' : 'grid');
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  if (hash.startsWith('#/feed/')) return feedView(decodeURIComponent(hash.slice(7)));
  if (hash.startsWith('#/system')) return systemView();
  if (hash.startsWith('#/events')) return eventsView(new URLSearchParams(hash.split('?')[1] || ''));
  return gridView();
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('Logged out.');
  });
  window.addEventListener('hashchange', () => { render(); main().focus({ preventScroll: true }); });
  render();
});
