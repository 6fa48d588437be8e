// The support leads' page: plain JavaScript, no build step. Every value from the API is put in
// the page with textContent (never as HTML), so customer text cannot inject markup.
"use strict";

const state = { token: sessionStorage.getItem("retain-token") || "", page: 1, pageSize: 50,
  sort: "rank", order: "asc", me: null, total: 0, customer: null };

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut("Your token was not accepted: " + await detail(response)); throw new Error("401"); }
  if (!response.ok) throw new Error(await detail(response));
  return response;
}

async function detail(response) {
  try { const body = await response.json(); return body.detail || response.statusText; }
  catch (e) { return response.statusText; }
}

const percent = (p) => (p === null || p === undefined) ? "" : (100 * p).toFixed(1) + "%";
const money = (v) => (v === null || v === undefined) ? "" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 0 });
const day = (t) => t ? String(t).slice(0, 10) : "";

function filters() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const [key, value] of form.entries()) if (value !== "") params.set(key, value);
  return params;
}

async function loadList() {
  const params = filters();
  params.set("page", state.page); params.set("page_size", state.pageSize);
  params.set("sort", state.sort); params.set("order", state.order);
  $("list-status").textContent = "Loading…";
  const body = await (await api("api/customers?" + params)).json();
  state.total = body.total;
  const rows = $("list").querySelector("tbody");
  rows.replaceChildren();
  for (const c of body.items) {
    const tr = el("tr");
    tr.dataset.customer = c.customer_id;
    tr.tabIndex = 0;
    tr.append(el("td", c.rank), el("td", c.customer_id), el("td", percent(c.churn_probability)),
      el("td", money(c.value_at_risk)), el("td", c.risk_tier, "tier-" + c.risk_tier),
      el("td", (c.reasons || []).map((r) => r.phrase).join("; ")),
      el("td", c.recommended_action), el("td", c.owner || ""), el("td", c.outreach_status || ""),
      el("td", day(c.last_contacted_at)));
    tr.addEventListener("click", () => openCustomer(c.customer_id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openCustomer(c.customer_id); });
    rows.append(tr);
  }
  const pages = Math.max(1, Math.ceil(body.total / state.pageSize));
  $("page-info").textContent = `page ${state.page} of ${pages}`;
  $("prev").disabled = state.page <= 1;
  $("next").disabled = state.page >= pages;
  $("list-status").textContent = `${body.total} customers` + (body.total ? "" : " match these filters");
}

