// The report form's location pin: tap the map, or use the phone's position; no tile server needed.
(function () {
  "use strict";
  var el = document.getElementById("pin-map");
  if (!el || !window.L) { return; }
  var lat = document.getElementById("lat"), lon = document.getElementById("lon");
  var map = L.map(el).setView([-2.5, 118], 4);
  fetch("/lapor/wilayah.geojson").then(function (r) { return r.ok ? r.json() : null; }).then(function (d) {
    if (d) { L.geoJSON(d, {style: {color: "#57606a", weight: 1, fill: false}}).addTo(map); }
  }).catch(function () {});
  var marker = null;
  function place(latlng) {
    if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
    lat.value = latlng.lat.toFixed(6); lon.value = latlng.lng.toFixed(6);
  }
  map.on("click", function (e) { place(e.latlng); });
  if (lat.value && lon.value) { place(L.latLng(+lat.value, +lon.value)); map.setView([+lat.value, +lon.value], 14); }
  else if (navigator.geolocation) {
    navigator.geolocation.getCurrentPosition(function (p) {
      map.setView([p.coords.latitude, p.coords.longitude], 15);
    }, function () {}, {timeout: 5000});
  }
  el.setAttribute("data-ready", "true");
})();
