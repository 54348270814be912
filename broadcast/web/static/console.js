// Console helpers: JSON API calls with the session cookie and CSRF header, and the review page's actions.
(function () {
  "use strict";
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)broadcast_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function problemText(data, status) {
    if (data && data.detail) { return String(data.detail); }
    return "Galat / error " + status;
  }
  function api(method, url, body, isForm) {
    var opts = {method: method, headers: {"X-CSRF-Token": csrf(), "Accept": "application/json"}, credentials: "same-origin"};
    if (body !== undefined && body !== null) {
      if (isForm) { opts.body = body; } else { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = {detail: t.slice(0, 300)}; }
        return {ok: r.ok, status: r.status, data: data};
      });
    });
  }
  function show(el, text) { if (!el) { return; } el.textContent = text; el.hidden = !text; }
  window.Konsol = {api: api, csrf: csrf, problemText: problemText, show: show};

  // Review page: approve with a confirm step, reject with a reason, submit, follow-ups.
  var review = document.getElementById("review");
  if (!review) { return; }
  var alertId = review.getAttribute("data-alert-id");
  var errors = document.getElementById("action-errors");
  var dialog = document.getElementById("confirm-dialog");
  var approve = document.getElementById("approve");
  if (approve && dialog) {
    approve.addEventListener("click", function () {
      show(document.getElementById("confirm-errors"), "");
      dialog.showModal();
      document.getElementById("confirm-no").focus();
    });
    document.getElementById("confirm-no").addEventListener("click", function () { dialog.close(); approve.focus(); });
    document.getElementById("confirm-yes").addEventListener("click", function (ev) {
      ev.target.disabled = true;
      api("POST", "/api/v1/alerts/" + alertId + "/approve").then(function (res) {
        if (res.ok) { window.location = "/konsol/peringatan/" + alertId + "/progres"; return; }
        ev.target.disabled = false;
        show(document.getElementById("confirm-errors"), problemText(res.data, res.status));
      });
    });
  }
  var reject = document.getElementById("reject-form");
  if (reject) {
    reject.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var reason = document.getElementById("reject-reason").value.trim();
      api("POST", "/api/v1/alerts/" + alertId + "/reject", {reason: reason}).then(function (res) {
        if (res.ok) { window.location.reload(); return; }
        show(errors, problemText(res.data, res.status));
      });
    });
  }
  var submit = document.getElementById("submit-draft");
  if (submit) {
    submit.addEventListener("click", function () {
      api("POST", "/api/v1/alerts/" + alertId + "/submit").then(function (res) {
        if (res.ok) { window.location.reload(); return; }
        show(errors, problemText(res.data, res.status));
      });
    });
  }
  document.querySelectorAll("[data-follow-up]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var kind = btn.getAttribute("data-follow-up");
      var reasonEl = document.getElementById("follow-up-reason");
      var reason = reasonEl ? reasonEl.value.trim() : "";
      if (kind === "cancel" && reason.length < 3) {
        show(errors, "Pembatalan perlu alasan (min. 3 huruf) / a cancel needs a reason (3+ characters)");
        if (reasonEl) { reasonEl.focus(); }
        return;
      }
      var original = btn.getAttribute("data-original") || alertId;
      var body = {reason: reason || null};
      var reasonEnEl = document.getElementById("follow-up-reason-en");
      if (kind === "cancel" && reasonEnEl && reasonEnEl.value.trim()) { body.reason_en = reasonEnEl.value.trim(); }
      api("POST", "/api/v1/alerts/" + original + "/" + kind, body).then(function (res) {
        if (!res.ok) { show(errors, problemText(res.data, res.status)); return; }
        window.location = kind === "cancel" ? "/konsol/peringatan/" + res.data.id : "/konsol/peringatan/" + res.data.id + "/ubah";
      });
    });
  });
})();
