// The offline base map: provinsi, kabupaten/kota and kecamatan outlines with their names, drawn as vectors from
// our own /peta/dasar cells (the packaged boundaries), so a map is never grey without a tile server.
(function () {
  "use strict";
  var ORIGIN = [94, -12], EXTENT = [48, 19];
  // level: cell size (degrees), the zoom from which outlines are drawn, the zooms at which names are shown
  var LEVELS = [
    {name: "provinsi", cell: 50, from: 0, labels: [4, 7], style: {color: "#4a5a6a", weight: 1.4, fill: true, fillColor: "#f6f3ea", fillOpacity: 1}},
    {name: "kabupaten_kota", cell: 4, from: 7, labels: [8, 10], style: {color: "#6e7b88", weight: 1, dashArray: "4 3", fill: false}},
    {name: "kecamatan", cell: 1, from: 10, labels: [11, 19], style: {color: "#98a2ad", weight: 0.7, fill: false}}
  ];

  function Basemap(map, options) {
    options = options || {};
    map.createPane("basemap").style.zIndex = 250;
    map.createPane("basemap-labels").style.zIndex = 420;
    map.getPane("basemap-labels").style.pointerEvents = "none";
    if (options.tiles) { LEVELS[0].style = Object.assign({}, LEVELS[0].style, {fill: false}); }
    this.map = map;
    this.levels = LEVELS.map(function (lvl) {
      return {spec: lvl, cells: {}, codes: {},
              layer: L.geoJSON(null, {pane: "basemap", style: lvl.style, interactive: false}),
              labels: L.layerGroup()};
    });
    var self = this;
    map.on("moveend zoomend", function () { self.refresh(); });
    this.refresh();
  }

  Basemap.prototype.refresh = function () {
    var map = this.map, zoom = map.getZoom(), b = map.getBounds();
    this.levels.forEach(function (lvl) {
      var spec = lvl.spec, show = zoom >= spec.from;
      if (show && !map.hasLayer(lvl.layer)) { lvl.layer.addTo(map); }
      if (!show && map.hasLayer(lvl.layer)) { map.removeLayer(lvl.layer); }
      var named = zoom >= spec.labels[0] && zoom <= spec.labels[1];
      if (named && !map.hasLayer(lvl.labels)) { lvl.labels.addTo(map); }
      if (!named && map.hasLayer(lvl.labels)) { map.removeLayer(lvl.labels); }
      if (!show) { return; }
      var cols = Math.ceil(EXTENT[0] / spec.cell), rows = Math.ceil(EXTENT[1] / spec.cell);
      var x0 = Math.max(0, Math.floor((b.getWest() - ORIGIN[0]) / spec.cell));
      var x1 = Math.min(cols - 1, Math.floor((b.getEast() - ORIGIN[0]) / spec.cell));
      var y0 = Math.max(0, Math.floor((b.getSouth() - ORIGIN[1]) / spec.cell));
      var y1 = Math.min(rows - 1, Math.floor((b.getNorth() - ORIGIN[1]) / spec.cell));
      if ((x1 - x0 + 1) * (y1 - y0 + 1) > 24) { return; }  // zoomed too far out for this level
      for (var x = x0; x <= x1; x++) {
        for (var y = y0; y <= y1; y++) { load(lvl, x, y); }
      }
    });
  };

  function load(lvl, x, y) {
    var key = x + "/" + y;
    if (lvl.cells[key]) { return; }
    lvl.cells[key] = true;
    fetch("/peta/dasar/" + lvl.spec.name + "/" + key + ".geojson").then(function (r) {
      return r.ok ? r.json() : {features: []};
    }).then(function (data) {
      var fresh = data.features.filter(function (f) { return !lvl.codes[f.properties.kode]; });
      fresh.forEach(function (f) {
        lvl.codes[f.properties.kode] = true;
        var p = f.properties.label;
        L.marker([p[1], p[0]], {pane: "basemap-labels", interactive: false, keyboard: false,
          icon: L.divIcon({className: "map-label map-label-" + lvl.spec.name, html: "<span></span>", iconSize: null})
        }).on("add", function (e) { e.target.getElement().firstChild.textContent = f.properties.nama; }).addTo(lvl.labels);
      });
      lvl.layer.addData({type: "FeatureCollection", features: fresh});
    }).catch(function () { lvl.cells[key] = false; });
  }

  window.Basemap = Basemap;
})();
