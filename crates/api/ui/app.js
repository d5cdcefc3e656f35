/* Steward web UI: plain JS, no dependencies.
 * Every API-provided string is rendered with textContent / text nodes, never innerHTML. */
(function () {
  'use strict';

  var TOKEN_KEY = 'steward.token';
  var REFRESH_MS = 2000;
  var ROUTES = ['overview', 'sources', 'versions', 'workflow'];
  var SVG_NS = 'http://www.w3.org/2000/svg';

  var state = {
    route: 'overview',
    authed: false,
    inflight: false,
    pollError: null,
    actionError: null,
    diffSel: null,          // {id, against}
    expanded: {},           // cycle id -> true
    chartSig: null,
    busy: false             // a rollout/apply call is running
  };

  // ---------- tiny DOM helpers ----------
  function $(id) { return document.getElementById(id); }

  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
        var v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = String(v);
        else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }

  function svg(tag, attrs) {
    var el = document.createElementNS(SVG_NS, tag);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) {
        if (k === 'text') el.textContent = String(attrs[k]);
        else el.setAttribute(k, String(attrs[k]));
      }
    }
    return el;
  }

  function setText(el, text) {
    text = text === null || text === undefined ? '' : String(text);
    if (el.textContent !== text) el.textContent = text;
  }

  function setClass(el, cls) { if (el.className !== cls) el.className = cls; }

  function show(el, visible) {
    if (visible && el.hidden) el.hidden = false;
    else if (!visible && !el.hidden) el.hidden = true;
  }

  function setBadge(el, value, prefix) {
    value = value || 'unknown';
    setText(el, value);
    setClass(el, 'badge ' + (prefix || 'badge-') + String(value).replace(/[^a-z_]/gi, ''));
  }

  /* Keyed reconciliation of `parent`'s children with `items`: existing nodes
   * are updated in place (no flicker, selection/expansion preserved). Children
   * without data-key (e.g. a thead) are left alone and stay first. */
  function syncChildren(parent, items, keyOf, build, update) {
    var existing = {};
    var keys = {};
    var i, el;
    for (i = 0; i < items.length; i++) keys[String(keyOf(items[i]))] = true;
    var kids = Array.prototype.slice.call(parent.children);
    for (i = 0; i < kids.length; i++) {
      el = kids[i];
      if (el.dataset.key === undefined) continue;
      if (keys[el.dataset.key] && !existing[el.dataset.key]) existing[el.dataset.key] = el;
      else parent.removeChild(el);
    }
    var cursor = nextKeyed(parent.firstElementChild, true);
    for (i = 0; i < items.length; i++) {
      var key = String(keyOf(items[i]));
      el = existing[key];
      if (!el) { el = build(items[i]); el.dataset.key = key; }
      update(el, items[i]);
      if (el === cursor) cursor = nextKeyed(cursor.nextElementSibling, true);
      else parent.insertBefore(el, cursor);
    }
  }

  function nextKeyed(el) {
    while (el && el.dataset.key === undefined) el = el.nextElementSibling;
    return el;
  }

  // ---------- formatting ----------
  function pad(n, w) { n = String(n); while (n.length < (w || 2)) n = '0' + n; return n; }

  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '–';
    var d = new Date(ms);
    if (isNaN(d.getTime())) return '–';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtClock(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtDur(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return '–';
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    var s = Math.round(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
    return Math.floor(s / 3600) + 'h ' + pad(Math.floor((s % 3600) / 60)) + 'm';
  }

  function fmtAgo(ms) {
    if (ms === null || ms === undefined) return '';
    var d = Date.now() - ms;
    if (d < 0) d = 0;
    if (d < 60000) return Math.round(d / 1000) + 's ago';
    if (d < 3600000) return Math.round(d / 60000) + 'm ago';
    if (d < 86400000) return Math.round(d / 3600000) + 'h ago';
    return Math.round(d / 86400000) + 'd ago';
  }

  function fmtNum(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'number') return String(v);
    if (Math.abs(v) >= 100 || v === Math.round(v)) return String(Math.round(v));
    return v.toFixed(2);
  }

  function fmtMs(v) { return v === null || v === undefined ? '–' : fmtNum(v) + ' ms'; }

  function rolloutText(r) {
    if (!r || typeof r !== 'object') return 'unexpected response';
    var s = (r.outcome || 'unknown') + ' ' + (r.version || '');
    if (r.restored) s += ' (restored ' + r.restored + ')';
    if (r.reason) s += ': ' + r.reason;
    if (r.hold) s += ' [hold on ' + (r.hold.version || '?') + ']';
    return s;
  }

  // ---------- errors ----------
  function renderErrors() {
    var parts = [];
    if (state.actionError) parts.push(state.actionError);
    if (state.pollError) parts.push(state.pollError);
    setText($('error-text'), parts.join(' · '));
    show($('error'), parts.length > 0);
  }
  function setPollError(msg) { state.pollError = msg; renderErrors(); }
  function setActionError(msg) { state.actionError = msg; renderErrors(); }

  // ---------- API ----------
  function ApiError(status, message, body) {
    this.status = status; this.message = message; this.body = body;
  }
  ApiError.prototype = Object.create(Error.prototype);

  /* Returns the parsed JSON body. Non-2xx statuses listed in `accept` are
   * returned as {status, body} wrappers through opts.raw. */
  function api(method, path, body, opts) {
    opts = opts || {};
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) { requireLogin(null); return Promise.reject(new ApiError(401, 'not signed in')); }
    var init = {
      method: method,
      headers: { 'Authorization': 'Bearer ' + token, 'Accept': 'application/json' },
      cache: 'no-store',
      credentials: 'omit'
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
        if (resp.status === 401) {
          requireLogin('The token was rejected or has expired. Sign in again.');
          throw new ApiError(401, 'unauthorized', data);
        }
        var accept = opts.accept || [];
        if (resp.ok || accept.indexOf(resp.status) >= 0) {
          return opts.raw ? { status: resp.status, body: data } : data;
        }
        var msg = (data && typeof data.error === 'string') ? data.error : (text || resp.statusText);
        throw new ApiError(resp.status, method + ' ' + path.split('?')[0] + ' failed (' + resp.status + '): ' + msg, data);
      });
    }, function (err) {
      throw new ApiError(0, 'cannot reach Steward: ' + (err && err.message ? err.message : err));
    });
  }

  // ---------- auth ----------
  function requireLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.authed = false;
    state.pollError = null; state.actionError = null;
    renderErrors();
    show($('nav'), false);
    show($('session-info'), false);
    ROUTES.forEach(function (r) { show($('view-' + r), false); });
    show($('login-view'), true);
    var m = $('login-message');
    setText(m, message || '');
    show(m, !!message);
    var t = $('token');
    if (document.activeElement !== t) { t.value = ''; t.focus(); }
  }

  function enterApp() {
    state.authed = true;
    show($('login-view'), false);
    show($('nav'), true);
    show($('session-info'), true);
    route();
  }

  function onLogin(ev) {
    ev.preventDefault();
    var v = $('token').value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    $('token').value = '';
    $('login').disabled = true;
    api('GET', '/api/v1/overview').then(function () {
      enterApp();
    }, function (err) {
      if (err.status !== 401) {
        // Token may be fine, the server just failed: go in and show the error.
        enterApp();
        setPollError(err.message);
      }
    }).then(function () { $('login').disabled = false; });
  }

  // ---------- routing / refresh ----------
  function currentRoute() {
    var r = (location.hash || '').replace(/^#\/?/, '');
    return ROUTES.indexOf(r) >= 0 ? r : 'overview';
  }

  function route() {
    state.route = currentRoute();
    ROUTES.forEach(function (r) {
      show($('view-' + r), state.authed && r === state.route);
      var a = $('nav-' + r);
      if (r === state.route) { a.classList.add('active'); a.setAttribute('aria-current', 'page'); }
      else { a.classList.remove('active'); a.removeAttribute('aria-current'); }
    });
    document.title = 'Steward · ' + state.route;
    if (state.authed) refresh(true);
  }

  var loaders = {
    overview: loadOverview,
    sources: loadSources,
    versions: loadVersions,
    workflow: loadWorkflow
  };

  var pending = false;
  function refresh(force) {
    if (!state.authed) return;
    if (!force && document.hidden) return;
    if (state.inflight) { if (force) pending = true; return; }
    state.inflight = true;
    var r = state.route;
    var p;
    try { p = loaders[r](); } catch (e) { p = Promise.reject(e); }
    Promise.resolve(p).then(function () {
      setPollError(null);
      $('view-' + r).setAttribute('data-loaded', '1');
      setText($('hdr-updated'), 'updated ' + fmtClock(Date.now()));
    }, function (err) {
      if (err && err.status === 401) return;
      setPollError(err && err.message ? err.message : String(err));
      if (typeof console !== 'undefined') console.error(err);
    }).then(function () {
      state.inflight = false;
      if (pending) { pending = false; refresh(true); }
    });
  }

  function updateHeader(ov) {
    setBadge($('hdr-state'), ov.pipeline_state);
    setText($('hdr-node'), ov.node ? ov.node + ' · ' + (ov.engine || '') : '');
  }

  // ---------- overview ----------
  function loadOverview() {
    return Promise.all([
      api('GET', '/api/v1/overview'),
      api('GET', '/api/v1/health'),
      api('GET', '/api/v1/e2e?limit=120')
    ]).then(function (res) {
      renderOverview(res[0] || {});
      renderHealth(res[1] || {});
      renderE2e(res[2] || {});
    });
  }

  function renderHold(hold, box, versionEl, reasonEl, sinceEl) {
    show(box, !!hold);
    if (!hold) return;
    setText(versionEl, hold.version || '?');
    setText(reasonEl, hold.reason || '');
    if (sinceEl) setText(sinceEl, fmtTime(hold.since_ms) + ' (' + fmtAgo(hold.since_ms) + ')');
  }

  function renderOverview(ov) {
    updateHeader(ov);
    setBadge($('ov-state'), ov.pipeline_state);
    setText($('ov-node'), ov.node || '–');
    setText($('ov-engine'), 'engine: ' + (ov.engine || '–'));
    var a = ov.applied;
    setText($('ov-applied'), a ? a.id : 'none');
    setText($('ov-applied-sub'), a ? 'gen ' + a.generation + (a.applied_ms ? ' · applied ' + fmtAgo(a.applied_ms) : '') : 'no config applied yet');
    var src = ov.sources || {};
    setText($('ov-sources'), (src.active || 0) + ' active');
    setText($('ov-sources-sub'), (src.draining || 0) + ' draining');
    setText($('ov-e2e'), fmtMs(ov.last_e2e_latency_ms));
    setText($('ov-e2e-sub'), ov.last_e2e_at_ms ? fmtTime(ov.last_e2e_at_ms) + ' (' + fmtAgo(ov.last_e2e_at_ms) + ')' : 'no probe yet');
    var c = ov.last_cycle;
    setText($('ov-cycle'), c ? '#' + c.id + ' ' + c.status : '–');
    setText($('ov-cycle-sub'), c ? (c.outcome || c.trigger || '') + ' · ' + fmtAgo(c.started_ms) : 'no cycle yet');
    renderHold(ov.hold, $('hold'), $('hold-version'), $('hold-reason'), $('hold-since'));

    var alerts = ov.alerts_firing || [];
    syncChildren($('alerts'), alerts,
      function (al) { return (al.name || '') + '|' + (al.check || '') + '|' + (al.node || '') + '|' + (al.starts_ms || ''); },
      function () {
        return h('li', { 'class': 'alert' },
          h('div', { 'class': 'alert-head' },
            h('span', { 'class': 'badge' }), ' ',
            h('strong', { 'class': 'alert-name' }), ' ',
            h('span', { 'class': 'muted small alert-meta' })),
          h('div', { 'class': 'alert-summary' }),
          h('div', { 'class': 'alert-evidence muted small mono' }));
      },
      function (li, al) {
        setBadge(li.querySelector('.badge'), al.severity, 'badge-sev-');
        setText(li.querySelector('.alert-name'), al.name);
        setText(li.querySelector('.alert-meta'), (al.check || '') + ' on ' + (al.node || '?') + ' · since ' + fmtTime(al.starts_ms));
        setText(li.querySelector('.alert-summary'), al.summary);
        setText(li.querySelector('.alert-evidence'), al.evidence);
      });
    show($('alerts-empty'), alerts.length === 0);
  }

  function renderHealth(hl) {
    var checks = hl.checks || [];
    setText($('health-observed'), hl.observed_ms ? '· ' + fmtAgo(hl.observed_ms) : '');
    syncChildren($('health-table').tBodies[0], checks,
      function (c) { return c.name; },
      function () { return h('tr', null, h('td', { 'class': 'mono' }), h('td', null, h('span', { 'class': 'badge' })), h('td', { 'class': 'num' }), h('td', { 'class': 'evidence' }), h('td', { 'class': 'nowrap' })); },
      function (tr, c) {
        var td = tr.cells;
        setText(td[0], c.name);
        setBadge(td[1].firstChild, c.status);
        setText(td[2], fmtNum(c.value));
        setText(td[3], c.evidence);
        setText(td[4], fmtTime(c.observed_ms));
      });
    show($('health-empty'), checks.length === 0);
  }

  // ---------- e2e chart (hand-drawn SVG) ----------
  function niceMax(v) {
    if (!(v > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log(v) / Math.LN10));
    var steps = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function drawChart(points, opts) {
    var W = 720, H = 150, L = 52, R = 12, T = 22, B = 22;
    var pw = W - L - R, ph = H - T - B;
    var n = points.length;
    var vals = points.map(opts.value);
    var max = 0;
    vals.forEach(function (v) { if (v !== null && v !== undefined && v > max) max = v; });
    var ymax = niceMax(max);
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, 'class': 'chart ' + opts.cls, role: 'img', 'aria-label': opts.title });
    root.appendChild(svg('text', { x: L, y: 14, 'class': 'chart-title', text: opts.title }));
    root.appendChild(svg('text', { x: W - R, y: 14, 'class': 'chart-last', 'text-anchor': 'end', text: opts.lastLabel }));
    function y(v) { return T + ph - (v / ymax) * ph; }
    function x(i) { return n <= 1 ? L + pw / 2 : L + (i / (n - 1)) * pw; }
    [0, 0.5, 1].forEach(function (f) {
      var yy = y(ymax * f);
      root.appendChild(svg('line', { x1: L, x2: W - R, y1: yy, y2: yy, 'class': f === 0 ? 'axis' : 'grid' }));
      root.appendChild(svg('text', { x: L - 6, y: yy + 4, 'class': 'tick', 'text-anchor': 'end', text: fmtNum(ymax * f) }));
    });
    root.appendChild(svg('text', { x: L, y: H - 6, 'class': 'tick', text: fmtClock(points[0].at_ms) }));
    if (n > 1) root.appendChild(svg('text', { x: W - R, y: H - 6, 'class': 'tick', 'text-anchor': 'end', text: fmtClock(points[n - 1].at_ms) }));

    if (opts.type === 'bar') {
      var bw = Math.max(1, Math.min(18, (pw / Math.max(n, 1)) * 0.7));
      vals.forEach(function (v, i) {
        if (v === null || v === undefined) return;
        var yy = y(v);
        var r = svg('rect', { x: (x(i) - bw / 2).toFixed(1), y: yy.toFixed(1), width: bw.toFixed(1), height: Math.max(0, T + ph - yy).toFixed(1), 'class': 'bar' });
        r.appendChild(svg('title', { text: fmtTime(points[i].at_ms) + ': ' + fmtNum(v) + ' ' + opts.unit }));
        root.appendChild(r);
      });
    } else {
      var d = '', pen = false;
      vals.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? 'L' : 'M') + x(i).toFixed(1) + ' ' + y(v).toFixed(1) + ' ';
        pen = true;
      });
      if (d) root.appendChild(svg('path', { d: d, 'class': 'line' }));
      vals.forEach(function (v, i) {
        var ok = points[i].ok !== false;
        if (v === null || v === undefined) {
          if (ok) return;
          var m = svg('path', { d: 'M' + (x(i) - 3).toFixed(1) + ' ' + (T + ph - 3) + ' l6 0 l-3 -6 z', 'class': 'fail-mark' });
          m.appendChild(svg('title', { text: fmtTime(points[i].at_ms) + ': probe failed' }));
          root.appendChild(m);
          return;
        }
        var c = svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: n > 60 ? 1.6 : 2.6, 'class': ok ? 'dot' : 'dot fail' });
        c.appendChild(svg('title', { text: fmtTime(points[i].at_ms) + ': ' + fmtNum(v) + ' ' + opts.unit + (ok ? '' : ' (failed)') }));
        root.appendChild(c);
      });
    }
    return root;
  }

  function renderE2e(series) {
    var pts = (series && series.points) || [];
    var box = $('e2e-chart');
    var sig = pts.length ? pts.length + ':' + pts[0].at_ms + ':' + pts[pts.length - 1].at_ms + ':' + pts[pts.length - 1].latency_ms + ':' + pts[pts.length - 1].lines_accepted : 'empty';
    show($('e2e-empty'), pts.length === 0);
    if (sig === state.chartSig && box.childNodes.length === (pts.length ? 2 : 0)) return;
    state.chartSig = sig;
    while (box.firstChild) box.removeChild(box.firstChild);
    if (!pts.length) return;
    var last = pts[pts.length - 1];
    box.appendChild(drawChart(pts, {
      title: 'e2e latency (ms)', unit: 'ms', cls: 'chart-latency', type: 'line',
      value: function (p) { return p.latency_ms; },
      lastLabel: 'last: ' + fmtMs(last.latency_ms) + (last.ok === false ? ' (failed)' : '')
    }));
    box.appendChild(drawChart(pts, {
      title: 'lines accepted per point', unit: 'lines', cls: 'chart-lines', type: 'bar',
      value: function (p) { return p.lines_accepted; },
      lastLabel: 'last: ' + fmtNum(last.lines_accepted)
    }));
  }

  // ---------- sources ----------
  function loadSources() {
    return api('GET', '/api/v1/sources').then(function (list) {
      list = list || [];
      var active = 0, draining = 0;
      list.forEach(function (s) { if (s.state === 'draining') draining++; else active++; });
      setText($('sources-summary'), active + ' active · ' + draining + ' draining');
      syncChildren($('sources-table').tBodies[0], list,
        function (s) { return s.id; },
        function (s) {
          var tr = h('tr', null,
            h('td', { 'class': 'mono id-cell' }), h('td'), h('td', { 'class': 'mono path' }),
            h('td', { 'class': 'labels' }), h('td', null, h('span', { 'class': 'badge' })),
            h('td', { 'class': 'nowrap' }), h('td', { 'class': 'nowrap' }));
          tr.setAttribute('data-source-id', s.id);
          return tr;
        },
        function (tr, s) {
          var td = tr.cells;
          setText(td[0], s.id); td[0].title = s.id || '';
          setText(td[1], s.origin);
          setText(td[2], s.path); td[2].title = s.path || '';
          renderLabels(td[3], s.labels || {});
          setBadge(td[4].firstChild, s.state);
          td[4].firstChild.title = s.draining_since_ms ? 'draining since ' + fmtTime(s.draining_since_ms) : '';
          setText(td[5], fmtTime(s.first_seen_ms));
          setText(td[6], fmtTime(s.updated_ms));
        });
      show($('sources-empty'), list.length === 0);
    });
  }

  function renderLabels(td, labels) {
    var keys = Object.keys(labels).sort();
    var sig = JSON.stringify(keys.map(function (k) { return [k, labels[k]]; }));
    if (td.getAttribute('data-sig') === sig) return;
    td.setAttribute('data-sig', sig);
    while (td.firstChild) td.removeChild(td.firstChild);
    keys.forEach(function (k) {
      td.appendChild(h('span', { 'class': 'chip' }, h('span', { 'class': 'chip-k' }, k), '=', h('span', { 'class': 'chip-v' }, String(labels[k]))));
      td.appendChild(document.createTextNode(' '));
    });
  }

  // ---------- versions ----------
  function loadVersions() {
    return Promise.all([
      api('GET', '/api/v1/config/versions?limit=50'),
      api('GET', '/api/v1/overview')
    ]).then(function (res) {
      var list = res[0] || [];
      var ov = res[1] || {};
      updateHeader(ov);
      renderHold(ov.hold, $('versions-hold'), $('versions-hold-version'), $('versions-hold-reason'), null);
      syncChildren($('versions-table').tBodies[0], list,
        function (v) { return v.id; },
        function (v) {
          var diffBtn = h('button', { type: 'button', 'class': 'btn btn-small diff-btn', text: 'Diff' });
          var applyBtn = h('button', { type: 'button', 'class': 'btn btn-small apply-btn', text: 'Apply' });
          var tr = h('tr', null,
            h('td', { 'class': 'num' }), h('td', { 'class': 'mono nowrap' }),
            h('td', null, h('span', { 'class': 'badge' })),
            h('td', { 'class': 'reason' }, h('div', { 'class': 'r' }), h('div', { 'class': 'f' })),
            h('td', { 'class': 'nowrap' }),
            h('td', { 'class': 'actions' }, diffBtn, ' ', applyBtn));
          tr.setAttribute('data-version', v.id);
          diffBtn.addEventListener('click', function () { selectDiff(tr._item); });
          applyBtn.addEventListener('click', function () { applyVersion(tr._item); });
          return tr;
        },
        function (tr, v) {
          tr._item = v;
          var td = tr.cells;
          setText(td[0], v.generation);
          setText(td[1], v.id); td[1].title = v.hash || '';
          setBadge(td[2].firstChild, v.status);
          setText(td[3].firstChild, v.reason || '');
          setText(td[3].lastChild, v.failure ? 'failure: ' + v.failure : '');
          show(td[3].lastChild, !!v.failure);
          setText(td[4], fmtTime(v.created_ms));
          td[4].title = v.applied_ms ? 'applied ' + fmtTime(v.applied_ms) : (v.failed_ms ? 'failed ' + fmtTime(v.failed_ms) : '');
          tr.classList.toggle('selected', !!(state.diffSel && state.diffSel.id === v.id));
          tr.classList.toggle('current', v.status === 'applied');
          var applyBtn = td[5].querySelector('.apply-btn');
          applyBtn.disabled = state.busy;
          applyBtn.title = v.status === 'applied' ? 'already applied (re-apply)' : 'roll out this version';
        });
      show($('versions-empty'), list.length === 0);
      $('rollback').disabled = state.busy || list.length === 0;
    });
  }

  function markSelected() {
    var rows = $('versions-table').tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      rows[i].classList.toggle('selected', !!(state.diffSel && state.diffSel.id === rows[i].getAttribute('data-version')));
    }
  }

  function selectDiff(v) {
    if (!v) return;
    state.diffSel = { id: v.id };
    markSelected();
    var panel = $('diff');
    show(panel, true);
    setText($('diff-from'), '…'); setText($('diff-to'), v.id);
    setText($('diff-from-meta'), ''); setText($('diff-to-meta'), 'gen ' + v.generation);
    setText($('diff-left-head'), 'from'); setText($('diff-right-head'), v.id + ' (gen ' + v.generation + ')');
    setText($('diff-stats'), 'loading…');
    clearDiffRows();
    show($('diff-message'), false);
    var want = v.id;
    api('GET', '/api/v1/config/versions/' + encodeURIComponent(v.id) + '/diff').then(function (d) {
      if (!state.diffSel || state.diffSel.id !== want) return;
      renderDiff(d || {});
    }, function (err) {
      if (!state.diffSel || state.diffSel.id !== want) return;
      setText($('diff-stats'), '');
      setText($('diff-from'), '–');
      setText($('diff-message'), err.status === 404 ? 'No previous version to compare ' + want + ' with.' : err.message);
      show($('diff-message'), true);
    });
    panel.scrollIntoView({ block: 'nearest' });
  }

  function clearDiffRows() {
    var tb = $('diff-table').tBodies[0];
    while (tb.firstChild) tb.removeChild(tb.firstChild);
  }

  var CONTEXT = 3;

  function renderDiff(d) {
    var from = d.from || {}, to = d.to || {};
    setText($('diff-from'), from.id || '?');
    setText($('diff-to'), to.id || '?');
    setText($('diff-from-meta'), 'gen ' + from.generation + ' · ' + (from.status || ''));
    setText($('diff-to-meta'), 'gen ' + to.generation + ' · ' + (to.status || ''));
    setText($('diff-left-head'), (from.id || 'from') + ' (gen ' + from.generation + ')');
    setText($('diff-right-head'), (to.id || 'to') + ' (gen ' + to.generation + ')');
    var rows = d.rows || [];
    var add = 0, del = 0, chg = 0;
    rows.forEach(function (r) { if (r.kind === 'added') add++; else if (r.kind === 'removed') del++; else if (r.kind === 'changed') chg++; });
    setText($('diff-stats'), '+' + add + ' −' + del + ' ~' + chg);
    clearDiffRows();
    var tb = $('diff-table').tBodies[0];
    if (!rows.length) {
      setText($('diff-message'), 'Both versions are empty.');
      show($('diff-message'), true);
      return;
    }
    show($('diff-message'), add + del + chg === 0);
    setText($('diff-message'), add + del + chg === 0 ? 'No differences.' : '');
    var hasChange = add + del + chg > 0;
    var i = 0, n = rows.length;
    while (i < n) {
      if (rows[i].kind !== 'same' || !hasChange) { tb.appendChild(diffRow(rows[i])); i++; continue; }
      var j = i;
      while (j < n && rows[j].kind === 'same') j++;
      var head = i === 0 ? 0 : CONTEXT;
      var tail = j === n ? 0 : CONTEXT;
      if (j - i > head + tail + 1) {
        for (var k = i; k < i + head; k++) tb.appendChild(diffRow(rows[k]));
        tb.appendChild(foldRow(rows.slice(i + head, j - tail)));
        for (k = j - tail; k < j; k++) tb.appendChild(diffRow(rows[k]));
      } else {
        for (k = i; k < j; k++) tb.appendChild(diffRow(rows[k]));
      }
      i = j;
    }
  }

  function diffRow(r) {
    var kind = ['same', 'changed', 'added', 'removed'].indexOf(r.kind) >= 0 ? r.kind : 'same';
    var hasL = r.left !== null && r.left !== undefined;
    var hasR = r.right !== null && r.right !== undefined;
    return h('tr', { 'class': 'd-' + kind },
      h('td', { 'class': 'ln' }, r.left_no === null || r.left_no === undefined ? '' : String(r.left_no)),
      h('td', { 'class': 'code left' + (hasL ? '' : ' blank') }, hasL ? String(r.left) : ''),
      h('td', { 'class': 'ln' }, r.right_no === null || r.right_no === undefined ? '' : String(r.right_no)),
      h('td', { 'class': 'code right' + (hasR ? '' : ' blank') }, hasR ? String(r.right) : ''));
  }

  function foldRow(hidden) {
    var tr = h('tr', { 'class': 'd-fold', title: 'show hidden lines' },
      h('td', { colspan: '4' }, '⋯ ' + hidden.length + ' unchanged lines (click to expand)'));
    tr.addEventListener('click', function () {
      var frag = document.createDocumentFragment();
      hidden.forEach(function (r) { frag.appendChild(diffRow(r)); });
      tr.parentNode.replaceChild(frag, tr);
    });
    return tr;
  }

  function closeDiff() {
    state.diffSel = null;
    show($('diff'), false);
    clearDiffRows();
    markSelected();
  }

  function showRollout(res, fallbackOutcome) {
    var el = $('rollout-result');
    var r = res && res.body;
    var outcome = (r && r.outcome) || fallbackOutcome || 'unknown';
    var ok = outcome === 'applied' || outcome === 'unchanged';
    el.setAttribute('data-outcome', outcome);
    setClass(el, 'rollout-result ' + (ok ? 'ok' : 'bad'));
    setText(el, rolloutText(r) + '  ·  ' + fmtClock(Date.now()));
    show(el, true);
  }

  function showRolloutError(err) {
    var el = $('rollout-result');
    el.setAttribute('data-outcome', 'error');
    setClass(el, 'rollout-result bad');
    setText(el, 'error: ' + (err && err.message ? err.message : String(err)));
    show(el, true);
  }

  function rolloutCall(path, body) {
    if (state.busy) return;
    state.busy = true;
    $('rollback').disabled = true;
    var el = $('rollout-result');
    el.removeAttribute('data-outcome');
    setClass(el, 'rollout-result pending');
    setText(el, 'working… (' + path + ')');
    show(el, true);
    setActionError(null);
    api('POST', path, body, { accept: [409], raw: true }).then(function (res) {
      showRollout(res);
    }, function (err) {
      if (err.status === 401) return;
      showRolloutError(err);
      setActionError(err.message);
    }).then(function () {
      state.busy = false;
      $('rollback').disabled = false;
      refresh(true);
    });
  }

  function applyVersion(v) {
    if (!v) return;
    if (!window.confirm('Roll out config ' + v.id + ' (generation ' + v.generation + ') to the collector?')) return;
    rolloutCall('/api/v1/config/versions/' + encodeURIComponent(v.id) + '/apply', { reason: 'applied from the web UI' });
  }

  function rollback() {
    if (!window.confirm('Roll the collector back to the previous good config? Rollouts will be held until released.')) return;
    rolloutCall('/api/v1/rollback', { reason: 'rolled back from the web UI' });
  }

  function reconcile(which) {
    var btns = [$('reconcile'), $('release-hold'), $('versions-release')];
    btns.forEach(function (b) { b.disabled = true; });
    setActionError(null);
    api('POST', '/api/v1/reconcile', {}).then(function (r) {
      var msg = 'reconcile accepted' + (r && r.released_hold ? ', hold released' : '') + ' at ' + fmtClock(Date.now());
      setText($('action-note'), msg);
      if (which === 'versions') {
        var el = $('rollout-result');
        el.setAttribute('data-outcome', 'reconcile');
        setClass(el, 'rollout-result ok');
        setText(el, msg);
        show(el, true);
      }
    }, function (err) {
      if (err.status !== 401) setActionError(err.message);
    }).then(function () {
      btns.forEach(function (b) { b.disabled = false; });
      refresh(true);
    });
  }

  // ---------- workflow ----------
  function loadWorkflow() {
    return api('GET', '/api/v1/workflow/cycles?limit=30').then(function (list) {
      list = list || [];
      syncChildren($('workflow-table'), list,
        function (c) { return c.id; },
        buildCycle,
        updateCycle);
      show($('workflow-empty'), list.length === 0);
    });
  }

  function buildCycle(c) {
    var main = h('tr', { 'class': 'cycle-row', tabindex: '0' },
      h('td', { 'class': 'tog' }, h('span', { 'class': 'caret' })),
      h('td', { 'class': 'num mono' }), h('td'), h('td', null, h('span', { 'class': 'badge' })),
      h('td', { 'class': 'nowrap' }), h('td', { 'class': 'num nowrap' }), h('td', { 'class': 'outcome' }));
    var stepsTable = h('table', { 'class': 'table steps' },
      h('thead', null, h('tr', null, h('th', { 'class': 'num', text: '#' }), h('th', { text: 'Activity' }), h('th', { 'class': 'num', text: 'Attempt' }),
        h('th', { text: 'Status' }), h('th', { text: 'Started' }), h('th', { 'class': 'num', text: 'Duration' }), h('th', { text: 'Error' }))),
      h('tbody'));
    var stepsRow = h('tr', { 'class': 'steps-row' }, h('td', { colspan: '7' }, stepsTable, h('div', { 'class': 'empty steps-empty', text: 'no steps recorded' })));
    var tb = h('tbody', { 'class': 'cycle' }, main, stepsRow);
    tb.setAttribute('data-cycle-id', String(c.id));
    function toggle() {
      var id = tb.getAttribute('data-cycle-id');
      if (state.expanded[id]) delete state.expanded[id]; else state.expanded[id] = true;
      applyExpanded(tb);
    }
    main.addEventListener('click', toggle);
    main.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } });
    return tb;
  }

  function applyExpanded(tb) {
    var open = !!state.expanded[tb.getAttribute('data-cycle-id')];
    tb.classList.toggle('open', open);
    show(tb.rows[1], open);
    tb.rows[0].setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  function updateCycle(tb, c) {
    var td = tb.rows[0].cells;
    setText(td[1], '#' + c.id);
    setText(td[2], c.trigger);
    setBadge(td[3].firstChild, c.status);
    setText(td[4], fmtTime(c.started_ms));
    var dur = c.finished_ms ? c.finished_ms - c.started_ms : (c.status === 'running' ? Date.now() - c.started_ms : null);
    setText(td[5], fmtDur(dur) + (c.finished_ms ? '' : (c.status === 'running' ? ' …' : '')));
    setText(td[6], c.outcome || (c.status === 'running' ? 'in progress' : '–'));
    var steps = c.steps || [];
    var cell = tb.rows[1].cells[0];
    syncChildren(cell.firstChild.tBodies[0], steps,
      function (s) { return s.seq + ':' + s.attempt; },
      function () { return h('tr', null, h('td', { 'class': 'num' }), h('td', { 'class': 'mono' }), h('td', { 'class': 'num' }), h('td', null, h('span', { 'class': 'badge' })), h('td', { 'class': 'nowrap' }), h('td', { 'class': 'num nowrap' }), h('td', { 'class': 'step-error' })); },
      function (tr, s) {
        var sd = tr.cells;
        setText(sd[0], s.seq);
        setText(sd[1], s.activity);
        setText(sd[2], s.attempt);
        setBadge(sd[3].firstChild, s.status);
        setText(sd[4], fmtTime(s.started_ms));
        setText(sd[5], s.duration_ms === null || s.duration_ms === undefined ? (s.status === 'running' ? fmtDur(Date.now() - s.started_ms) + ' …' : '–') : fmtDur(s.duration_ms));
        setText(sd[6], s.error || '');
      });
    show(cell.firstChild, steps.length > 0);
    show(cell.lastChild, steps.length === 0);
    applyExpanded(tb);
  }

  // ---------- wiring ----------
  function init() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', function () { requireLogin(null); });
    $('error-close').addEventListener('click', function () { state.actionError = null; state.pollError = null; renderErrors(); });
    $('reconcile').addEventListener('click', function () { reconcile('overview'); });
    $('release-hold').addEventListener('click', function () { reconcile('overview'); });
    $('versions-release').addEventListener('click', function () { reconcile('versions'); });
    $('rollback').addEventListener('click', rollback);
    $('diff-close').addEventListener('click', closeDiff);
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', function () { if (!document.hidden) refresh(false); });
    setInterval(function () { refresh(false); }, REFRESH_MS);
    if (sessionStorage.getItem(TOKEN_KEY)) enterApp();
    else requireLogin(null);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
