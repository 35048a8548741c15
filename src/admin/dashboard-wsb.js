// The dashboard's WSB tab (served at /wsb.js, loaded after the dashboard's own script, whose
// TABS, TEXT, t, el, $, api, showError and shortTime it uses): STAR's sending certificate, the
// per-supplier check "receives STAR's messages", a form that sends a message as STAR, and the deliveries
// with every attempt's outcome, live from /api/wsb/events.
"use strict";
Object.assign(TEXT.da, {
  wsb: "WSB", wsb_intro: "STAR sender beskeder til leverandørernes webhooks over mutual TLS med sit eget certifikat.",
  wsb_off: "WSB er slået fra på denne server", wsb_star: "STARs afsendercertifikat", wsb_settings: "Levering",
  wsb_retry: "Genforsøg", wsb_backoff: "Backoff", wsb_queue: "Kø", wsb_checks: "Modtager STARs beskeder",
  wsb_no_systems: "Ingen leverandør har et system registreret til WSB ([[supplier.system]] i registret).",
  wsb_c_delivered: "En besked leveret", wsb_c_duplicate: "En dublet håndteret", wsb_c_retried: "En genforsøgt besked leveret i rækkefølge",
  wsb_run_check: "Send testbeskeder", wsb_send: "Send en besked som STAR", wsb_type: "Beskedtype", wsb_to: "Modtager (orgType/orgCode)",
  wsb_cpr: "CPR", wsb_change: "Ændring", wsb_send_button: "Send", wsb_sent: "Besked {id}: {n} levering(er)",
  wsb_deliveries: "Leveringer", wsb_no_deliveries: "Ingen leveringer endnu.", wsb_state: "Tilstand", wsb_tries: "Forsøg",
  wsb_last: "Seneste udfald", wsb_next: "Næste forsøg", wsb_replay: "Send igen", wsb_attempts: "Forsøg på levering {id}",
  wsb_pick: "Vælg en levering for at se dens forsøg.", wsb_held: "holdt tilbage bag {id}", wsb_replay_of: "gentagelse af {id}",
  wsb_tls: "TLS", wsb_webhook_cert: "Webhookens certifikat",
  create: "opret", update: "opdater", delete: "slet",
});
Object.assign(TEXT.en, {
  wsb: "WSB", wsb_intro: "STAR pushes messages to the suppliers' webhooks over mutual TLS with its own certificate.",
  wsb_off: "WSB is off on this server", wsb_star: "STAR's sending certificate", wsb_settings: "Delivery",
  wsb_retry: "Retry", wsb_backoff: "Backoff", wsb_queue: "Queue", wsb_checks: "Receives STAR's messages",
  wsb_no_systems: "No supplier has a system registered for WSB ([[supplier.system]] in the registry).",
  wsb_c_delivered: "A message delivered", wsb_c_duplicate: "A duplicate handled", wsb_c_retried: "A retried one delivered in order",
  wsb_run_check: "Send test messages", wsb_send: "Send a message as STAR", wsb_type: "Message type", wsb_to: "Recipient (orgType/orgCode)",
  wsb_cpr: "CPR", wsb_change: "Change", wsb_send_button: "Send", wsb_sent: "Message {id}: {n} deliver(ies)",
  wsb_deliveries: "Deliveries", wsb_no_deliveries: "No deliveries yet.", wsb_state: "State", wsb_tries: "Tries",
  wsb_last: "Last outcome", wsb_next: "Next retry", wsb_replay: "Replay", wsb_attempts: "Attempts of delivery {id}",
  wsb_pick: "Pick a delivery to see its attempts.", wsb_held: "held back behind {id}", wsb_replay_of: "replay of {id}",
  wsb_tls: "TLS", wsb_webhook_cert: "Webhook's certificate",
  create: "create", update: "update", delete: "delete",
});

document.head.append(el("style", {}, ".wsb-form { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .4rem .8rem; align-items: center; }" +
  " .wsb-form button { justify-self: start; } #wsb-attempts { margin-top: .8rem; } #wsb-tab .cards { grid-template-columns: 1fr; }"));
const wsb = { overview: null, off: null, checks: [], deliveries: [], selected: null, attempts: [], sent: null, reload: null };

function wsbStateBadge(state) {
  const kind = state === "delivered" ? "ok" : state === "failed" || state === "dropped" ? "bad" : "warn";
  return el("span", { class: "badge " + kind }, state);
}
function wsbOutcomeBadge(outcome) {
  if (!outcome) return "";
  return el("span", { class: "badge " + (outcome === "delivered" ? "ok" : "bad") }, outcome);
}
function wsbTypeName(id) {
  const type = wsb.overview && wsb.overview.types.find(x => x.id === id);
  return type ? id + " " + type.name : String(id);
}

