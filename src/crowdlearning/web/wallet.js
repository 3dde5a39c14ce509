// The Wallet page: only the signed-in owner's money (the API never takes a user id).
"use strict";
const $ = (id) => document.getElementById(id);
const ACCOUNT_ID = /^(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})$/;
let linkedAccount = null, challenge = null, showLinkSteps = false;

// set innerHTML only when it changed (the page refreshes every few seconds: a copy button being
// clicked is not replaced under the pointer, and an opened explanation stays open)
function render(id, html) {
  const el = $(id);
  if (el.dataset.html === html) return;
  const open = new Set([...el.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
  el.innerHTML = html; el.dataset.html = html;
  for (const d of el.querySelectorAll("details[data-key]")) if (open.has(d.dataset.key)) d.open = true;
}

function amountTinybar() {
  const hbar = parseFloat($("amount").value);
  if (!Number.isFinite(hbar) || hbar <= 0) throw new Error("Enter an amount in HBAR greater than 0, e.g. 2.5");
  return Math.round(hbar * HBAR);
}

const DECISIONS = { improved: ["improved", "good"], no_effect: ["no measurable effect", "muted"],
                    worse: ["made it worse", "bad"], rejected: ["rejected", "muted"] };

// a judged run's verdict in words (the judge's explanation, docs/protocol.md "Verdict
// explanations"): the money and why on the line, the comparison, how sure and where the input
// differed most one click away
function explanation(r) {
  const e = r.explanation;
  if (!e) return '<span class="detail">Judged before verdicts were explained: no details.</span>';
  const money = e.money && e.money.text ? e.money.text : "";
  const body = [[e.comparison, e.confidence_text].filter(Boolean).join(" "), e.decision_text,
                e.stretches_text].filter(Boolean).map((t) => `<p>${CL.esc(t)}</p>`).join("");
  return `<span class="detail why">${CL.esc(money)}</span>` +
    `<details class="detail explained" data-key="${CL.esc(r.run_id)}"><summary>Why this verdict</summary>${body}</details>`;
}

function runLine(r) {
  const [word, cls] = DECISIONS[r.decision] || [r.decision, "muted"];
  const money = r.reward_tinybar ? `<span class="good">${CL.money(r.reward_tinybar, true)}</span>`
    : r.penalty_tinybar ? `<span class="bad">${CL.money(-r.penalty_tinybar)}</span>` : '<span class="muted">no money moved</span>';
  const audit = r.audit_tx ? `<span class="detail">verdict in the audit trail: ${CL.esc(r.audit_tx.replace("audit:", "entry "))}</span>` : "";
  return `<li><span class="when">${CL.when(r.created_at * 1000)}</span>
    <span class="what">run ${CL.shortId(r.run_id.replace(/^run-/, ""), 8)} · track ${r.track_seed} · ${CL.esc(r.mode)}${r.paid ? ", paid" : ", practice"}:
    <span class="${cls}">${word} ${r.effect_pct > 0 ? "+" : ""}${r.effect_pct}%</span></span>
    <span class="amount">${money}</span>${explanation(r)}${audit}</li>`;
}

function eventLine(e) {
  const amount = e.change_tinybar
    ? `<span class="${e.change_tinybar > 0 ? "good" : "bad"}">${CL.money(e.change_tinybar, true)}</span>`
    : `<span class="muted" title="moved between your own balances">${CL.money(e.amount_tinybar)} moved</span>`;
  return `<li><span class="when">${CL.when(e.created_at_ns / 1e6)}</span>
    <span class="what">${CL.esc(e.text)}</span><span class="amount">${amount}</span></li>`;
}

function holdLine(h) {
  return `<li title="${CL.esc(h.why)}"><span class="what">${CL.money(h.amount_tinybar)} held by run
    ${CL.shortId(h.run_id.replace(/^run-/, ""), 8)}: ${h.status === "playing" ? "run in progress" : "waiting for its verdict"}</span></li>`;
}

// an app allowed to charge the player (GET /api/wallet/apps): what it may still take, what it
// took, and the change and revoke controls (revoked apps: what they took, when revoked)
function appLine(a, i) {
  const name = `<strong class="mono">${CL.esc(a.client_id)}</strong>`;
  if (a.status === "revoked")
    return `<li class="muted" data-client="${CL.esc(a.client_id)}"><span class="when">revoked ${CL.when(a.revoked_at_ns / 1e6)}</span>
      <span class="what">${name}: revoked, may charge nothing more</span>
      <span class="amount">spent ${CL.money(a.spent_tinybar)}</span></li>`;
  return `<li data-client="${CL.esc(a.client_id)}"><span class="when">allowed ${CL.when(a.granted_at_ns / 1e6)}</span>
    <span class="what">${name} may charge <span class="allowance">${CL.money(a.allowance_tinybar)}</span> more</span>
    <span class="amount">spent <span class="spent">${CL.money(a.spent_tinybar)}</span></span>
    <span class="detail"><label for="app-allow-${i}">New allowance</label>
      <input id="app-allow-${i}" type="number" min="0.00000001" step="any" class="amount-input"
             value="${a.allowance_tinybar / HBAR}"> HBAR
      <button type="button" class="secondary small" data-act="change" data-client="${CL.esc(a.client_id)}"
              aria-label="change the allowance of ${CL.esc(a.client_id)}">Change</button>
      <button type="button" class="secondary small" data-act="revoke" data-client="${CL.esc(a.client_id)}"
              aria-label="revoke ${CL.esc(a.client_id)}">Revoke</button></span></li>`;
}

async function refreshApps() {
  const apps = await CL.api("GET", "/api/wallet/apps");
  if ($("apps").contains(document.activeElement) && document.activeElement.tagName === "INPUT")
    return;  // not while the player types a new allowance
  render("apps", apps.items.length ? apps.items.map(appLine).join("")
    : '<li class="muted"><span>No app may charge you. An app asks on its consent page; you ' +
      "answer there.</span></li>");
}

// one Idempotency-Key per change of an app's allowance (the same on a retry of the same value)
const appKeys = {};

$("apps").addEventListener("click", async (e) => {
  const button = e.target.closest && e.target.closest("button[data-act]");
  if (!button) return;
  const client = button.dataset.client, path = `/api/wallet/apps/${encodeURIComponent(client)}`;
  $("appsError").textContent = ""; $("appsNote").textContent = "";
  try {
    if (button.dataset.act === "revoke") {
      await CL.api("DELETE", path);
      $("appsNote").textContent = `${client} may charge you nothing more.`;
    } else {
      const input = button.closest("li").querySelector("input");
      const hbar = parseFloat(input.value), tinybar = Math.round(hbar * HBAR);
      if (!Number.isFinite(hbar) || tinybar < 1)
        throw new Error("Enter an allowance in HBAR greater than 0 (revoke to allow nothing)");
      const same = appKeys[client] && appKeys[client].tinybar === tinybar;
      const key = same ? appKeys[client].key : CL.newKey();
      appKeys[client] = { key, tinybar };
      await CL.api("PUT", path, { allowance_tinybar: tinybar }, { "Idempotency-Key": key });
      delete appKeys[client];
      input.blur();
      $("appsNote").textContent = `${client} may now charge you ${CL.hbar(tinybar)} more.`;
    }
    await refreshApps();
  } catch (err) { $("appsError").textContent = CL.plain(err.message); }
});

async function refresh() {
  const w = await CL.api("GET", "/api/wallet");
  render("available", CL.money(w.available_tinybar));
  render("stake", CL.money(w.stake_tinybar));
  render("held", CL.money(w.held_tinybar));
  render("minimum", CL.money(w.stake_minimum_tinybar));
  render("mode", w.paid_mode ? '<span class="good">paid runs possible</span>'
    : "practice only: lock stake to play paid runs");
  $("depositAccount").textContent = w.deposit_account;
  $("depositMemo").textContent = w.deposit_memo;
  render("depositCopy", `<button class="secondary small copy" data-copy="${CL.esc(w.deposit_memo)}">copy memo</button>`);
  showLinked(w.hedera_account);
  const holds = await CL.api("GET", "/api/wallet/holds");
  render("holds", holds.items.map(holdLine).join(""));
  const runs = await CL.api("GET", "/api/wallet/runs?limit=20");
  render("runs", runs.length ? runs.map(runLine).join("")
    : '<li class="muted"><span>No judged runs yet: <a href="index.html">play one</a>.</span></li>');
  await refreshApps();
  const events = await CL.api("GET", "/api/wallet/events?limit=50");
  render("history", events.items.length ? events.items.map(eventLine).join("")
    : '<li class="muted"><span>Nothing yet: deposit some HBAR above to start.</span></li>');
}

function showLinked(account) {
  linkedAccount = account;
  render("hedera", account ? CL.shortId(account, 24) : 'not linked: <a href="#linkAccount">link one</a>');
  $("withdraw").disabled = !account;
  $("withdrawHint").hidden = Boolean(account);
  $("linked").hidden = !account;
  if (account) render("linked", `Linked to <strong>${CL.esc(account)}</strong>: rewards and withdrawals go there.
    <button class="secondary small" id="relink">Link a different account</button>`);
  $("linkSteps").hidden = Boolean(account) && !showLinkSteps;
}

function updateCommand() {
  const account = $("account").value.trim() || "0.0.YOUR-ACCOUNT";
  const text = challenge || "<challenge from step 1>";
  const command = `crowdlearning sign-link '${text}' --account ${account}`;
  $("signCommand").textContent = command;
  $("copyCommand").dataset.copy = command;
  $("pythonSigner").textContent = [
    "import getpass, json",
    "from hiero_sdk_python import PrivateKey",
    'key = PrivateKey.from_string(getpass.getpass("private key (hex): "))',
    `print(json.dumps({"account_id": "${account}", "public_key": key.public_key().to_string_der(),`,
    `                  "signature": key.sign(${JSON.stringify(text)}.encode()).hex()}))`].join("\n");
}

function linkBody() {
  const pasted = $("signed").value.trim();
  if (pasted) {
    let body;
    try { body = JSON.parse(pasted); } catch (e) {
      throw new Error("Paste the whole line the command printed: it starts with { and ends with }");
    }
    if (!body || !body.public_key || !body.signature) throw new Error("That line has no public key and signature");
    return { account_id: body.account_id || $("account").value.trim(), public_key: body.public_key,
             signature: body.signature };
  }
  const account = $("account").value.trim();
  if (!ACCOUNT_ID.test(account)) throw new Error("Enter your Hedera account id in step 1, e.g. 0.0.1234");
  if (!$("pubkey").value.trim() || !$("signature").value.trim())
    throw new Error("Paste the line the command printed (step 3)");
  return { account_id: account, public_key: $("pubkey").value.trim(), signature: $("signature").value.trim() };
}

// each click is one action with its own Idempotency-Key; a click that got no answer at all
// (offline) keeps its key, so clicking again with the same amount cannot act twice
const unanswered = {};

function action(path, build) {
  return async () => {
    $("error").textContent = ""; $("note").textContent = "";
    try {
      const body = build(), same = unanswered[path] && unanswered[path].json === JSON.stringify(body);
      const key = same ? unanswered[path].key : CL.newKey();
      unanswered[path] = { key, json: JSON.stringify(body) };
      let r;
      try { r = await CL.once(path, body, key); delete unanswered[path]; } catch (e) {
        if (!(e instanceof TypeError)) delete unanswered[path];
        throw e;
      }
      if (r && r.payout_id) $("note").innerHTML = `withdrawal of ${CL.money(r.amount_tinybar)} to ` +
        `${CL.esc(r.destination)} requested: it is sent to Hedera within seconds (see History)`;
      await refresh();
    } catch (e) { $("error").textContent = CL.plain(e.message); }
  };
}

$("deposit").onclick = action("/api/wallet/deposit", () => ({ amount_tinybar: amountTinybar() }));
$("lock").onclick = action("/api/wallet/stake", () => ({ amount_tinybar: amountTinybar() }));
$("unlock").onclick = action("/api/wallet/unstake", () => ({ amount_tinybar: amountTinybar() }));
$("withdraw").onclick = action("/api/wallet/withdraw", () => ({ amount_tinybar: amountTinybar() }));
$("account").addEventListener("input", updateCommand);
$("challenge").onclick = async () => {
  $("linkError").textContent = "";
  try {
    const c = await CL.api("POST", "/api/auth/hedera/challenge");
    challenge = c.challenge;
    $("challengeText").textContent = c.challenge;
    $("challengeBox").hidden = false;
    updateCommand();
  } catch (e) { $("linkError").textContent = CL.plain(e.message); }
};
$("link").onclick = async () => {
  $("linkError").textContent = "";
  try {
    await CL.api("POST", "/api/auth/hedera/link", linkBody());
    showLinkSteps = false; $("signed").value = ""; challenge = null; updateCommand();
    await refresh();
  } catch (e) { $("linkError").textContent = CL.plain(e.message); }
};
$("linked").addEventListener("click", (e) => {
  if (e.target.id === "relink") { showLinkSteps = true; showLinked(linkedAccount); }
});

CL.nav("Wallet").then((user) => {
  const show = () => {
    $("wallet").hidden = false; updateCommand();
    refresh().catch((e) => { $("error").textContent = CL.plain(e.message); });
    // deposits arrive from Hedera on their own: look again every few seconds while visible
    setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 5000);
  };
  if (user) show(); else CL.authForm($("auth"), show);
});
