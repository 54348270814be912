// The offline base map: provinsi, kabupaten/kota and kecamatan outlines with their names, drawn as vectors from
// our own /peta/dasar cells (the packaged boundaries), so a map is never grey without a tile server. Land is
// filled from the finest level on screen (coarse outlines would misplace the coast when zoomed in), with a land-coloured
// edge that closes the slivers independent simplification leaves between neighbours.
(function () {
  "use strict";
  var ORIGIN = [94, -12], EXTENT = [48, 19], LAND = "#f6f3ea";
  // cell: size in degrees; lines/land/labels: the zooms [from, to) at which each is drawn
  var LEVELS = [
    {name: "provinsi", cell: 50, lines: [0, 9], land: [0, 7], labels: [6, 8],
     style: {color: "#4a5a6a", weight: 1.4, fill: false}},
    {name: "kabupaten_kota", cell: 4, lines: [7, 12], land: [7, 10], labels: [8.5, 10.5],
     style: {color: "#6e7b88", weight: 1, dashArray: "4 3", fill: false}},
    {name: "kecamatan", cell: 1, lines: [10, 30], land: [10, 30], labels: [11, 30],
     style: {color: "#98a2ad", weight: 0.7, fill: false}}
  ];

  function within(zoom, range) { return zoom >= range[0] && zoom < range[1]; }

  function Basemap(map, options) {
    options = options || {};
    map.createPane("land").style.zIndex = 240;
    map.createPane("basemap").style.zIndex = 250;
    map.createPane("basemap-labels").style.zIndex = 420;
    map.getPane("basemap-labels").style.pointerEvents = "none";
    this.map = map;
    this.land = !options.tiles;  // a tile layer draws its own land
    this.levels = LEVELS.map(function (spec) {
      return {spec: spec, cells: {}, codes: {},
              lines: L.geoJSON(null, {pane: "basemap", style: spec.style, interactive: false}),
              fill: L.geoJSON(null, {pane: "land", interactive: false,
                                     style: {stroke: true, color: LAND, weight: 3, fill: true, fillColor: LAND, fillOpacity: 1}}),
              labels: L.layerGroup()};
    });
    var self = this;
    map.on("moveend zoomend", function () { self.refresh(); });
    map.whenReady(function () { self.refresh(); });
  }

  function toggle(map, layer, on) {
    if (on && !map.hasLayer(layer)) { layer.addTo(map); }
    if (!on && map.hasLayer(layer)) { map.removeLayer(layer); }
  }

  Basemap.prototype.refresh = function () {
    var map = this.map, zoom = map.getZoom(), b = map.getBounds(), land = this.land;
    this.levels.forEach(function (lvl) {
      var spec = lvl.spec, lines = within(zoom, spec.lines), fill = land && within(zoom, spec.land);
      toggle(map, lvl.lines, lines);
      toggle(map, lvl.fill, fill);
      toggle(map, lvl.labels, within(zoom, spec.labels));
      if (!lines && !fill) { return; }
      var cols = Math.ceil(EXTENT[0] / spec.cell), rows = Math.ceil(EXTENT[1] / spec.cell);
      var x0 = Math.max(0, Math.floor((b.getWest() - ORIGIN[0]) / spec.cell));
      var x1 = Math.min(cols - 1, Math.floor((b.getEast() - ORIGIN[0]) / spec.cell));
      var y0 = Math.max(0, Math.floor((b.getSouth() - ORIGIN[1]) / spec.cell));
      var y1 = Math.min(rows - 1, Math.floor((b.getNorth() - ORIGIN[1]) / spec.cell));
      if ((x1 - x0 + 1) * (y1 - y0 + 1) > 24) { return; }  // too many cells: zoomed out past this level
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
      var collection = {type: "FeatureCollection", features: fresh};
      lvl.lines.addData(collection);
      lvl.fill.addData(collection);
    }).catch(function () { lvl.cells[key] = false; });
  }

  window.Basemap = Basemap;
})();