async function openCustomer(id) {
  const body = await (await api("api/customers/" + encodeURIComponent(id))).json();
  state.customer = id;
  const c = body.customer;
  $("detail").hidden = false;
  $("detail-title").textContent = "Customer " + c.customer_id;
  const facts = [`churn risk ${percent(c.churn_probability)}`, `value at risk ${money(c.value_at_risk)}`,
    `tier ${c.risk_tier}`, `action: ${c.recommended_action}`];
  for (const key of ["segment", "region", "plan", "owner", "outreach_status"]) if (c[key]) facts.push(`${key.replace("_", " ")} ${c[key]}`);
  if (c.control) facts.push("control group: do not contact");
  $("detail-summary").textContent = facts.join(" · ");
  const reasons = $("detail-reasons");
  reasons.replaceChildren();
  for (const r of c.reasons || []) {
    const li = el("li", r.phrase);
    if ((r.evidence || []).length) {
      const ul = el("ul", null, "evidence");
      for (const e of r.evidence) {
        const parts = [day(e.occurred_at), e.kind];
        for (const key of ["theme", "sentiment", "status", "csat"]) if (e[key] !== null && e[key] !== undefined && e[key] !== "") parts.push(`${key} ${e[key]}`);
        const item = el("li", parts.join(" · "));
        if (e.text) item.append(el("blockquote", e.text));
        ul.append(item);
      }
      li.append(ul);
    }
    reasons.append(li);
  }
  const note = $("detail-reasons-note");
  const quoted = (c.reasons || []).length;
  const withEvidence = (c.reasons || []).some((r) => (r.evidence || []).length);
  note.textContent = !quoted
    ? c.reasons_computed === false
      ? "Reasons were computed for the top of this list only (scoring.reasons_top_share); `retain explain` gives this customer's."
      : "No reason stands out: nothing in this customer's data both raises their risk and differs from the typical customer. The risk is what the model expects of customers like them."
    : withEvidence ? "" : "No ticket or comment lies behind these reasons: they come from the customer's account and activity figures.";
  note.hidden = !note.textContent;
  const history = $("detail-history").querySelector("tbody");
  history.replaceChildren();
  for (const h of body.history) {
    const tr = el("tr");
    tr.append(el("td", day(h.as_of)), el("td", percent(h.churn_probability)), el("td", h.rank), el("td", h.risk_tier));
    history.append(tr);
  }
  const outreach = $("detail-outreach");
  outreach.replaceChildren();
  for (const o of body.outreach) {
    outreach.append(el("li", [day(o.contacted_at), o.channel, o.outcome, o.contacted_by, o.notes].filter(Boolean).join(" · ")));
  }
  if (!body.outreach.length) outreach.append(el("li", "not contacted yet"));
  $("outreach-form").hidden = !(state.me && state.me.permissions.includes("log_outreach"));
  $("outreach-status").textContent = "";
  $("detail").scrollIntoView({ behavior: "smooth" });
}

