// The order timeline page: reads orderd's JSON API (the same routes every client uses) and draws
// one order's summary and its events, payment and shipping in two lanes. While an order is shown,
// its event history is polled every second and new events are appended as they arrive.
// Plain browser JavaScript, no libraries; every value goes into the DOM as text, never as HTML.
'use strict';

(() => {
  const POLL_MS = 1000;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const $ = (sel, root = document) => root.querySelector(sel);

  // The view being shown; a new route bumps `gen` so that answers for an old view are dropped.
  const state = { gen: 0, orderId: null, lastVersion: 0, timer: null, summaryVersion: 0, summaryBusy: false };

  // ---- helpers -------------------------------------------------------------------------------

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) e.append(kid);
    return e;
  }

  async function api(path) {
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem('orderd.token');
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, { headers, cache: 'no-store' });
    const text = await res.text();
    let body;
    try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { message: text }; }
    if (!res.ok) {
      const err = new Error((body && body.message) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // "PAYMENT_STATUS_WAITING_FOR_X" -> "Waiting for x" (the enum prefix given).
  function label(value, prefix) {
    if (!value) return '—';
    let v = String(value);
    if (prefix && v.startsWith(prefix)) v = v.slice(prefix.length);
    v = v.replace(/_/g, ' ').toLowerCase();
    return v.charAt(0).toUpperCase() + v.slice(1);
  }

  function stateClass(value, prefix) {
    if (!value) return 'unknown';
    return String(value).slice(prefix.length).toLowerCase().replace(/_/g, '-');
  }

  // Money is integer minor units in a string (proto3 JSON int64): format without going through
  // floating point for the digits.
  function money(m) {
    if (!m || !m.currency_code) return '—';
    const cur = m.currency_code;
    let digits = 2;
    try { digits = new Intl.NumberFormat('en', { style: 'currency', currency: cur }).resolvedOptions().maximumFractionDigits; } catch (e) { /* unknown code */ }
    let s = String(m.amount_minor || '0');
    const neg = s.startsWith('-');
    if (neg) s = s.slice(1);
    s = s.padStart(digits + 1, '0');
    const major = s.slice(0, s.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    const minor = digits ? '.' + s.slice(s.length - digits) : '';
    return (neg ? '-' : '') + major + minor + ' ' + cur;
  }

  function time(ts, ms = true) {
    if (!ts) return '—';
    const d = new Date(ts);
    if (isNaN(d)) return ts;
    const p = (n, w = 2) => String(n).padStart(w, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}` +
      (ms ? `.${p(d.getMilliseconds(), 3)}` : '');
  }

  function showMessage(text, kind) {
    const m = $('#message');
    m.textContent = text || '';
    m.className = 'message ' + (kind || 'info');
    m.hidden = !text;
  }

  function show(section) {
    for (const id of ['welcome', 'results', 'order']) $('#' + id).hidden = id !== section;
  }

  function stopPolling() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  // ---- events: lanes and descriptions --------------------------------------------------------

  const TITLES = {
    OrderPlaced: 'Order placed',
    OrderPaymentInitiated: 'Payment initiated',
    OrderPaymentAuthorised: 'Payment authorised',
    OrderPaid: 'Paid',
    OrderPaymentFailed: 'Payment failed',
    OrderPaymentRefunded: 'Refunded',
    OrderShippingStatusUpdated: 'Shipping update',
    OrderDelivered: 'Delivered',
    OrderCancelled: 'Order cancelled',
  };

  function typeOf(ev) {
    const t = (ev.data && ev.data['@type']) || '';
    return ev.event_type || t.slice(t.lastIndexOf('.') + 1);
  }

  function laneOf(type) {
    if (/Payment|Paid|Refund/.test(type)) return 'payment';
    if (/Shipping|Deliver|Ship/.test(type)) return 'shipping';
    return 'order';
  }

  function titleOf(type, d) {
    if (type === 'OrderShippingStatusUpdated' && d.status) return label(d.status, 'SHIPPING_STATUS_');
    return TITLES[type] || type.replace(/^Order/, '').replace(/([a-z])([A-Z])/g, '$1 $2');
  }

  // The facts worth a line on the card, in reading order.
  function detailsOf(type, d) {
    const rows = [];
    const add = (k, v) => { if (v !== undefined && v !== null && v !== '') rows.push([k, v]); };
    if (type === 'OrderPlaced') {
      add('Customer', d.customer_id);
      add('Items', String(d.item_count || (d.items || []).length));
      add('Total', d.total ? money(d.total) : '');
      add('Payment method', d.payment_method);
      if (d.shipping_address) add('Ship to', [d.shipping_address.city, d.shipping_address.country_code].filter(Boolean).join(', '));
    }
    add('Amount', d.amount ? money(d.amount) : '');
    add('Payment', d.payment_id);
    add('Authorisation', d.authorisation_code);
    add('Carrier', d.carrier);
    add('Tracking', d.tracking_number);
    add('Location', d.location);
    add('Seen by carrier', d.occurred_at ? time(d.occurred_at) : '');
    add('Reason', d.reason);
    if (d.refund_due) add('Refund due', 'yes');
    return rows;
  }

  function eventRow(ev, fresh) {
    const d = ev.data || {};
    const type = typeOf(ev);
    const lane = laneOf(type);
    const card = el('div', { class: `event ${lane}`, 'data-type': type, 'data-lane': lane, 'data-version': String(ev.version) },
      el('div', { class: 'event-title' }, el('span', { class: 'dot' }), el('span', { text: titleOf(type, d) })),
      el('dl', { class: 'event-facts' }, ...detailsOf(type, d).map(([k, v]) => el('div', {}, el('dt', { text: k }), el('dd', { text: v })))),
      el('div', { class: 'event-meta', text: [type, ev.actor ? 'by ' + ev.actor : ''].filter(Boolean).join(' · ') }));
    const when = el('div', { class: 'when' },
      el('span', { class: 'version', text: 'v' + ev.version }),
      el('time', { text: time(ev.recorded_at), dateTime: ev.recorded_at || '' }));
    const li = el('li', { class: 'row' + (fresh ? ' fresh' : ''), 'data-version': String(ev.version) }, when);
    if (lane === 'order') {
      li.append(el('div', { class: 'cell span' }, card));
    } else {
      li.append(el('div', { class: 'cell payment' }, lane === 'payment' ? card : null));
      li.append(el('div', { class: 'cell shipping' }, lane === 'shipping' ? card : null));
    }
    return li;
  }

  // ---- the order view ------------------------------------------------------------------------

  function fillSummary(o) {
    const set = (f, v) => { const e = $(`[data-field="${f}"]`, $('#summary')); if (e) e.textContent = v === undefined || v === '' ? '—' : v; };
    set('order_id', o.order_id);
    set('customer_id', o.customer_id);
    set('vendor_id', o.vendor_id);
    set('total', money(o.total));
    set('paid_amount', o.paid_amount ? money(o.paid_amount) : '—');
    set('refunded_amount', o.refunded_amount ? money(o.refunded_amount) : '—');
    set('payment_method', o.payment_method);
    set('carrier', o.carrier);
    set('tracking_number', o.tracking_number);
    set('location', o.location);
    set('created_at', time(o.created_at, false));
    set('updated_at', time(o.updated_at, false));
    set('version', o.version);
    const badge = (f, prefix, what) => {
      const e = $(`[data-field="${f}"]`, $('#summary'));
      e.textContent = (what ? what + ': ' : '') + label(o[f], prefix);
      e.className = 'badge ' + stateClass(o[f], prefix);
      e.setAttribute('data-value', o[f] || '');
    };
    badge('status', 'ORDER_STATUS_', '');
    badge('payment_status', 'PAYMENT_STATUS_', 'Payment');
    badge('shipping_status', 'SHIPPING_STATUS_', 'Shipping');
    const body = $('#items tbody');
    body.replaceChildren(...(o.items || []).map(it => el('tr', {},
      el('td', { class: 'mono', text: it.product_id }), el('td', { text: it.title || '' }),
      el('td', { class: 'num', text: String(it.quantity || 0) }), el('td', { class: 'num', text: money(it.unit_price) }),
      el('td', { class: 'num', text: money(it.line_total) }))));
    const a = o.shipping_address;
    $('#address').replaceChildren(...(a ? [el('div', { class: 'label', text: 'Ship to' }),
      ...[a.name, a.line1, a.line2, [a.postal_code, a.city].filter(Boolean).join(' '), a.region, a.country_code]
        .filter(Boolean).map(line => el('div', { text: line }))] : []));
    state.summaryVersion = Number(o.version || 0);
    $('#summary-note').hidden = true;
  }

  // Reads the summary; with minVersion the server waits briefly until its read model (fed from
  // Kafka) has caught up with the events already shown. One request at a time; a summary that
  // is still behind is asked for again by the next poll.
  async function refreshSummary(gen, minVersion) {
    if (state.summaryBusy) return;
    state.summaryBusy = true;
    try {
      const q = minVersion ? `?min_version=${minVersion}` : '';
      const o = await api(`/v1/orders/${encodeURIComponent(state.orderId)}${q}`);
      if (gen === state.gen && Number(o.version || 0) >= state.summaryVersion) fillSummary(o);
    } catch (e) {
      if (gen !== state.gen || e.status === 409) return; /* 409: not caught up yet */
      if (e.status === 404) {
        const note = $('#summary-note');
        note.textContent = 'The summary read model has not caught up with this order yet.';
        note.hidden = false;
      } else {
        showMessage('Summary: ' + e.message, 'error');
      }
    } finally {
      if (gen === state.gen) state.summaryBusy = false;
    }
  }

  function setLive(ok, text) {
    const live = $('#live');
    live.className = 'live ' + (ok ? 'on' : 'off');
    live.textContent = text;
  }

  async function poll(gen) {
    let events;
    try {
      events = (await api(`/v1/orders/${encodeURIComponent(state.orderId)}/events`)).events || [];
    } catch (e) {
      if (gen !== state.gen) return;
      if (e.status === 404 && state.lastVersion === 0) {
        show('welcome');
        showMessage(`No order with id ${state.orderId}.`, 'error');
        return;
      }
      setLive(false, 'reconnecting…');
      state.timer = setTimeout(() => poll(gen), POLL_MS);
      return;
    }
    if (gen !== state.gen) return;
    const list = $('#events');
    const first = state.lastVersion === 0;
    let newest = state.lastVersion;
    for (const ev of events) {
      const v = Number(ev.version);
      if (v <= state.lastVersion) continue;
      list.append(eventRow(ev, !first));
      newest = Math.max(newest, v);
    }
    if (first && events.length === 0) {
      show('welcome');
      showMessage(`No order with id ${state.orderId}.`, 'error');
      return;
    }
    if (newest > state.lastVersion) {
      state.lastVersion = newest;
      $('#timeline').setAttribute('data-last-version', String(newest));
    }
    if (state.lastVersion > state.summaryVersion) refreshSummary(gen, state.lastVersion);
    setLive(true, `live · ${events.length} event${events.length === 1 ? '' : 's'} · ${time(new Date().toISOString(), false).slice(11)}`);
    state.timer = setTimeout(() => poll(gen), POLL_MS);
  }

  function showOrder(id) {
    const gen = ++state.gen;
    stopPolling();
    state.orderId = id;
    state.lastVersion = 0;
    state.summaryVersion = 0;
    state.summaryBusy = false;
    $('#events').replaceChildren();
    $('#timeline').removeAttribute('data-last-version');
    for (const e of document.querySelectorAll('#summary [data-field]')) e.textContent = '…';
    $('[data-field="order_id"]', $('#summary')).textContent = id; /* known before the summary arrives */
    $('#items tbody').replaceChildren();
    $('#address').replaceChildren();
    showMessage('');
    show('order');
    setLive(true, 'loading…');
    document.title = `Order ${id} · orderd`;
    poll(gen);
  }

  // ---- the customer view ---------------------------------------------------------------------

  async function showCustomer(customer) {
    const gen = ++state.gen;
    stopPolling();
    showMessage('');
    $('#results-customer').textContent = customer;
    document.title = `Orders of ${customer} · orderd`;
    let res;
    try {
      res = await api(`/v1/orders?customer_id=${encodeURIComponent(customer)}&limit=100`);
    } catch (e) {
      if (gen === state.gen) { show('welcome'); showMessage(e.message, 'error'); }
      return;
    }
    if (gen !== state.gen) return;
    const orders = res.orders || [];
    if (!orders.length) {
      show('welcome');
      showMessage(`No orders for customer ${customer}.`, 'info');
      return;
    }
    const badge = (v, prefix) => el('span', { class: 'badge small ' + stateClass(v, prefix), text: label(v, prefix) });
    $('#orders-table tbody').replaceChildren(...orders.map(o => {
      const link = el('a', { href: '#order=' + encodeURIComponent(o.order_id), class: 'mono', text: o.order_id });
      return el('tr', { 'data-order-id': o.order_id },
        el('td', { text: time(o.created_at, false) }), el('td', {}, link),
        el('td', {}, badge(o.status, 'ORDER_STATUS_')), el('td', {}, badge(o.payment_status, 'PAYMENT_STATUS_')),
        el('td', {}, badge(o.shipping_status, 'SHIPPING_STATUS_')),
        el('td', { class: 'num', text: String(o.item_count || 0) }), el('td', { class: 'num', text: money(o.total) }));
    }));
    show('results');
  }

  // ---- routing: #order=<id> or #customer=<id> ------------------------------------------------

  function route() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.get('order')) {
      $('#q').value = h.get('order');
      showOrder(h.get('order'));
    } else if (h.get('customer')) {
      $('#q').value = h.get('customer');
      showCustomer(h.get('customer'));
    } else {
      ++state.gen;
      stopPolling();
      show('welcome');
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    const token = $('#token');
    token.value = localStorage.getItem('orderd.token') || '';
    token.addEventListener('change', () => {
      if (token.value) localStorage.setItem('orderd.token', token.value);
      else localStorage.removeItem('orderd.token');
      route();
    });
    $('#search').addEventListener('submit', ev => {
      ev.preventDefault();
      const q = $('#q').value.trim();
      if (!q) return;
      const next = (UUID.test(q) ? '#order=' : '#customer=') + encodeURIComponent(q);
      if (location.hash === next) route(); else location.hash = next;
    });
    window.addEventListener('hashchange', route);
    route();
  });
})();