async function wsbLoad() {
  try {
    wsb.overview = await api("/api/wsb");
    wsb.off = null;
  } catch (error) {
    wsb.off = error.message;
    wsbRender();
    return;
  }
  const [checks, deliveries] = await Promise.all([api("/api/wsb/checks"), api("/api/wsb/deliveries?limit=100")]);
  wsb.checks = checks.suppliers;
  wsb.deliveries = deliveries.deliveries;
  wsb.overview.queue = deliveries.queue;
  if (wsb.selected !== null) wsb.attempts = (await api("/api/wsb/deliveries/" + wsb.selected)).attempts;
  wsbRender();
}
// Many events arrive together during a retry sequence: one reload for a burst.
function wsbSoon() {
  if (wsb.reload) return;
  wsb.reload = setTimeout(() => { wsb.reload = null; wsbLoad().catch(e => showError(e.message)); }, 150);
}

async function wsbSend(form) {
  const body = { type: form.type.value, recipient: form.to.value.trim(), cpr: form.cpr.value.trim(),
    change: form.change.value, origin: "dashboard" };
  try {
    const sent = await api("/api/wsb/messages", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    wsb.sent = { id: sent.message_id, n: sent.deliveries.length };
    showError("");
  } catch (error) { wsb.sent = null; showError(error.message); }
  wsbLoad().catch(e => showError(e.message));
}
async function wsbReplay(id) {
  try { await api("/api/wsb/deliveries/" + id + "/replay", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }); }
  catch (error) { showError(error.message); }
}
async function wsbRunCheck(supplier) {
  try { await api("/api/wsb/checks/" + encodeURIComponent(supplier) + "/run", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }); }
  catch (error) { showError(error.message); }
}
async function wsbSelect(id) {
  wsb.selected = id;
  wsb.attempts = (await api("/api/wsb/deliveries/" + id)).attempts;
  wsbRender();
}

