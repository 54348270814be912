// The report form's location pin on the offline base map: tap the map, or use the phone's position.
(function () {
  "use strict";
  var el = document.getElementById("pin-map");
  if (!el || !window.L) { return; }
  var lat = document.getElementById("lat"), lon = document.getElementById("lon");
  var map = L.map(el, {maxZoom: 18}).setView([-2.5, 118], 4);
  if (window.Basemap) { new window.Basemap(map); }
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
