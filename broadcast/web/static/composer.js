// The composer: hazard template, status theme, area by clicking admin areas / search / drawing / upload,
// live reach, previews from the server's channel renderers, save and submit through the JSON API.
(function () {
  "use strict";
  var root = document.getElementById("composer");
  if (!root) { return; }
  var K = window.Konsol;
  var $ = function (id) { return document.getElementById(id); };
  var existing = JSON.parse(root.getAttribute("data-alert") || "null");
  var hazards = JSON.parse(root.getAttribute("data-hazards") || "[]");
  var state = {codes: {}, drawn: [], circle: null, alertId: existing ? existing.id : null, hazard: null,
               mode: null, vertices: [], center: null, children: null};
  var MARKS = {Actual: "PERINGATAN NYATA / REAL ALERT", Exercise: "LATIHAN / EXERCISE — BUKAN KEJADIAN NYATA / NOT A REAL EVENT",
               Test: "UJI COBA / TEST — BUKAN KEJADIAN NYATA / NOT A REAL EVENT"};

  function timer(fn, ms) { var t = null; return function () { clearTimeout(t); t = setTimeout(fn, ms); }; }
  function status() { var el = document.querySelector("input[name=status]:checked"); return el ? el.value : null; }

  // ---- status theme
  function applyStatus() {
    var s = status();
    document.body.classList.remove("status-Actual", "status-Exercise", "status-Test");
    if (s) { document.body.classList.add("status-" + s); }
    $("status-banner").textContent = s ? MARKS[s] : "Pilih status dulu / choose a status first";
    schedulePreview();
  }
  document.querySelectorAll("input[name=status]").forEach(function (r) { r.addEventListener("change", applyStatus); });

  // ---- hazard template
  function hazardByKey(key) { return hazards.filter(function (h) { return h.key === key; })[0] || null; }
  $("hazard").addEventListener("change", function () {
    var h = hazardByKey(this.value);
    state.hazard = h ? h.key : null;
    var box = $("hazard-fields");
    box.innerHTML = "";
    $("fill-hazard").disabled = !h;
    if (!h) { return; }
    h.fields.forEach(function (f) {
      var id = "hf-" + f.name;
      var label = document.createElement("label");
      label.setAttribute("for", id);
      label.textContent = f.label_id + " / " + f.label_en + (f.required ? " *" : "");
      var input = document.createElement("input");
      input.id = id; input.name = f.name; input.placeholder = f.example; input.required = f.required;
      box.appendChild(label); box.appendChild(input);
    });
    $("category").value = h.category; $("urgency").value = h.urgency;
    $("severity").value = h.severity; $("certainty").value = h.certainty;
    $("id-event").value = h.name_id; $("en-event").value = h.name_en;
  });
  $("fill-hazard").addEventListener("click", function () {
    var fields = {};
    $("hazard-fields").querySelectorAll("input").forEach(function (i) { if (i.value.trim()) { fields[i.name] = i.value.trim(); } });
    K.api("POST", "/api/v1/hazards/" + state.hazard + "/render", {fields: fields}).then(function (res) {
      if (!res.ok) { K.show($("form-errors"), K.problemText(res.data, res.status)); return; }
      K.show($("form-errors"), "");
      res.data.forEach(function (info) {
        var p = info.language.slice(0, 2);
        ["event", "headline", "description", "instruction"].forEach(function (n) { $(p + "-" + n).value = info[n] || ""; });
      });
      var first = res.data[0];
      ["category", "urgency", "severity", "certainty"].forEach(function (n) { $(n).value = first[n]; });
      schedulePreview();
    });
  });

  // ---- map
  var map = L.map("composer-map", {scrollWheelZoom: true});
  map.attributionControl.addAttribution("Batas wilayah: cahyadsn/wilayah_boundaries (MIT)");
  map.setView([-2.5, 118], 5);
  var childLayer = null;
  var targetLayer = L.geoJSON(null, {style: {color: "#b71c1c", weight: 3, fill: true, fillOpacity: 0.12, className: "target-area"},
                                     interactive: false}).addTo(map);
  var drawLayer = L.layerGroup().addTo(map);

  function styleFor(kode) {
    var on = !!state.codes[kode];
    return {color: on ? "#b71c1c" : "#12355b", weight: on ? 3 : 1, fillColor: on ? "#e53935" : "#90a4ae",
            fillOpacity: on ? 0.45 : 0.12, className: "area-choice area-" + kode.replace(/\./g, "-") + (on ? " selected" : "")};
  }
  function restyle() {
    if (childLayer) {
      childLayer.eachLayer(function (l) {
        var kode = l.feature.properties.kode;
        l.setStyle(styleFor(kode));
        // Leaflet applies className only when a path is created; keep the selection visible to CSS and tests.
        if (l.getElement()) { l.getElement().classList.toggle("selected", !!state.codes[kode]); }
      });
    }
    document.querySelectorAll("#area-list input[type=checkbox]").forEach(function (c) { c.checked = !!state.codes[c.value]; });
  }
  function loadChildren(code) {
    var url = "/api/v1/areas/children" + (code ? "?code=" + encodeURIComponent(code) : "");
    return K.api("GET", url).then(function (res) {
      if (!res.ok) { K.show($("form-errors"), K.problemText(res.data, res.status)); return; }
      state.children = res.data;
      if (childLayer) { map.removeLayer(childLayer); }
      childLayer = L.geoJSON(res.data, {
        style: function (f) { return styleFor(f.properties.kode); },
        onEachFeature: function (f, layer) {
          layer.bindTooltip(bcDom.text(f.properties.nama), {sticky: true});
          layer.on("click", function () {
            if (state.mode) { return; }  // drawing: the click reaches the map's own handler
            toggle(f.properties.kode, f.properties.nama);
          });
          layer.on("dblclick", function (e) { L.DomEvent.stop(e); if (f.properties.has_children) { loadChildren(f.properties.kode); } });
        }
      }).addTo(map);
      targetLayer.bringToFront();
      if (childLayer.getLayers().length) { map.fitBounds(childLayer.getBounds(), {padding: [8, 8], animate: false}); }
      renderTrail(res.data);
      renderList(res.data);
      root.setAttribute("data-level", res.data.level);
      $("composer-map").setAttribute("data-ready", "true");
    });
  }
  function renderTrail(data) {
    var nav = $("area-trail");
    nav.innerHTML = "";
    var items = [{kode: "", nama: "Indonesia"}].concat(data.trail);
    items.forEach(function (t, i) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = t.nama;
      if (i === items.length - 1) { b.setAttribute("aria-current", "true"); }
      b.addEventListener("click", function () { loadChildren(t.kode || null); });
      nav.appendChild(b);
      if (i < items.length - 1) { nav.appendChild(document.createTextNode(" › ")); }
    });
    var lvl = document.createElement("span");
    lvl.className = "muted small"; lvl.textContent = "  (" + data.level_name.join(" / ") + ")";
    nav.appendChild(lvl);
  }
  function renderList(data) {
    var ul = $("area-list");
    ul.innerHTML = "";
    data.features.concat(data.without_boundary.map(function (p) { return {properties: {kode: p.kode, nama: p.nama, has_children: false, noshape: true}}; }))
      .forEach(function (f) {
        var p = f.properties;
        var li = document.createElement("li");
        var id = "ck-" + p.kode.replace(/\./g, "-");
        li.innerHTML = "<input type='checkbox'><label></label>";
        var cb = li.firstChild; cb.id = id; cb.value = p.kode; cb.checked = !!state.codes[p.kode];
        cb.addEventListener("change", function () { toggle(p.kode, p.nama); });
        var lab = li.lastChild; lab.setAttribute("for", id); lab.textContent = p.nama + " (" + p.kode + ")" + (p.noshape ? " — tanpa batas / no boundary" : "");
        if (p.has_children) {
          var b = document.createElement("button");
          b.type = "button"; b.className = "link"; b.textContent = "buka ▸";
          b.setAttribute("aria-label", "Buka wilayah di dalam " + p.nama + " / open areas inside");
          b.addEventListener("click", function () { loadChildren(p.kode); });
          li.appendChild(b);
        }
        ul.appendChild(li);
      });
  }
  function toggle(kode, nama) {
    if (state.codes[kode]) { delete state.codes[kode]; } else { state.codes[kode] = nama; }
    restyle(); renderSelected(); areaChanged();
  }
  function renderSelected() {
    var ul = $("selected-areas");
    ul.innerHTML = "";
    Object.keys(state.codes).sort().forEach(function (k) {
      var li = document.createElement("li");
      li.textContent = state.codes[k] + " (" + k + ") ";
      var b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = "hapus / remove";
      b.setAttribute("aria-label", "Hapus " + state.codes[k] + " / remove");
      b.addEventListener("click", function () { toggle(k, state.codes[k]); });
      li.appendChild(b); ul.appendChild(li);
    });
    state.drawn.forEach(function (g, i) {
      var li = document.createElement("li");
      li.textContent = "Gambar / drawn " + g.type + " #" + (i + 1) + " ";
      var b = document.createElement("button");
      b.type = "button"; b.className = "link"; b.textContent = "hapus / remove";
      b.addEventListener("click", function () { state.drawn.splice(i, 1); redrawShapes(); renderSelected(); areaChanged(); });
      li.appendChild(b); ul.appendChild(li);
    });
    if (state.circle) {
      var li = document.createElement("li");
      li.textContent = "Lingkaran / circle " + state.circle.radius_km.toFixed(2) + " km";
      ul.appendChild(li);
    }
    var names = Object.keys(state.codes).sort().map(function (k) { return state.codes[k]; });
    if (state.drawn.length || state.circle) { names.push("area yang digambar / drawn area"); }
    if (!$("area-desc").dataset.touched) { $("area-desc").value = names.join(", ").slice(0, 500); }
  }
  $("area-desc").addEventListener("input", function () { this.dataset.touched = "1"; schedulePreview(); });

  // ---- drawing: click-to-add polygon vertices; circle = centre then a point on the edge
  function redrawShapes() {
    drawLayer.clearLayers();
    state.drawn.forEach(function (g) { L.geoJSON(g, {style: {color: "#6a1b9a", weight: 2, dashArray: "4"}}).addTo(drawLayer); });
    if (state.circle) { L.circle([state.circle.lat, state.circle.lon], {radius: state.circle.radius_km * 1000, color: "#6a1b9a"}).addTo(drawLayer); }
    if (state.vertices.length) { L.polyline(state.vertices, {color: "#6a1b9a", dashArray: "2"}).addTo(drawLayer); }
  }
  function setMode(mode) {
    state.mode = mode; state.vertices = []; state.center = null;
    $("finish-drawing").hidden = mode !== "polygon";
    $("draw-hint").textContent = mode === "polygon" ? "Klik titik-titik poligon, lalu Selesai / click the vertices, then Finish"
      : mode === "circle" ? "Klik pusat, lalu klik tepi lingkaran / click the centre, then the edge" : "";
    $("composer-map").classList.toggle("drawing", !!mode);
    redrawShapes();
  }
  function mapClick(e) {
    if (state.mode === "polygon") { state.vertices.push(e.latlng); redrawShapes(); }
    else if (state.mode === "circle") {
      if (!state.center) { state.center = e.latlng; $("draw-hint").textContent = "Klik tepi lingkaran / click the edge"; return; }
      var r = map.distance(state.center, e.latlng) / 1000;
      state.circle = {lon: state.center.lng, lat: state.center.lat, radius_km: Math.max(0.05, Math.round(r * 100) / 100)};
      setMode(null); renderSelected(); areaChanged();
    }
  }
  map.on("click", function (e) { if (state.mode) { mapClick(e); } });
  $("draw-polygon").addEventListener("click", function () { setMode("polygon"); });
  $("draw-circle").addEventListener("click", function () { setMode("circle"); });
  $("finish-drawing").addEventListener("click", function () {
    if (state.vertices.length < 3) { $("draw-hint").textContent = "Perlu minimal 3 titik / needs 3 points or more"; return; }
    var ring = state.vertices.map(function (p) { return [p.lng, p.lat]; });
    ring.push(ring[0]);
    state.drawn.push({type: "Polygon", coordinates: [ring]});
    setMode(null); renderSelected(); areaChanged();
  });
  $("clear-drawn").addEventListener("click", function () { state.drawn = []; state.circle = null; setMode(null); renderSelected(); areaChanged(); });

  // ---- upload
  $("area-file").addEventListener("change", function () {
    var file = this.files[0];
    if (!file) { return; }
    var fd = new FormData(); fd.append("file", file);
    $("upload-status").textContent = "Membaca… / reading…";
    K.api("POST", "/api/v1/areas/upload", fd, true).then(function (res) {
      if (!res.ok) { $("upload-status").textContent = K.problemText(res.data, res.status); $("upload-status").className = "small fail"; return; }
      $("upload-status").className = "small";
      $("upload-status").textContent = res.data.format + ": " + res.data.shapes + " bentuk / shapes";
      state.drawn.push(res.data.geometry); redrawShapes(); renderSelected(); areaChanged();
    });
    this.value = "";
  });

  // ---- place search
  var runSearch = timer(function () {
    var q = $("place-search").value.trim();
    var ul = $("search-results");
    if (q.length < 2) { ul.innerHTML = ""; return; }
    K.api("GET", "/api/v1/areas/search?q=" + encodeURIComponent(q)).then(function (res) {
      ul.innerHTML = "";
      if (!res.ok) { return; }
      if (!res.data.length) { ul.innerHTML = "<li class='muted'>Tidak ditemukan / not found</li>"; return; }
      res.data.forEach(function (p) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button"; b.className = "link";
        b.textContent = p.label + " — " + p.level + " (" + p.kode + ")" + (p.inside_jurisdiction ? "" : " ⚠ di luar yurisdiksi / outside jurisdiction");
        b.addEventListener("click", function () {
          if (!state.codes[p.kode]) { toggle(p.kode, p.nama); }
          var parent = p.kode.split(".").slice(0, -1).join(".");
          if (parent) { loadChildren(parent); }
        });
        li.appendChild(b); ul.appendChild(li);
      });
    });
  }, 300);
  $("place-search").addEventListener("input", runSearch);

  // ---- reach (resolve) and previews
  function areaSpec() {
    var spec = {geocodes: Object.keys(state.codes).sort()};
    if (state.drawn.length) {
      spec.geometry = {type: "FeatureCollection", features: state.drawn.map(function (g) { return {type: "Feature", geometry: g, properties: {}}; })};
    }
    if (state.circle) { spec.circle = state.circle; }
    return spec;
  }
  function hasArea() { return Object.keys(state.codes).length || state.drawn.length || state.circle; }
  var resolveSeq = 0;
  var resolveNow = function () {
    var seq = ++resolveSeq;
    var box = $("reach");
    if (!hasArea()) { targetLayer.clearLayers(); box.textContent = "Jangkauan: pilih wilayah / Reach: choose an area"; box.removeAttribute("data-subscribers"); return; }
    box.textContent = "Menghitung… / computing…";
    K.api("POST", "/api/v1/areas/resolve", areaSpec()).then(function (res) {
      if (seq !== resolveSeq) { return; }
      if (!res.ok) { box.textContent = K.problemText(res.data, res.status); box.className = "reach fail"; return; }
      box.className = "reach";
      targetLayer.clearLayers();
      if (res.data.target) { targetLayer.addData(res.data.target); }
      var r = res.data.reach, subs = r.subscribers;
      var channels = Object.keys(subs).filter(function (c) { return c !== "any"; }).map(function (c) { return c + " " + subs[c].toLocaleString("id-ID"); }).join(", ");
      box.setAttribute("data-subscribers", String(subs.any));
      box.innerHTML = "";
      var strong = document.createElement("strong");
      strong.textContent = subs.any.toLocaleString("id-ID") + " pelanggan / subscribers";
      box.appendChild(strong);
      box.appendChild(document.createTextNode(" (" + channels + ") · perkiraan penduduk / est. population " + r.population.toLocaleString("id-ID")));
      res.data.warnings.forEach(function (w) { var p = document.createElement("div"); p.className = "small warn"; p.textContent = w; box.appendChild(p); });
    });
  };
  var scheduleResolve = timer(resolveNow, 300);
  function areaChanged() { scheduleResolve(); schedulePreview(); }

  function info(prefix, language) {
    var headline = $(prefix + "-headline").value.trim();
    if (!headline) { return null; }
    var out = {language: language, category: $("category").value, urgency: $("urgency").value, severity: $("severity").value,
               certainty: $("certainty").value, event: $(prefix + "-event").value.trim() || headline, headline: headline,
               description: $(prefix + "-description").value.trim(), instruction: $(prefix + "-instruction").value.trim()};
    if (state.hazard) { out.hazard = state.hazard; }
    return out;
  }
  function body() {
    var problems = [];
    var s = status();
    if (!s) { problems.push("Pilih status (Nyata/Latihan/Uji coba) / choose a status"); }
    var infos = [info("id", "id-ID"), info("en", "en-US")].filter(Boolean);
    if (!infos.length) { problems.push("Isi judul / write a headline"); }
    if (!hasArea()) { problems.push("Pilih wilayah / choose an area"); }
    var channels = Array.prototype.map.call(document.querySelectorAll("input[name=channels]:checked"), function (c) { return c.value; });
    if (!channels.length) { problems.push("Pilih minimal satu saluran / choose a channel"); }
    var area = areaSpec();
    area.area_desc = $("area-desc").value.trim() || "Wilayah terpilih / selected area";
    var expires = $("expires").value ? new Date($("expires").value).toISOString() : null;
    return {problems: problems, data: {status: s, channels: channels, expires: expires, infos: infos, areas: [area]}};
  }

  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) { e.className = cls; } if (text !== undefined) { e.textContent = text; } return e; }
  var SEVERITY_ID = {Extreme: "Ekstrem", Severe: "Parah", Moderate: "Sedang", Minor: "Ringan", Unknown: "Tidak diketahui"};
  function budgetText(m) {
    var why = m.budget_source === "severity" ? "tingkat " + (SEVERITY_ID[m.budget_severity] || m.budget_severity) + " / severity " + m.budget_severity
      : (m.budget_source === "setting" ? "pengaturan / setting" : "dipilih / chosen");
    return "Anggaran / budget: maks/max " + m.max_segments + " segmen (" + why + ") · biaya / cost ≈ " + m.cost_per_message + " " + m.currency +
      " per pesan / per message (" + m.segments + " × " + m.price_per_segment + ")";
  }
  function renderPreviews(p) {
    var box = $("previews");
    box.innerHTML = "";
    var chans = p.channels;
    var ph = p.placeholders || {};
    if (ph.verify_code) {
      var note = el("p", "small placeholders-note", "Kode verifikasi " + ph.verify_code + " dan tautan " + (ph.short_url || ph.public_url) +
        " hanya contoh (placeholder) sepanjang aslinya; nilai sebenarnya diberikan saat draf disimpan. / The verification code and link are placeholders of the real length; the real values are assigned when the draft is saved.");
      note.setAttribute("data-placeholders", "true");
      box.appendChild(note);
    }
    (p.warnings || []).forEach(function (w) { var x = el("p", "warn cap-over", w); x.setAttribute("role", "alert"); box.appendChild(x); });
    if (chans.sms) {
      var h = el("h3", "", "SMS"); box.appendChild(h);
      chans.sms.forEach(function (m) {
        var card = el("div", "preview-card sms-preview" + (m.fits ? "" : " over"));
        card.setAttribute("lang", m.language.slice(0, 2));
        card.appendChild(el("div", "meta", m.language + " · " + m.encoding + " · "));
        var seg = el("strong", "segments", m.segments + " segmen / segments");
        seg.setAttribute("data-segments", String(m.segments));
        card.firstChild.appendChild(seg);
        card.firstChild.appendChild(document.createTextNode(" · " + m.characters + " karakter / chars" + (m.truncated ? " · sebagian keterangan tidak masuk / some details left to the web page" : "") +
          ((m.placeholders || []).length ? " · berisi contoh / contains placeholders" : "")));
        card.appendChild(el("div", "meta budget", budgetText(m)));
        if (!m.action_fits) {
          var warn = el("p", "warn action-over", "Peringatan: kalimat petunjuk pertama tidak muat dalam " + m.max_segments + " segmen, jadi SMS ini dikirim " + m.segments +
            " segmen (petunjuk tidak pernah dipotong). Persingkat judul, wilayah atau kalimat itu. / Warning: the first instruction sentence does not fit " + m.max_segments +
            " segment(s), so this SMS goes out as " + m.segments + " (the instruction is never cut). Shorten the headline, area or that sentence.");
          warn.setAttribute("role", "alert");
          card.appendChild(warn);
        }
        card.appendChild(el("pre", "msg", m.text));
        box.appendChild(card);
      });
    }
    if (chans.social) {
      box.appendChild(el("h3", "", "X (" + chans.social.length + " post)"));
      chans.social.forEach(function (m) {
        var card = el("div", "preview-card x-preview" + (m.weighted_length > m.max_weighted_length ? " over" : ""));
        card.appendChild(el("div", "meta", m.position + "/" + m.of + " · " + m.weighted_length + "/" + m.max_weighted_length + " karakter / chars" + (m.has_image ? " · + peta / map image" : "")));
        card.appendChild(el("pre", "msg", m.text));
        box.appendChild(card);
      });
    }
    if (chans.whatsapp) {
      box.appendChild(el("h3", "", "WhatsApp"));
      chans.whatsapp.forEach(function (m) {
        var card = el("div", "preview-card whatsapp-preview" + (m.fits ? "" : " over"));
        card.setAttribute("lang", m.language.slice(0, 2));
        card.appendChild(el("div", "meta", m.language + " · templat / template " + m.template + " · " + m.characters + "/" + m.max_characters +
          " karakter / chars" + (m.shortened ? " · keterangan dipersingkat / details shortened" : "")));
        card.appendChild(el("pre", "msg", m.text));
        box.appendChild(card);
      });
    }
    if (chans.web) {
      box.appendChild(el("h3", "", "Web"));
      var w = el("p", "small", "Halaman publik / public page: " + p.public_url);
      box.appendChild(w);
      if (p.public_html) {
        var d = el("details"); d.appendChild(el("summary", "", "Lihat halaman / show page"));
        var f = document.createElement("iframe");
        f.className = "page-preview"; f.title = "Pratinjau halaman publik / public page preview";
        f.setAttribute("sandbox", ""); f.srcdoc = p.public_html;
        d.appendChild(f); box.appendChild(d);
      }
    }
    var cap = el("details"); cap.appendChild(el("summary", "", "CAP 1.2 XML"));
    cap.appendChild(el("pre", "xml", p.cap_xml || p.cap_error || ""));
    box.appendChild(cap);
    root.setAttribute("data-preview", "ready");
  }
  var previewSeq = 0;
  function previewNow() {
    var b = body();
    var seq = ++previewSeq;
    if (b.problems.length) { $("previews").textContent = b.problems.join(" · "); root.setAttribute("data-preview", "incomplete"); return; }
    K.api("POST", "/api/v1/alerts/preview" + (state.alertId ? "?alert_id=" + state.alertId : ""), b.data).then(function (res) {
      if (seq !== previewSeq) { return; }
      if (!res.ok) { $("previews").textContent = K.problemText(res.data, res.status); root.setAttribute("data-preview", "error"); return; }
      renderPreviews(res.data);
    });
  }
  var schedulePreview = timer(previewNow, 600);
  $("refresh-preview").addEventListener("click", previewNow);
  root.addEventListener("input", function (e) { if (e.target.closest(".panel") && e.target.id !== "place-search") { schedulePreview(); } });
  root.addEventListener("change", function (e) { if (e.target.name === "channels" || e.target.tagName === "SELECT") { schedulePreview(); } });

  // ---- save and submit
  function save() {
    var b = body();
    if (b.problems.length) { K.show($("form-errors"), b.problems.join(" · ")); return Promise.resolve(null); }
    K.show($("form-errors"), "");
    var req = state.alertId ? K.api("PUT", "/api/v1/alerts/" + state.alertId, b.data) : K.api("POST", "/api/v1/alerts", b.data);
    return req.then(function (res) {
      if (!res.ok) { K.show($("form-errors"), K.problemText(res.data, res.status)); return null; }
      state.alertId = res.data.id;
      $("save-status").textContent = "Draf #" + res.data.id + " tersimpan / saved";
      return res.data;
    });
  }
  $("save-draft").addEventListener("click", function () { save(); });
  $("submit-alert").addEventListener("click", function () {
    var btn = this; btn.disabled = true;
    save().then(function (saved) {
      if (!saved) { btn.disabled = false; return; }
      K.api("POST", "/api/v1/alerts/" + saved.id + "/submit").then(function (res) {
        if (!res.ok) { btn.disabled = false; K.show($("form-errors"), K.problemText(res.data, res.status)); return; }
        window.location = "/konsol/peringatan/" + saved.id;
      });
    });
  });

  // ---- prefill from a stored draft (also an Update/Cancel started from the original)
  function prefill(a) {
    a.infos.forEach(function (i) {
      var p = i.language.slice(0, 2);
      if (p !== "id" && p !== "en") { return; }
      ["event", "headline", "description", "instruction"].forEach(function (n) { $(p + "-" + n).value = i[n] || ""; });
    });
    var first = a.infos[0];
    ["category", "urgency", "severity", "certainty"].forEach(function (n) { $(n).value = first[n]; });
    if (first.hazard) { state.hazard = first.hazard; $("hazard").value = first.hazard; }
    document.querySelectorAll("input[name=channels]").forEach(function (c) { c.checked = a.channels.indexOf(c.value) >= 0; });
    if (a.expires) {
      var d = new Date(a.expires);
      var local = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      $("expires").value = local;
    }
    a.areas.forEach(function (area) {
      area.geocodes.forEach(function (c) { state.codes[c] = c; });
      if (area.target_geometry) { state.drawn.push(area.target_geometry); }
    });
    $("area-desc").value = a.areas.map(function (x) { return x.area_desc; }).join("; ");
    $("area-desc").dataset.touched = "1";
    redrawShapes(); renderSelected(); areaChanged();
  }

  window.composer = {
    state: state,
    map: map,
    pointFor: function (kode) {
      var f = state.children && state.children.features.filter(function (x) { return x.properties.kode === kode; })[0];
      if (!f) { return null; }
      var pt = map.latLngToContainerPoint(L.latLng(f.properties.label[0], f.properties.label[1]));
      var rect = $("composer-map").getBoundingClientRect();
      return {x: rect.left + pt.x, y: rect.top + pt.y};
    },
    loadChildren: loadChildren
  };
  if (existing) { prefill(existing); }
  applyStatus();
  loadChildren(root.getAttribute("data-start") || null);
})();