function wsbRender() {
  const tab = $("wsb-tab");
  if (!tab) return;
  const old = $("wsb-send");
  const kept = old ? { type: old.type.value, to: old.to.value, cpr: old.cpr.value, change: old.change.value } : null;
  tab.replaceChildren();
  if (wsb.off !== null) {
    tab.append(el("div", { class: "empty", id: "wsb-off" }, t("wsb_off") + ": " + wsb.off));
    return;
  }
  const o = wsb.overview;
  if (!o) return;
  $("count-wsb").textContent = wsb.deliveries.filter(d => d.state !== "delivered").length;
  const s = o.settings;
  tab.append(el("p", { class: "muted" }, t("wsb_intro")),
    el("div", { class: "side" },
      el("div", { class: "box", id: "wsb-star" }, el("h3", {}, t("wsb_star")), el("dl", {},
        el("dt", {}, t("subject")), el("dd", { class: "mono" }, o.star.subject),
        el("dt", {}, t("caller_id")), el("dd", { class: "mono" }, o.star.caller_id),
        el("dt", {}, "SHA-256"), el("dd", { class: "mono", id: "wsb-star-sha256" }, o.star.sha256),
        el("dt", {}, t("valid_until")), el("dd", {}, shortTime(o.star.not_after)))),
      el("div", { class: "box" }, el("h3", {}, t("wsb_settings")), el("dl", {},
        el("dt", {}, t("wsb_retry")), el("dd", {}, s.retry),
        el("dt", {}, t("wsb_backoff")), el("dd", {}, "min(" + s.backoff_cap_seconds + ", 2ⁿ − 1) × " + s.backoff_unit_ms + " ms"),
        el("dt", {}, "Timeouts"), el("dd", {}, s.connect_timeout_ms + " / " + s.response_timeout_ms + " ms"),
        el("dt", {}, t("wsb_queue")), el("dd", { id: "wsb-queue" }, o.queue.undelivered + " / " + o.queue.capacity + " · " + o.queue.in_flight + " in flight")))));

  // The per-supplier check.
  const checks = el("div", { class: "cards", id: "wsb-checks" });
  for (const c of wsb.checks) {
    const r = c.receives;
    const item = (key, check) => el("li", { "data-check": key, class: check.passed ? "done" : "todo" },
      el("span", { class: "mark " + (check.passed ? "done" : "todo") }, check.passed ? "✓" : "○"),
      el("span", { class: "step-title" }, t(key)), el("span", { class: "evidence" }, check.note));
    checks.append(el("div", { class: "card" + (r.passed ? " complete" : ""), "data-supplier": c.supplier },
      el("h3", {}, c.supplier),
      el("div", { class: "muted" }, c.systems.map(x => x.base_url).join(", ") + " · ",
        el("span", { class: "badge " + (r.passed ? "ok" : "warn") }, t(r.passed ? "complete" : "incomplete")), " ",
        el("button", { type: "button", onclick: () => wsbRunCheck(c.supplier) }, t("wsb_run_check"))),
      el("ol", { class: "steps" }, item("wsb_c_delivered", r.delivered), item("wsb_c_duplicate", r.duplicate),
        item("wsb_c_retried", r.retried_in_order))));
  }
  const checkBox = el("div", {}, el("h3", {}, t("wsb_checks")), wsb.checks.length ? checks : el("div", { class: "empty" }, t("wsb_no_systems")));

  // Send.
  const types = o.types.map(x => el("option", { value: String(x.id) }, x.id + " " + x.name));
  const form = el("form", { id: "wsb-send", class: "wsb-form", onsubmit: (event) => { event.preventDefault(); wsbSend(event.target); } },
    el("label", { for: "wsb-type" }, t("wsb_type")), el("select", { name: "type", id: "wsb-type" }, types),
    el("label", { for: "wsb-to" }, t("wsb_to")), el("input", { name: "to", id: "wsb-to", value: "8/101", size: 8 }),
    el("label", { for: "wsb-cpr" }, t("wsb_cpr")), el("input", { name: "cpr", id: "wsb-cpr", value: "0101901234", size: 11 }),
    el("label", { for: "wsb-change" }, t("wsb_change")), el("select", { name: "change", id: "wsb-change" },
      ["update", "create", "delete"].map(c => el("option", { value: c }, t(c)))),
    el("span", {}), el("button", { class: "primary", type: "submit" }, t("wsb_send_button")),
    wsb.sent ? el("span", {}) : null, wsb.sent ? el("span", { id: "wsb-sent", class: "muted mono" }, t("wsb_sent", wsb.sent)) : null);
  if (kept) for (const [name, value] of Object.entries(kept)) form[name].value = value;
  tab.append(el("div", { class: "side" }, checkBox, el("div", {}, el("h3", {}, t("wsb_send")), form)));

  // Deliveries and the selected one's attempts.
  const rows = wsb.deliveries.map(d => el("tr", { id: "wsb-delivery-" + d.id, class: "call" + (d.id === wsb.selected ? " selected" : ""), onclick: () => wsbSelect(d.id) },
    el("td", {}, d.id), el("td", { class: "when mono" }, shortTime(d.created_at)), el("td", {}, wsbTypeName(d.type_id)),
    el("td", {}, wsbStateBadge(d.state)), el("td", {}, d.attempts), el("td", {}, wsbOutcomeBadge(d.last_outcome)),
    el("td", { class: "when mono" }, shortTime(d.next_retry) || "–"), el("td", { class: "mono" }, d.url),
    el("td", { class: "muted" }, [d.held_behind ? t("wsb_held", { id: d.held_behind }) : null, d.replay_of ? t("wsb_replay_of", { id: d.replay_of }) : null, d.origin].filter(Boolean).join("; ")),
    el("td", {}, d.state === "delivered" || d.state === "failed" || d.state === "retrying"
      ? el("button", { type: "button", onclick: (event) => { event.stopPropagation(); wsbReplay(d.id); } }, t("wsb_replay")) : "")));
  const head = el("tr", {}, ["#", t("time"), t("wsb_type"), t("wsb_state"), t("wsb_tries"), t("wsb_last"), t("wsb_next"), "URL", "", ""].map(h => el("th", {}, h)));
  tab.append(el("h3", {}, t("wsb_deliveries")),
    el("table", { id: "wsb-deliveries" }, el("thead", {}, head), el("tbody", {}, rows)));
  if (!wsb.deliveries.length) tab.append(el("div", { class: "empty" }, t("wsb_no_deliveries")));
  const detail = el("div", { id: "wsb-attempts", class: "box" });
  if (wsb.selected === null) detail.append(el("div", { class: "empty" }, t("wsb_pick")));
  else {
    detail.append(el("h3", {}, t("wsb_attempts", { id: wsb.selected })));
    const rows = wsb.attempts.map(a => {
      const cert = a.tls.server_certificate;
      return el("tr", { "data-attempt": a.number },
        el("td", {}, a.number), el("td", { class: "when mono" }, shortTime(a.started_at)), el("td", {}, wsbOutcomeBadge(a.outcome)),
        el("td", {}, a.status ? "HTTP " + a.status : "–"), el("td", { class: "when" }, (a.latency / 1000).toFixed(1) + " ms"),
        el("td", {}, a.detail),
        el("td", { class: "mono" }, (a.tls.version || "–") + (cert ? " · " + cert.subject : "")),
        el("td", { class: "when mono" }, shortTime(a.next_retry) || "–"));
    });
    const head = el("tr", {}, ["#", t("time"), t("outcome"), "HTTP", "", t("detail"), t("wsb_tls") + " · " + t("wsb_webhook_cert"), t("wsb_next")].map(h => el("th", {}, h)));
    detail.append(el("table", {}, el("thead", {}, head), el("tbody", {}, rows)));
  }
  tab.append(detail);
}

// A tab of the dashboard's own (see "tabs" there): reloaded with the others, re-rendered by the
// language switch.
TABS.wsb = { load: wsbLoad, render: wsbRender };
function wsbConnect() {
  const events = new EventSource("/api/wsb/events");
  events.addEventListener("wsb", wsbSoon);
  events.addEventListener("lagged", wsbSoon);
  events.onopen = wsbSoon;
}
// The tab's own texts arrived with this script: put them on the page.
setLang(lang);
wsbLoad().then(() => { if (wsb.off === null) wsbConnect(); }).catch(e => showError(e.message));
