// Draws alert areas and kabupaten outlines as vector layers: works with no tile server at all.
(function () {
  "use strict";
  var COLOURS = {Extreme: "#8b0000", Severe: "#c62828", Moderate: "#ef6c00", Minor: "#f9a825", Unknown: "#57606a"};
  function draw(el, data) {
    var map = L.map(el, {scrollWheelZoom: false, attributionControl: true});
    var tiles = el.getAttribute("data-tiles");
    if (tiles) { L.tileLayer(tiles, {maxZoom: 18, attribution: el.getAttribute("data-tiles-attribution") || ""}).addTo(map); }
    map.attributionControl.addAttribution("Batas wilayah: cahyadsn/wilayah_boundaries (MIT)");
    var outlines = L.geoJSON(data, {
      filter: function (f) { return f.properties.role === "outline"; },
      style: {color: "#57606a", weight: 1, fill: false, dashArray: "3"},
      onEachFeature: function (f, layer) { layer.bindTooltip(bcDom.text(f.properties.nama)); }
    }).addTo(map);
    var targets = L.geoJSON(data, {
      filter: function (f) { return f.properties.role === "target"; },
      style: function (f) {
        var c = COLOURS[f.properties.severity] || COLOURS.Unknown;
        return {color: c, weight: 2, fillColor: c, fillOpacity: f.properties.status === "Actual" ? 0.35 : 0.15,
                dashArray: f.properties.status === "Actual" ? null : "6 4", className: "target-area"};
      },
      onEachFeature: function (f, layer) {
        if (f.properties.url) { layer.on("click", function () { window.location = f.properties.url; }); }
        layer.bindTooltip(bcDom.text(f.properties.headline || ""));
      }
    }).addTo(map);
    var bounds = targets.getLayers().length ? targets.getBounds() : outlines.getBounds();
    if (bounds.isValid()) { map.fitBounds(bounds, {padding: [16, 16]}); } else { map.setView([-2.5, 118], 4); }
    el.setAttribute("data-ready", "true");
  }
  document.querySelectorAll("[data-map]").forEach(function (el) {
    var inline = el.getAttribute("data-geojson");
    if (inline) { draw(el, JSON.parse(inline)); return; }
    fetch(el.getAttribute("data-map")).then(function (r) { return r.json(); }).then(function (d) { draw(el, d); });
  });
})();
