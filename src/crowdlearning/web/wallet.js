// The Wallet page: only the signed-in owner's money (the API never takes a user id).
"use strict";
const $ = (id) => document.getElementById(id);
const tinybar = () => Math.round(parseFloat($("amount").value) * HBAR);

async function refresh() {
  const w = await CL.api("GET", "/api/wallet");
  $("available").textContent = CL.hbar(w.available_tinybar);
  $("stake").textContent = CL.hbar(w.stake_tinybar);
  $("held").textContent = CL.hbar(w.held_tinybar);
  $("minimum").textContent = CL.hbar(w.stake_minimum_tinybar);
  $("mode").innerHTML = w.paid_mode ? '<span class="good">paid mode available</span>' : "practice only";
  $("hedera").textContent = w.hedera_account || "not linked";
  $("depositAccount").textContent = w.deposit_account;
  $("depositMemo").textContent = w.deposit_memo;
  // held stake, run by run: from a paid run's start until its verdict (cannot be unlocked)
  const holds = await CL.api("GET", "/api/wallet/holds");
  $("holds").innerHTML = holds.items.map((h) => `<li title="${h.why}">${CL.hbar(h.amount_tinybar)}
    held by ${h.run_id}: ${h.status === "playing" ? "run in progress" : "waiting for its verdict"}</li>`).join("");
  const runs = await CL.api("GET", "/api/wallet/runs?limit=20");
  $("runs").innerHTML = "<tr><th>run</th><th>track</th><th>mode</th><th>verdict</th><th>effect</th><th>money</th><th>Hedera tx</th></tr>" +
    runs.map((r) => `<tr><td class="mono">${r.run_id}</td><td>${r.track_seed}</td><td>${r.mode}${r.paid ? " · paid" : ""}</td>
      <td>${r.decision}</td><td>${r.effect_pct}%</td>
      <td>${r.reward_tinybar ? "+" + CL.hbar(r.reward_tinybar) : r.penalty_tinybar ? "-" + CL.hbar(r.penalty_tinybar) : "0"}</td>
      <td class="mono">${r.audit_tx || ""}</td></tr>`).join("");
  const h = await CL.api("GET", "/api/wallet/history?limit=50");
  $("history").innerHTML = "<tr><th>when</th><th>account</th><th>amount</th><th>what</th><th>id</th></tr>" +
    h.items.map((t) => `<tr><td>${new Date(t.created_at_ns / 1e6).toLocaleString()}</td><td>${t.account}</td>
      <td class="${t.delta_tinybar > 0 ? "good" : "bad"}">${CL.hbar(t.delta_tinybar)}</td><td>${t.memo}</td>
      <td class="mono">${t.id}</td></tr>`).join("");
}

function action(path, build) {
  return async () => {
    $("error").textContent = ""; $("note").textContent = "";
    try {
      const r = await CL.api("POST", path, build());
      if (r && r.payout_id) $("note").textContent = `payout ${r.payout_id}: ${r.state}`;
      await refresh();
    } catch (e) { $("error").textContent = e.message; }
  };
}

$("deposit").onclick = action("/api/wallet/deposit", () => ({ amount_tinybar: tinybar() }));
$("lock").onclick = action("/api/wallet/stake", () => ({ amount_tinybar: tinybar() }));
$("unlock").onclick = action("/api/wallet/unstake", () => ({ amount_tinybar: tinybar() }));
$("withdraw").onclick = action("/api/wallet/withdraw", () => ({ amount_tinybar: tinybar() }));
$("challenge").onclick = async () => {
  const c = await CL.api("POST", "/api/auth/hedera/challenge");
  $("challengeText").textContent = c.challenge;
};
$("link").onclick = action("/api/auth/hedera/link", () => ({
  account_id: $("account").value.trim(), public_key: $("pubkey").value.trim(),
  signature: $("signature").value.trim() }));

CL.nav("Wallet").then((user) => {
  const show = () => {
    $("wallet").hidden = false; refresh();
    // deposits arrive from Hedera on their own: look again every few seconds while visible
    setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 5000);
  };
  if (user) show(); else CL.authForm($("auth"), show);
});
