// The fleet dashboard: polls GET /fleet/metrics (the latest Prometheus text of every instance of
// the `fleet` key, gathered by the serving orderd; see runtime/include/es/fleet.h), parses it here,
// computes rates and p99 between two consecutive scrapes of each instance, and draws SVG charts.
// Plain browser JavaScript, no libraries; every value goes into the DOM as text, never as HTML.
// An instance that does not answer stays on the page, marked down with the reason.
'use strict';

(() => {
  const POLL_MS = 2000;
  const WINDOW_MS = 5 * 60 * 1000;
  const COLORS = ['#3559e0', '#0f8a6c', '#c2620a', '#c0352b', '#6d3fc0', '#0e7490', '#a16207', '#be185d',
    '#4d7c0f', '#475467'];
  const $ = (sel, root = document) => root.querySelector(sel);

  // Per instance (by URL): the previous scrape's counters, and what the table shows.
  const instances = new Map();
  // Per chart: series key -> { label, points: [[t, v|null]] }.
  const charts = new Map();
  const colorOf = new Map();
  let timer = null;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'color') e.style.background = v; /* CSSOM: the page's CSP allows no style attribute */
      else e.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  // SVG elements in the namespace of the page's own <svg> (the HTML parser put it there).
  function svgEl(svg, tag, attrs) {
    const e = svg.ownerDocument.createElementNS(svg.namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  function color(key) {
    if (!colorOf.has(key)) colorOf.set(key, COLORS[colorOf.size % COLORS.length]);
    return colorOf.get(key);
  }

  function showMessage(text, kind) {
    const m = $('#message');
    m.textContent = text || '';
    m.className = 'message ' + (kind || 'info');
    m.hidden = !text;
  }

  function setLive(ok, text) {
    const live = $('#live');
    live.className = 'live ' + (ok ? 'on' : 'off');
    live.textContent = text;
  }

  function fmt(v, digits = 1) {
    if (v === null || v === undefined || Number.isNaN(v)) return '—';
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en');
    return String(Number(v.toFixed(digits)));
  }

  // ---- Prometheus text (format 0.0.4) -------------------------------------------------------

  function parseLabels(s) {
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let m;
    while ((m = re.exec(s)) !== null)
      labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    return labels;
  }

  function parseMetrics(text) {
    const samples = [];
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (!m) continue;
      const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
      samples.push({ name: m[1], labels: m[2] ? parseLabels(m[2]) : {}, value: v });
    }
    return samples;
  }

  // What the dashboard needs from one scrape.
  function digest(samples) {
    const d = { calls: new Map(), buckets: new Map(), consumers: new Map(), relayActive: null, relayLag: null,
      relayLagSeconds: null, hasPartitions: false };
    const consumer = name => {
      if (!d.consumers.has(name)) d.consumers.set(name, { lag: null, partitions: null, dead: null });
      return d.consumers.get(name);
    };
    for (const s of samples) {
      switch (s.name) {
        case 'es_requests_total':
          d.calls.set(s.labels.method, (d.calls.get(s.labels.method) || 0) + s.value);
          break;
        case 'es_request_duration_seconds_bucket': {
          const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
          d.buckets.set(le, (d.buckets.get(le) || 0) + s.value);
          break;
        }
        case 'es_relay_active': d.relayActive = s.value; break;
        case 'es_relay_lag_events': d.relayLag = s.value; break;
        case 'es_relay_lag_seconds': d.relayLagSeconds = s.value; break;
        case 'es_consumer_lag_messages': consumer(s.labels.consumer).lag = s.value < 0 ? null : s.value; break;
        case 'es_consumer_assigned_partitions':
          consumer(s.labels.consumer).partitions = s.value;
          d.hasPartitions = true;
          break;
        case 'es_consumer_dead_letters_total': consumer(s.labels.consumer).dead = s.value; break;
        default: break;
      }
    }
    return d;
  }

  // histogram_quantile over the buckets' increase between two scrapes: linear inside the bucket
  // where the rank falls. null when no call finished in between.
  function quantile(q, prev, cur) {
    const bounds = [...cur.keys()].sort((a, b) => a - b);
    const inc = b => Math.max(0, (cur.get(b) || 0) - ((prev && prev.get(b)) || 0));
    const total = inc(Infinity);
    if (!total) return null;
    const rank = q * total;
    let lower = 0, below = 0;
    for (const b of bounds) {
      const c = inc(b);
      if (c >= rank) {
        if (b === Infinity) return lower; /* beyond the largest bound: say the largest bound */
        return lower + (b - lower) * ((rank - below) / Math.max(c - below, 1e-9));
      }
      lower = b;
      below = c;
    }
    return lower;
  }

  // ---- one poll -----------------------------------------------------------------------------

  function update(inst, answer) {
    inst.state = answer.state;
    inst.error = answer.error;
    inst.label = answer.instance;
    if (answer.state !== 'up' || answer.metrics === null) {
      inst.rate = null; inst.p99 = null; inst.byMethod = new Map();
      if (answer.state === 'down') inst.prev = null; /* counters may restart with the instance */
      return;
    }
    if (inst.prev && inst.prev.at === answer.scraped_at_ms) return; /* the same scrape again */
    const d = digest(parseMetrics(answer.metrics));
    d.at = answer.scraped_at_ms;
    const p = inst.prev;
    if (p) {
      const dt = Math.max((d.at - p.at) / 1000, 0.001);
      inst.byMethod = new Map();
      let sum = 0;
      for (const [method, v] of d.calls) {
        const r = Math.max(0, v - (p.calls.get(method) || 0)) / dt;
        inst.byMethod.set(method, r);
        sum += r;
      }
      inst.rate = sum;
      const q = quantile(0.99, p.buckets, d.buckets);
      inst.p99 = q === null ? null : q * 1000;
    }
    inst.digest = d;
    inst.prev = d;
  }

  function push(chart, key, label, t, v) {
    if (!charts.has(chart)) charts.set(chart, new Map());
    const series = charts.get(chart);
    if (!series.has(key)) series.set(key, { label, points: [] });
    const s = series.get(key);
    s.label = label;
    s.points.push([t, v === undefined ? null : v]);
    while (s.points.length && s.points[0][0] < t - WINDOW_MS) s.points.shift();
  }

  function record(now) {
    const methods = new Map();
    for (const inst of instances.values()) {
      const up = inst.state === 'up';
      const d = inst.digest;
      push('chart-rate', inst.url, inst.label, now, up ? inst.rate : null);
      push('chart-p99', inst.url, inst.label, now, up ? inst.p99 : null);
      push('chart-relay', inst.url, inst.label, now, up && d ? d.relayLag : null);
      if (up && inst.byMethod) for (const [m, r] of inst.byMethod) methods.set(m, (methods.get(m) || 0) + r);
      if (d) for (const [name, c] of d.consumers) {
        push('chart-projection', inst.url + ' ' + name, `${inst.label} · ${name}`, now, up ? c.lag : null);
        push('chart-dead', inst.url + ' ' + name, `${inst.label} · ${name}`, now, up ? c.dead : null);
      }
    }
    for (const [m, r] of methods) push('chart-method', m, m, now, r);
    /* a method that went quiet falls to 0 instead of ending its line */
    for (const [key, s] of charts.get('chart-method') || []) if (!methods.has(key)) push('chart-method', key, s.label, now, 0);
  }

  // ---- drawing ------------------------------------------------------------------------------

  function lineChart(id, now) {
    const section = $('#' + id);
    const svg = $('svg', section);
    const unit = section.dataset.unit || '';
    // The drawing's units are the element's pixels, so text and lines are not stretched.
    const W = Math.max(svg.clientWidth, 300), H = Math.max(svg.clientHeight, 120), L = 44, R = 8, T = 8, B = 20;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const series = charts.get(id) || new Map();
    let max = 0;
    for (const s of series.values()) for (const [, v] of s.points) if (v !== null && v > max) max = v;
    max = max > 0 ? max * 1.15 : 1;
    const x = t => L + (W - L - R) * (1 - (now - t) / WINDOW_MS);
    const y = v => T + (H - T - B) * (1 - v / max);
    svg.replaceChildren();
    for (let i = 0; i <= 3; i++) {
      const v = (max * i) / 3;
      svg.append(svgEl(svg, 'line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      const label = svgEl(svg, 'text', { x: L - 4, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
      label.textContent = fmt(v);
      svg.append(label);
    }
    for (const [t, text] of [[now - WINDOW_MS, '-5 min'], [now, 'now']]) {
      const label = svgEl(svg, 'text', { x: x(t), y: H - 4, class: 'axis', 'text-anchor': t === now ? 'end' : 'start' });
      label.textContent = text;
      svg.append(label);
    }
    const legend = $('.legend', section);
    legend.replaceChildren();
    for (const [key, s] of series) {
      // one polyline per unbroken run: a down instance leaves a gap, not a line to zero
      let run = [];
      const flush = () => {
        if (run.length === 1) svg.append(svgEl(svg, 'circle', { cx: run[0][0], cy: run[0][1], r: 2.5, fill: color(key), 'data-series': key }));
        else if (run.length > 1) svg.append(svgEl(svg, 'polyline', { points: run.map(p => p.join(',')).join(' '),
          fill: 'none', stroke: color(key), 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'data-series': key }));
        run = [];
      };
      for (const [t, v] of s.points) {
        if (v === null) flush();
        else run.push([x(t).toFixed(1), y(v).toFixed(1)]);
      }
      flush();
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      legend.append(el('li', { 'data-series': key, 'data-value': last === null ? '' : String(last) },
        el('span', { class: 'swatch', color: color(key) }),
        el('span', { class: 'name', text: s.label }),
        el('span', { class: 'value', text: last === null ? 'down' : fmt(last) + unit })));
    }
    if (!series.size) legend.append(el('li', { class: 'empty', text: 'no data yet' }));
  }

  // Horizontal bars: the partitions each consumer of each instance holds now; "n/a" when the
  // instance does not export es_consumer_assigned_partitions, "down" when it does not answer.
  function partitionsChart() {
    const section = $('#chart-partitions');
    const svg = $('svg', section);
    const rows = [];
    for (const inst of instances.values()) {
      const d = inst.digest;
      if (inst.state !== 'up' || !d) rows.push({ key: inst.url, label: inst.label, value: null, text: inst.state === 'down' ? 'down' : '…' });
      else if (!d.hasPartitions) rows.push({ key: inst.url, label: inst.label, value: null, text: 'n/a' });
      else for (const [name, c] of d.consumers)
        if (c.partitions !== null) rows.push({ key: inst.url + ' ' + name, label: `${inst.label} · ${name}`, value: c.partitions, text: fmt(c.partitions, 0) });
    }
    const H = Math.max(40, rows.length * 22 + 8), W = Math.max(svg.clientWidth, 300), L = 8, R = 40;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.style.height = `${H}px`;
    svg.replaceChildren();
    const max = Math.max(1, ...rows.map(r => r.value || 0));
    rows.forEach((r, i) => {
      const w = r.value ? (W - L - R) * (r.value / max) : 0;
      svg.append(svgEl(svg, 'rect', { x: L, y: 6 + i * 22, width: Math.max(w, 1), height: 14, rx: 3,
        fill: r.value === null ? '#d0d5dd' : color(r.key), 'data-series': r.key }));
      const t = svgEl(svg, 'text', { x: L + Math.max(w, 1) + 6, y: 17 + i * 22, class: 'axis' });
      t.textContent = r.text;
      svg.append(t);
    });
    const legend = $('.legend', section);
    legend.replaceChildren(...rows.map(r => el('li', { 'data-series': r.key, 'data-value': r.value === null ? r.text : String(r.value) },
      el('span', { class: 'swatch', color: r.value === null ? '#d0d5dd' : color(r.key) }),
      el('span', { class: 'name', text: r.label }), el('span', { class: 'value', text: r.text }))));
  }

  function table() {
    const body = $('#instances tbody');
    body.replaceChildren(...[...instances.values()].map(inst => {
      const d = inst.digest;
      const up = inst.state === 'up';
      const consumers = d ? [...d.consumers.entries()] : [];
      const partitions = !up || !d ? '—' : !d.hasPartitions ? 'n/a'
        : consumers.filter(([, c]) => c.partitions !== null).map(([n, c]) => `${n}: ${c.partitions}`).join(', ');
      const lag = !up || !d ? '—' : consumers.map(([n, c]) => `${n}: ${c.lag === null ? '?' : fmt(c.lag, 0)}`).join(', ');
      const dead = !up || !d ? null : consumers.reduce((a, [, c]) => a + (c.dead || 0), 0);
      const relay = !up || !d || d.relayActive === null ? '—' : d.relayActive ? 'active' : 'standby';
      const state = el('span', { class: 'badge small ' + (up ? 'paid' : inst.state === 'down' ? 'failed' : 'pending'),
        text: up ? 'up' : inst.state === 'down' ? 'down' : 'waiting' });
      return el('tr', { 'data-instance': inst.url, 'data-state': inst.state, 'data-rate': up && inst.rate !== null ? String(inst.rate) : '' },
        el('td', {}, el('div', { class: 'mono', text: inst.label }), inst.error ? el('div', { class: 'reason', text: inst.error }) : null),
        el('td', {}, state),
        el('td', { class: 'num', 'data-field': 'rate', text: up ? fmt(inst.rate) : '—' }),
        el('td', { class: 'num', 'data-field': 'p99', text: up && inst.p99 !== null ? fmt(inst.p99) + ' ms' : '—' }),
        el('td', { 'data-field': 'relay', text: relay }),
        el('td', { class: 'num', 'data-field': 'relay_lag', text: up && d && d.relayLag !== null ? `${fmt(d.relayLag, 0)} ev · ${fmt(d.relayLagSeconds)} s` : '—' }),
        el('td', { 'data-field': 'partitions', text: partitions || '—' }),
        el('td', { class: 'num', 'data-field': 'projection_lag', text: lag || '—' }),
        el('td', { class: 'num', 'data-field': 'dead_letters', text: dead === null ? '—' : fmt(dead, 0) }));
    }));
  }

  function draw(now) {
    table();
    for (const id of ['chart-method', 'chart-rate', 'chart-p99', 'chart-relay', 'chart-projection', 'chart-dead']) lineChart(id, now);
    partitionsChart();
  }

  async function poll() {
    timer = null;
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem('orderd.token');
    if (token) headers.Authorization = 'Bearer ' + token;
    let body;
    try {
      const res = await fetch('/fleet/metrics', { headers, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        showMessage('The fleet view needs an admin token: enter it under "API token".', 'error');
        $('#token-box').open = true;
        setLive(false, 'no access');
        return; /* polling resumes when a token is entered */
      }
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = await res.json();
    } catch (e) {
      setLive(false, `reconnecting… (${e.message})`);
      timer = setTimeout(poll, POLL_MS);
      return;
    }
    showMessage('');
    const seen = new Set();
    for (const answer of body.instances || []) {
      seen.add(answer.url);
      if (!instances.has(answer.url)) instances.set(answer.url, { url: answer.url, prev: null, digest: null, rate: null, p99: null });
      update(instances.get(answer.url), answer);
    }
    for (const url of [...instances.keys()]) if (!seen.has(url)) instances.delete(url);
    const now = Date.now();
    record(now);
    draw(now);
    const up = [...instances.values()].filter(i => i.state === 'up').length;
    setLive(true, `live · ${instances.size} instance${instances.size === 1 ? '' : 's'} · ${up} up · ${new Date(now).toLocaleTimeString('en-GB')}`);
    timer = setTimeout(poll, POLL_MS);
  }

  document.addEventListener('DOMContentLoaded', () => {
    const token = $('#token');
    token.value = localStorage.getItem('orderd.token') || '';
    token.addEventListener('change', () => {
      if (token.value) localStorage.setItem('orderd.token', token.value);
      else localStorage.removeItem('orderd.token');
      if (timer) clearTimeout(timer);
      poll();
    });
    poll();
  });
})();
