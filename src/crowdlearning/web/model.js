// The Model page: every version, its metrics and lineage; download the champion.
"use strict";
const $ = (id) => document.getElementById(id);

async function load() {
  const versions = await CL.api("GET", "/api/models");
  const curve = await CL.api("GET", "/api/league/champion");
  const champ = versions.find((v) => v.champion) || versions[versions.length - 1];
  $("champion").textContent = champ.version;
  $("download").href = `/api/models/${champ.version}/weights`;
  $("onnx").href = `/api/models/${champ.version}/onnx`;
  const byVersion = Object.fromEntries(curve.map((c) => [c.version, c]));
  CL.lineChart($("chart"), curve.map((c) => "v" + c.version), [
    { name: "lap completion", color: "#3fb950", values: curve.map((c) => c.lap_completion) },
    { name: "mean progress", color: "#58a6ff", values: curve.map((c) => c.mean_progress) },
    { name: "exit rate", color: "#f85149", values: curve.map((c) => c.exit_rate) }]);
  $("versions").innerHTML = "<tr><th>version</th><th>parent</th><th>created</th><th>contributions</th><th>lap completion</th><th>weights</th></tr>" +
    versions.map((v) => `<tr><td>v${v.version}${v.champion ? " (champion)" : ""}</td><td>${v.parent_version ?? "-"}</td>
      <td>${v.created_at}</td><td>${v.contributions}</td>
      <td>${byVersion[v.version] ? (100 * byVersion[v.version].lap_completion).toFixed(0) + "%" : "-"}</td>
      <td><a href="/api/models/${v.version}/weights">safetensors</a> · <a href="/api/models/${v.version}/onnx">ONNX</a></td></tr>`).join("");
}

CL.nav("Model").then(load);
