// Operations-centre dashboard: reports and incidents on a vector map, updated live over server-sent events.
(function () {
  "use strict";
  var el = document.getElementById("ops-map");
  if (!el || !window.L) { return; }
  var COLOURS = {banjir: "#0969da", genangan: "#54aeff", banjir_bandang: "#0a3069", longsor: "#953800",
                 gempa: "#8250df", tsunami: "#1b1f24", kebakaran: "#cf222e", erupsi: "#bc4c00", angin: "#1a7f37"};
  var filt = {hazard: el.dataset.filterHazard, source: el.dataset.filterSource, state: el.dataset.filterState};
  var csrf = el.dataset.csrf, en = el.dataset.lang === "en";
  var STATES = JSON.parse(el.dataset.states || "{}"), SOURCES = JSON.parse(el.dataset.sources || "{}");
  var SEVERITY = {Extreme: "#8b0000", Severe: "#c62828", Moderate: "#ef6c00", Minor: "#f9a825", Unknown: "#57606a"};
  function tr(id, english) { return en ? english : id; }
  var map = L.map(el, {zoomSnap: 0.5, maxZoom: 18}).setView([-2.5, 118], 5);
  var tiles = el.dataset.tiles;
  if (tiles) { L.tileLayer(tiles, {maxZoom: 18, attribution: el.dataset.tilesAttribution || ""}).addTo(map); }
  new window.Basemap(map, {tiles: !!tiles});
  map.attributionControl.addAttribution("Batas wilayah: cahyadsn/wilayah_boundaries (MIT)");
  // Active alert areas under the reports (so every report stays clickable), dashed for exercises and tests.
  map.createPane("alerts").style.zIndex = 380;
  var alertLayer = L.geoJSON(JSON.parse(el.dataset.alerts || '{"type":"FeatureCollection","features":[]}'), {
    pane: "alerts",
    style: function (f) {
      var c = SEVERITY[f.properties.severity] || SEVERITY.Unknown, real = f.properties.status === "Actual";
      return {color: c, weight: 2, fillColor: c, fillOpacity: real ? 0.18 : 0.08, dashArray: real ? null : "6 4",
              className: "alert-area"};
    },
    onEachFeature: function (f, layer) {
      layer.bindTooltip(bcDom.text((f.properties.status === "Actual" ? "" : "[" + f.properties.status.toUpperCase() + "] ") +
                                   (f.properties.headline || "")));
    }
  }).addTo(map);
  // Incident circles also sit under the reports: every report stays clickable inside its incident.
  map.createPane("incidents").style.zIndex = 390;
  var reportLayer = L.layerGroup().addTo(map), incidentLayer = L.layerGroup().addTo(map);
  var reports = {}, incidents = {}, fitted = false, fresh = 0;
  function label(state) { return STATES[state] || state; }
  var node = bcDom.el;
  function matches(r) {
    return (!filt.hazard || r.hazard === filt.hazard) && (!filt.source || r.source === filt.source) &&
           (!filt.state || r.state === filt.state);
  }
  function drawReport(r) {
    if (reports[r.id]) { reportLayer.removeLayer(reports[r.id]); delete reports[r.id]; }
    if (r.lat == null || r.lon == null || !matches(r)) { return; }
    var m = L.circleMarker([r.lat, r.lon], {radius: 5, weight: 1, color: "#fff", fillOpacity: 0.9,
      fillColor: COLOURS[r.hazard] || "#6e7781", className: "report-marker"});
    m.bindPopup(node("div", null, null, [node("b", "#" + r.id), " " + (SOURCES[r.source] || r.source) + " · " + (r.hazard || "?") +
      (r.depth_cm ? " · " + r.depth_cm + " cm" : ""), node("br"), r.text || ""]));
    m.addTo(reportLayer); reports[r.id] = m;
  }
  function drawIncident(i) {
    if (incidents[i.id]) { incidentLayer.removeLayer(incidents[i.id]); delete incidents[i.id]; }
    if (i.state === "dismissed" || (filt.hazard && i.hazard !== filt.hazard)) { return; }
    var c = L.circle([i.lat, i.lon], {radius: 300 + 60 * Math.min(i.report_count, 30), weight: 2,
      color: COLOURS[i.hazard] || "#6e7781", fillOpacity: 0.12, className: "incident-area", pane: "incidents"});
    c.bindTooltip(bcDom.text("#" + i.id + " " + i.hazard + " · " + i.report_count + " " + tr("laporan", "reports")));
    c.addTo(incidentLayer); incidents[i.id] = c;
    var row = document.querySelector("tr[data-incident='" + i.id + "']");
    if (!row) {
      var tbody = document.querySelector("#incidents tbody"), empty = tbody.querySelector("tr.empty");
      if (empty) { empty.remove(); }
      row = document.createElement("tr");
      row.setAttribute("data-incident", i.id);
      bcDom.cells(row, [i.id, i.hazard, null, i.representative_text.slice(0, 140), null, null],
                  [null, null, "count", null, "state", null]);
      tbody.insertBefore(row, tbody.firstChild);
    }
    row.querySelector(".count").textContent = i.report_count; row.querySelector(".state").textContent = label(i.state);
  }
  function addRow(r) {
    if (!matches(r) || document.querySelector("tr[data-report='" + r.id + "']")) { return; }
    var tbody = document.querySelector("#reports tbody"), tr = document.createElement("tr");
    tr.setAttribute("data-report", r.id);
    bcDom.cells(tr, [r.id, (r.received_local || {})[en ? "en" : "id"] || "", SOURCES[r.source] || r.source, r.text.slice(0, 160), label(r.state), null],
                [null, "when", null, null, "state", null]);
    tbody.insertBefore(tr, tbody.firstChild);
  }
  function load() {
    var q = window.location.search.replace(/^\?/, "");
    fetch("/api/v1/reports/export.geojson?" + q).then(function (r) { return r.json(); }).then(function (d) {
      d.features.forEach(function (f) {
        if (f.properties.kind === "report") { drawReport(f.properties); } else { drawIncident(f.properties); }
      });
      var layers = reportLayer.getLayers();
      var fit = {padding: [20, 20], maxZoom: 13};
      if (layers.length && !fitted) { map.fitBounds(L.featureGroup(layers).getBounds(), fit); fitted = true; }
      else if (!fitted && alertLayer.getLayers().length) { map.fitBounds(alertLayer.getBounds(), fit); fitted = true; }
      el.setAttribute("data-ready", "true");
    });
  }
  load();
  var status = document.getElementById("live-status"), counter = document.getElementById("live-count");
  var source = new EventSource("/api/v1/reports/stream?after_id=" + el.dataset.after);
  source.onopen = function () { status.textContent = tr("langsung", "live"); status.setAttribute("data-live", "true"); };
  source.onerror = function () { status.textContent = tr("terputus, menyambung lagi", "reconnecting"); };
  source.addEventListener("report", function (e) {
    var r = JSON.parse(e.data);
    if (!reports[r.id] && !document.querySelector("tr[data-report='" + r.id + "']")) { fresh += 1; counter.textContent = fresh; }
    drawReport(r); addRow(r);
    if (!fitted && r.lat != null) { map.setView([r.lat, r.lon], 13); fitted = true; }
  });
  source.addEventListener("incident", function (e) { drawIncident(JSON.parse(e.data)); });
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-act]");
    if (!b) { return; }
    var id = b.dataset.id, url, body = {};
    if (b.dataset.act === "draft") { url = "/api/v1/incidents/" + id + "/draft-alert"; }
    else if (b.dataset.act === "incident-state") { url = "/api/v1/incidents/" + id + "/state"; body = {state: b.dataset.state}; }
    else { url = "/api/v1/reports/" + id + "/state"; body = {state: b.dataset.state}; }
    fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                body: JSON.stringify(body)}).then(function (r) { return r.json().then(function (d) { return [r, d]; }); })
      .then(function (rd) {
        var r = rd[0], d = rd[1];
        if (!r.ok) { window.alert(d.detail || r.status); return; }
        var row = b.closest("tr");
        if (d.alert_id) { b.replaceWith(Object.assign(document.createElement("span"), {className: "chip", textContent: tr("draf #", "draft #") + d.alert_id})); }
        else if (row && d.state) { row.querySelector(".state").textContent = label(d.state); }
      });
  });
})();
