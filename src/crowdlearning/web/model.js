// The Model page: every version, its metrics and lineage; download the champion.
"use strict";
const $ = (id) => document.getElementById(id);

// an ISO time as people read it (the exact time on hover)
const created = (iso) => `<time datetime="${CL.esc(iso)}" title="${CL.esc(new Date(iso).toString())}">${CL.when(Date.parse(iso))}</time>`;

async function load() {
  const versions = await CL.api("GET", "/api/models");
  const curve = await CL.api("GET", "/api/league/champion");
  const champ = versions.find((v) => v.champion) || versions[versions.length - 1];
  $("champion").textContent = champ.version;
  $("championWhen").innerHTML = `trained ${created(champ.created_at)} · ${champ.contributions} contribution${champ.contributions === 1 ? "" : "s"} merged`;
  $("download").href = `/api/models/${champ.version}/weights`;
  $("onnx").href = `/api/models/${champ.version}/onnx`;
  const byVersion = Object.fromEntries(curve.map((c) => [c.version, c]));
  CL.lineChart($("chart"), curve.map((c) => "v" + c.version), [
    { name: "lap completion", color: "#3fb950", values: curve.map((c) => c.lap_completion) },
    { name: "mean progress", color: "#58a6ff", values: curve.map((c) => c.mean_progress) },
    { name: "exit rate", color: "#f85149", values: curve.map((c) => c.exit_rate) }]);
  $("versions").innerHTML = "<thead><tr><th>version</th><th>parent</th><th>created</th><th>contributions</th><th>lap completion</th><th>weights</th></tr></thead><tbody>" +
    versions.map((v) => `<tr><td data-label="version">v${v.version}${v.champion ? " (champion)" : ""}</td>
      <td data-label="parent">${v.parent_version === null ? "-" : "v" + v.parent_version}</td>
      <td data-label="created">${created(v.created_at)}</td><td data-label="contributions">${v.contributions}</td>
      <td data-label="lap completion">${byVersion[v.version] ? (100 * byVersion[v.version].lap_completion).toFixed(0) + "%" : "-"}</td>
      <td data-label="weights"><a href="/api/models/${v.version}/weights">safetensors</a> · <a href="/api/models/${v.version}/onnx">ONNX</a></td></tr>`).join("") +
    "</tbody>";
}

CL.nav("Model").then(load).catch((e) => { $("championWhen").textContent = "could not load: " + CL.plain(e.message); });
