// The consent page: an app (a payments API client) asks to charge the signed-in player. The
// server checks the request (GET /api/wallet/consent) and names the only two URLs this page may
// go back to; the page never builds a URL from its own query (no open redirect).
"use strict";
const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
let answer = null, key = null;

function asked() {
  const params = new URLSearchParams();
  for (const name of ["client_id", "allowance_tinybar", "return_to", "state"])
    if (query.has(name)) params.set(name, query.get(name));
  return params.toString();
}

function allowanceTinybar() {
  const hbar = parseFloat($("allowance").value);
  if (!Number.isFinite(hbar) || hbar <= 0) throw new Error("Enter an allowance in HBAR greater than 0, e.g. 2.5");
  const tinybar = Math.round(hbar * HBAR);
  if (tinybar < 1) throw new Error("The smallest allowance is 0.00000001 HBAR (1 tinybar)");
  return tinybar;
}

async function show() {
  $("problem").textContent = "";
  if (!query.get("client_id") || !query.get("return_to") || !query.get("allowance_tinybar")) {
    $("problem").textContent = "This link is incomplete: the app must name itself (client_id), " +
      "the allowance it asks (allowance_tinybar) and where to return (return_to).";
    return;
  }
  try {
    answer = await CL.api("GET", "/api/wallet/consent?" + asked());
  } catch (e) {
    $("problem").textContent = "This request cannot be answered here: " + CL.plain(e.message);
    return;
  }
  $("app").textContent = answer.client_id;
  $("asked").innerHTML = CL.money(answer.allowance_tinybar);
  $("allowance").value = String(answer.allowance_tinybar / HBAR);
  $("origin").textContent = answer.return_origin;
  const c = answer.current;
  $("current").innerHTML = !c ? "You have not allowed this app to charge you before."
    : c.status === "revoked" ? `You revoked this app before; it charged you ${CL.money(c.spent_tinybar)} in all.`
    : `Today it may charge you ${CL.money(c.allowance_tinybar)} more (${CL.money(c.spent_tinybar)} charged so far); ` +
      "allowing replaces that.";
  $("ask").hidden = false;
}

$("consentForm").onsubmit = async (e) => {
  e.preventDefault();
  $("error").textContent = "";
  if (!answer) return;
  try {
    const body = { allowance_tinybar: allowanceTinybar() };
    key = key || CL.newKey();  // a second click after a lost answer is the same grant
    $("approve").disabled = true;
    await CL.api("PUT", `/api/wallet/apps/${encodeURIComponent(answer.client_id)}`, body,
                 { "Idempotency-Key": key });
    location.assign(answer.granted_url);
  } catch (err) {
    $("approve").disabled = false;
    $("error").textContent = CL.plain(err.message);
  }
};
$("allowance").addEventListener("input", () => { key = null; });
$("decline").onclick = () => { if (answer) location.assign(answer.declined_url); };

CL.nav("").then((user) => {
  if (user) show();
  else CL.authForm($("auth"), show, "Sign in to answer the app");
});
