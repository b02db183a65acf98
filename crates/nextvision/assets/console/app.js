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
  setMain(
    h('div', { class: 'bar' }, h('h1', {}, name), h('a', { href: '#/' }, 'All feeds')),
    h('div', { class: 'cols' },
      h('section', { 'aria-label': 'Live view' }, h('div', { class: 'view' }, img, none), info),
      details));
  playStream(name, img, none, info);
  const s = scope;
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
  const nav = hash.startsWith('#/system') ? 'system' : 'grid';
  document.querySelectorAll('[data-nav]').forEach((a) => {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  if (hash.startsWith('#/feed/')) return feedView(decodeURIComponent(hash.slice(7)));
  if (hash.startsWith('#/system')) return systemView();
  return gridView();
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('Logged out.');
  });
  window.addEventListener('hashchange', () => { render(); main().focus(); });
  render();
});
