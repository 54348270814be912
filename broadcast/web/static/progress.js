// Live delivery progress per channel from the server-sent events stream; reconnects until every delivery settled.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box) { return; }
  var alertId = box.getAttribute("data-alert-id");
  var overall = document.getElementById("overall");
  var tbody = document.getElementById("progress-rows");
  var note = document.getElementById("progress-note");
  var STATES = ["pending", "sending", "sent", "delivered", "undelivered", "failed", "skipped"];

  function render(rows, done) {
    var total = 0, finished = 0;
    tbody.innerHTML = "";
    rows.forEach(function (r) {
      total += r.total; finished += r.finished;
      var pct = r.total ? Math.floor(100 * r.finished / r.total) : 100;
      var tr = document.createElement("tr");
      tr.setAttribute("data-channel", r.channel);
      var detail = STATES.filter(function (s) { return r.by_state[s]; }).map(function (s) { return s + ": " + r.by_state[s]; }).join(" · ");
      tr.innerHTML = "<th scope='row'></th><td><div class='bar' role='progressbar' aria-valuemin='0' aria-valuemax='100'><span></span></div></td><td class='pct'></td><td class='small'></td>";
      tr.children[0].textContent = r.channel;
      var bar = tr.querySelector(".bar");
      bar.setAttribute("aria-valuenow", String(pct));
      bar.setAttribute("aria-label", r.channel + " " + pct + "%");
      bar.firstChild.style.width = pct + "%";
      if (r.by_state.failed) { bar.classList.add("has-failed"); }
      tr.children[2].textContent = r.finished + "/" + r.total + " (" + pct + "%)";
      tr.children[3].textContent = detail;
      tbody.appendChild(tr);
    });
    var pct = total ? Math.floor(100 * finished / total) : 0;
    overall.textContent = pct + "%";
    overall.setAttribute("data-percent", String(pct));
    box.setAttribute("data-done", done && total > 0 ? "true" : "false");
    note.textContent = done && total > 0 ? "Selesai / finished" : (total ? "Mengirim… / sending…" : "Menunggu perencanaan… / waiting for planning…");
  }

  // Each person counts once, whichever of their channels reached them (one person, many channels, one warning).
  function renderPeople(p) {
    document.getElementById("people-reached").textContent = String(p.reached);
    document.getElementById("people-total").textContent = String(p.people);
    document.getElementById("people-detail").textContent =
      "terkirim ke ponsel / delivered " + p.delivered + " · gagal / failed " + p.failed + " · masih dicoba / still trying " + p.waiting;
  }

  function connect() {
    var es = new EventSource("/api/v1/alerts/" + alertId + "/progress/stream?interval_s=0.5");
    es.addEventListener("progress", function (ev) { render(JSON.parse(ev.data), false); });
    es.addEventListener("people", function (ev) { renderPeople(JSON.parse(ev.data)); });
    es.addEventListener("done", function (ev) {
      var rows = JSON.parse(ev.data);
      render(rows, true);
      es.close();
      if (!rows.length) { setTimeout(connect, 1000); } else { setTimeout(function () { loadFailures(); }, 200); }
    });
    es.onerror = function () { es.close(); setTimeout(connect, 2000); };
  }
  function loadFailures() {
    if (document.getElementById("failures") && box.getAttribute("data-has-failures") !== "true") {
      // Failures are listed by the server; reload once at the end if there are new ones to show.
      window.Konsol.api("GET", "/api/v1/alerts/" + alertId + "/deliveries").then(function (res) {
        if (res.ok && res.data.some(function (r) { return r.by_state.failed || r.by_state.undelivered; })) {
          window.location.reload();
        }
      });
    }
  }
  connect();
})();