async function logOutreach(event) {
  event.preventDefault();
  const form = new FormData($("outreach-form"));
  const payload = { channel: form.get("channel"), outcome: form.get("outcome"), notes: form.get("notes") || null };
  try {
    await api("api/customers/" + encodeURIComponent(state.customer) + "/outreach", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
    $("outreach-form").reset();
    await openCustomer(state.customer);
    $("outreach-status").textContent = "Logged.";
    loadList();
  } catch (e) { $("outreach-status").textContent = "Not logged: " + e.message; }
}

async function exportCsv() {
  const response = await api("api/customers/export.csv?" + filters());
  const url = URL.createObjectURL(await response.blob());
  const link = el("a"); link.href = url; link.download = "customers_at_risk.csv";
  document.body.append(link); link.click(); link.remove(); URL.revokeObjectURL(url);
}

async function showReportLink() {
  const status = await (await api("api/report/status")).json();
  $("open-report").hidden = !status.available;
  if (status.available) $("open-report").title = `KPIs, themes, churn drivers, model and drift; written ${day(status.written_at)}`;
}

async function openReport() {
  // A tab cannot carry the token: the server hands out a link that works for a few minutes.
  const link = await (await api("api/report/link", { method: "POST" })).json();
  window.open(link.url, "_blank", "noopener");
}

async function loadEffect() {
  const body = await (await api("api/outreach/effect")).json();
  const rows = $("effect-table").querySelector("tbody");
  rows.replaceChildren();
  if (body.message) { $("effect-status").textContent = body.message; return; }
  $("effect-status").textContent = `List of ${day(body.as_of)}: churn within ${body.horizon_days} days, ` +
    "customers assigned outreach against a control group held out at random" +
    (body.per_protocol ? " (and those actually contacted)." : " (intention to treat: no contact log).");
  // the first question a lead asks of the overall line: does it tell anything yet?
  const overall = (body.rows || []).find((r) => r.action === "(all actions)" && r.analysis === "intention_to_treat");
  if (overall) {
    const unclear = overall.difference === null || overall.difference === undefined || (overall.ci_low <= 0 && overall.ci_high >= 0);
    $("effect-status").textContent += " A difference below 0 means fewer customers left after outreach. " + (unclear
      ? `Overall, ${overall.n_treated} assigned against ${overall.n_control} held out cannot yet tell outreach from no outreach (the interval includes 0); more lists will.`
      : "Overall, the interval excludes 0.");
  }
  for (const r of body.rows || []) {
    const tr = el("tr");
    const ci = (r.difference === null || r.difference === undefined) ? "not measurable (a group is empty)"
      : `${percent(r.difference)} (${percent(r.ci_low)} to ${percent(r.ci_high)})`;
    const label = r.analysis === "per_protocol" ? `${r.action} (contacted)` : `${r.action} (assigned)`;
    tr.append(el("td", label), el("td", r.n_treated), el("td", percent(r.churn_rate_treated)),
      el("td", r.n_control), el("td", percent(r.churn_rate_control)), el("td", ci));
    rows.append(tr);
  }
}

async function fillChoices() {
  const body = await (await api("api/filters")).json();
  const form = $("filters");
  for (const [name, values] of Object.entries(body)) {
    const select = form.elements[name];
    if (!select || select.tagName !== "SELECT") continue;
    // a filter with nothing to choose (a flat table has no segment or region) is not shown
    select.closest("label").hidden = values.length === 0;
    // signing in again (another token, another run) starts from "any" again, not appended twice
    while (select.options.length > 1) select.remove(1);
    for (const value of values) {
      // reason signals are ids: a flat table's column "column:Contract" reads as "Contract"
      const option = el("option", name === "reason" ? value.replace(/^column:/, "").replaceAll("_", " ") : value);
      option.value = value;
      select.append(option);
    }
  }
}

async function start() {
  if (!state.token) { $("sign-in").hidden = false; $("app").hidden = true; return; }
  try {
    state.me = await (await api("api/me")).json();
  } catch (e) { return; }
  $("sign-in").hidden = true; $("app").hidden = false; $("sign-out").hidden = false;
  if (!state.me.permissions.includes("read_list")) {
    $("list-status").textContent = `Signed in as ${state.me.name} (${state.me.role}): this role cannot read the list.`;
    return;
  }
  try {
    const run = await (await api("api/runs/current")).json();
    $("run-info").textContent = `As of ${day(run.as_of)} · run ${run.id} published ${day(run.created_at)} · signed in as ${state.me.name} (${state.me.role})`;
    // what "value" means depends on the data: a purchase log's spend, a flat table's column
    if (run.value_basis) $("value-head").title = `churn risk × monthly value; monthly value: ${run.value_basis}`;
  } catch (e) { $("run-info").textContent = "No list has been published yet: run `retain score --publish`."; return; }
  showReportLink().catch(() => { $("open-report").hidden = true; });
  await fillChoices();
  await loadList();
  loadEffect().catch((e) => { $("effect-status").textContent = e.message; });
}

function signOut(message) {
  sessionStorage.removeItem("retain-token");
  state.token = "";
  $("app").hidden = true; $("sign-out").hidden = true; $("open-report").hidden = true; $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("retain-token", state.token);
    $("token").value = "";
    start();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("open-report").addEventListener("click", () => openReport().catch((e) => { $("run-info").textContent = "Report: " + e.message; }));
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); state.page = 1; loadList(); });
  $("prev").addEventListener("click", () => { state.page -= 1; loadList(); });
  $("next").addEventListener("click", () => { state.page += 1; loadList(); });
  $("export").addEventListener("click", () => exportCsv().catch((e) => { $("list-status").textContent = e.message; }));
  $("outreach-form").addEventListener("submit", logOutreach);
  $("close-detail").addEventListener("click", () => { $("detail").hidden = true; });
  for (const th of document.querySelectorAll("#list th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      state.order = state.sort === key && state.order === "asc" ? "desc" : (key === "rank" ? "asc" : "desc");
      if (state.sort === key && key !== "rank") state.order = th.getAttribute("aria-sort") === "descending" ? "asc" : "desc";
      state.sort = key;
      for (const other of document.querySelectorAll("#list th[data-sort]")) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", state.order === "asc" ? "ascending" : "descending");
      state.page = 1; loadList();
    });
  }
  start();
});
