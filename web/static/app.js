// Playdoh's dashboard: reads only the JSON API (docs/dashboard.md).
'use strict';
const token = new URLSearchParams(location.search).get('token');
const q = token ? '?token=' + encodeURIComponent(token) : '';
const HISTORY = 240; // points kept in the charts (a minute at 4 per second)
const seen = new Map(); // worker label -> last view (to show lost ones)
const hist = { t: [], rate: [], queued: [] };
let lastDone = null, lastT = null;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function label(w) { return w.host + '/' + w.id; }

function chart(id, title, key, color) {
  return new uPlot({ title, width: 420, height: 180,
    series: [{}, { label: title, stroke: color, width: 2 }],
    axes: [{}, {}] }, [[], []], document.getElementById(id));
}
const charts = { rate: chart('chart-rate', 'jobs/s done', 'rate', '#3a7'),
                 queued: chart('chart-queue', 'queued jobs', 'queued', '#37a') };

function showCluster(c) {
  document.getElementById('name').textContent = c.name + ' (' + c.cluster + ', ' + c.version + ')';
  const t = c.totals;
  document.getElementById('totals').textContent = t.workers + ' workers, ' + t.cpus +
    ' CPU slots (' + t.busy + ' busy), ' + t.gpus + ' GPU slots; ' + c.queued + ' queued, ' +
    c.unfinished + ' unfinished; ' + c.counters.workers_lost + ' workers lost';
  const now = new Set();
  let done = 0;
  for (const w of c.workers) { seen.set(label(w), w); now.add(label(w)); done += w.done; }
  const body = document.querySelector('#workers tbody');
  body.replaceChildren();
  for (const [name, w] of seen) {
    const lost = !now.has(name);
    const tr = el('tr', undefined, lost ? 'lost' : '');
    tr.dataset.worker = name;
    const gpus = (w.gpu_info || []).map(g => g.name + ' ' + (g.mem / 2 ** 30).toFixed(0) + ' GiB').join(', ');
    for (const [v, cls] of [[w.id, 'text'], [w.host, 'text'], [w.platform, 'text'], [w.cpus + '+' + w.gpus + ' GPU'],
      [w.busy], [w.nodes + w.gpu_nodes], [gpus || '-', 'text'], [w.owner, 'text'],
      [w.load === null || w.load < 0 ? "-" : w.load.toFixed(2)], [(w.hb_ms / 1000).toFixed(1) + ' s'], [w.done], [w.requeued],
      [lost ? 'lost' : 'up', 'text']])
      tr.append(el('td', v, cls));
    body.append(tr);
  }
  const tsec = c.time_ms / 1000;
  if (lastT !== null && tsec > lastT) {
    hist.t.push(tsec); hist.rate.push(Math.max(0, (done - lastDone) / (tsec - lastT)));
    hist.queued.push(c.queued);
    if (hist.t.length > HISTORY) { hist.t.shift(); hist.rate.shift(); hist.queued.shift(); }
    charts.rate.setData([hist.t, hist.rate]);
    charts.queued.setData([hist.t, hist.queued]);
  }
  lastDone = done; lastT = tsec;
}

function showBatches(b) {
  const body = document.querySelector('#owners tbody');
  body.replaceChildren();
  for (const o of b.owners) {
    const all = o.queued + o.running + o.final;
    const tr = el('tr');
    for (const [v, cls] of [[o.owner || '(no key)', 'text'], [o.batches], [o.queued], [o.running], [o.final]])
      tr.append(el('td', v, cls));
    const bar = el('span', undefined, 'bar'), fill = el('span');
    fill.style.width = (all ? 100 * o.final / all : 0) + '%';
    bar.append(fill);
    const td = el('td'); td.append(bar, ' ' + (all ? Math.floor(100 * o.final / all) : 0) + ' %');
    tr.append(td);
    body.append(tr);
  }
  showFailed(b.failed || []);
}

function showFailed(list) {
  const body = document.querySelector('#failed tbody');
  body.replaceChildren();
  for (const f of list) {
    const e = f.error || {};
    const tr = el('tr');
    for (const [v, cls] of [[f.id], [f.fn, 'text'], [f.owner || '(no key)', 'text'],
                            [e.code, 'text'], [e.msg, 'text'], [e.host, 'text'], [e.slot],
                            [e.attempts]])
      tr.append(el('td', v === undefined ? '' : v, cls));
    body.append(tr);
  }
}

function showEvents(e) {
  const list = document.getElementById('events');
  list.replaceChildren();
  for (const ev of e.events.slice().reverse())
    list.append(el('li', new Date(ev.time_ms).toLocaleTimeString() + ' ' + ev.kind + ': ' + ev.text, ev.kind));
}

async function poll(path, show) {
  const r = await fetch('api/' + path + q);
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  show(await r.json());
}

async function refresh() {
  try {
    await Promise.all([poll('batches', showBatches), poll('events', showEvents)]);
  } catch (err) { document.getElementById('status').textContent = String(err); }
}

const stream = new EventSource('api/stream' + q);
stream.addEventListener('snapshot', ev => {
  document.getElementById('status').textContent = 'live';
  showCluster(JSON.parse(ev.data));
  refresh();
});
stream.onerror = () => { document.getElementById('status').textContent = 'disconnected: retrying'; };
