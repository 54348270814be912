// User text into the page as text nodes only: map tooltips, popups and table cells are built from DOM elements
// whose text is set with textContent, never from HTML strings (a headline holding <meta http-equiv="refresh">
// must show as those characters). Every script that shows user text uses these helpers.
(function () {
  "use strict";
  // el("b", "#12"), el("td", text, "state"), el("span", null, null, [child, " text", child]).
  function el(tag, text, className, children) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text != null) { node.textContent = String(text); }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  // A Leaflet tooltip or popup body holding plain text (Leaflet inserts a string as HTML, an element as is).
  function text(s) { return el("span", s == null ? "" : s); }
  // Replace a table row's cells: each value a string (a text cell) or an element, with optional class names.
  function cells(tr, values, classes) {
    while (tr.firstChild) { tr.removeChild(tr.firstChild); }
    values.forEach(function (v, i) {
      var td = el("td", null, classes && classes[i]);
      if (v != null) { td.appendChild(typeof v === "object" ? v : document.createTextNode(String(v))); }
      tr.appendChild(td);
    });
  }
  window.bcDom = {el: el, text: text, cells: cells};
})();
