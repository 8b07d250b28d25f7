// Rocket Loader, written for cf-edge (facts 3.3): the edge gave every deferred script the
// type "<token>-<original type>"; after the page has rendered, run them in document order,
// each external one only once the previous has loaded, then replay DOMContentLoaded and load.
(function () {
  "use strict";
  var self = document.currentScript;
  var settings = (self && self.getAttribute("data-cf-settings")) || "";
  var token = settings.split("-|")[0];
  if (!token) return;
  var prefix = token + "-";
  function next(scripts, i) {
    if (i >= scripts.length) {
      document.dispatchEvent(new Event("DOMContentLoaded", { bubbles: true }));
      window.dispatchEvent(new Event("load"));
      return;
    }
    var old = scripts[i], fresh = document.createElement("script");
    for (var a = 0; a < old.attributes.length; a++) {
      var attr = old.attributes[a];
      if (attr.name === "type") {
        var original = attr.value.slice(prefix.length);
        if (original !== "text/javascript") fresh.setAttribute("type", original);
      } else {
        fresh.setAttribute(attr.name, attr.value);
      }
    }
    if (old.src) {
      fresh.onload = fresh.onerror = function () { next(scripts, i + 1); };
      fresh.async = false;
      old.parentNode.replaceChild(fresh, old);
    } else {
      fresh.text = old.text;
      old.parentNode.replaceChild(fresh, old);
      next(scripts, i + 1);
    }
  }
  function start() {
    var all = document.getElementsByTagName("script"), scripts = [];
    for (var i = 0; i < all.length; i++) {
      var type = all[i].getAttribute("type") || "";
      if (type.indexOf(prefix) === 0) scripts.push(all[i]);
    }
    next(scripts, 0);
  }
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start, { once: true });
})();
